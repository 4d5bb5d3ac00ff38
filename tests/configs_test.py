"""Tests for jaxequiv.configs and jaxequiv.lm.configs: JAX-free, one definition each, the names match the registries."""

import dataclasses
import json
import subprocess
import sys

import pytest

from jaxequiv import configs, model, training, verify
from jaxequiv.lm import configs as lm_configs, experiment, train


def test_importing_the_configs_starts_no_jax():
  code = ("import sys, jaxequiv.configs, jaxequiv.lm.configs; jaxequiv.configs.ModelConfig();"
          " print(sorted(m for m in sys.modules if m.split('.')[0] in ('jax', 'jaxlib', 'flax', 'optax', 'orbax')))")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
  assert out.strip() == "[]", out


def test_one_definition_each_re_exported_where_used():
  assert model.ModelConfig is configs.ModelConfig and model.ATTENTION is configs.ATTENTION
  assert training.OptimizerConfig is configs.OptimizerConfig and verify.VerifyConfig is configs.VerifyConfig
  assert train.TrainConfig is lm_configs.TrainConfig and experiment.DataConfig is lm_configs.DataConfig
  assert (train.OBJECTIVES, train.MODES) == (lm_configs.OBJECTIVES, lm_configs.MODES)


def test_names_match_the_model_registries():
  assert configs.ACTIVATIONS == tuple(model.ACTIVATIONS) and configs.DTYPES == tuple(model.DTYPES)
  assert configs.ATTENTION == ("auto", *model.ATTENTION_IMPLS)
  assert configs.ModelConfig(dtype="bfloat16").compute_dtype == model.DTYPES["bfloat16"]


@pytest.mark.parametrize("make,match", [
    (lambda: configs.ModelConfig(attention="flash"), "attention must be one of"),
    (lambda: configs.ModelConfig(num_layers=0), "num_layers must be >= 1, got 0"),
    (lambda: configs.OptimizerConfig(b2=1.0), r"b2 must be in \[0, 1\), got 1.0"),
    (lambda: configs.VerifyConfig(seq_len=1), "VerifyConfig.seq_len must be >= 2"),
    (lambda: lm_configs.TrainConfig(eval_every=-1), "eval_every must be >= 0, got -1"),
    (lambda: lm_configs.TrainConfig(learning_rate=float("nan")), "learning_rate must be a finite number"),
    (lambda: lm_configs.TrainConfig(schedule_steps=0),
     r"schedule_steps must be None \(steps\) or an int >= 1, got 0"),
    (lambda: lm_configs.TrainConfig(schedule_steps=True), "schedule_steps must be None .* got True"),
    (lambda: lm_configs.TrainConfig(schedule_steps=2.5), "schedule_steps must be None .* got 2.5"),
])
def test_bad_settings_raise_one_line_naming_the_field(make, match):
  with pytest.raises(ValueError, match=match) as e:
    make()
  assert "\n" not in str(e.value)


def test_schedule_steps_json_round_trip_and_old_records_without_it():
  """``schedule_steps`` survives config.json; a record without it (older runs) means ``steps``, as None does."""
  longer = lm_configs.TrainConfig(steps=900, schedule_steps=600)
  assert lm_configs.TrainConfig(**json.loads(json.dumps(dataclasses.asdict(longer)))) == longer
  assert longer.optimizer_config() == configs.OptimizerConfig.of(dataclasses.replace(longer, steps=600))
  assert longer.optimizer_config().steps == longer.schedule_length == 600 and longer.steps == 900
  old = {k: v for k, v in dataclasses.asdict(lm_configs.TrainConfig(steps=600)).items() if k != "schedule_steps"}
  assert lm_configs.TrainConfig(**old).schedule_steps is None
  assert lm_configs.TrainConfig(**old).optimizer_config() == configs.OptimizerConfig(steps=600)
  assert lm_configs.TrainConfig(**old).resolved() == lm_configs.TrainConfig(steps=600, schedule_steps=600)
  assert dataclasses.replace(longer.resolved(), steps=1200).schedule_length == 600  # what an extension keeps
  # As a resume compares records: an old one equals a new one of the same run; steps alone may differ.
  new = dataclasses.asdict(lm_configs.TrainConfig(steps=900, schedule_steps=600))
  assert lm_configs.trajectory_settings({"train": old}) == lm_configs.trajectory_settings({"train": new})
  assert lm_configs.trajectory_settings({"train": old}) != lm_configs.trajectory_settings(
      {"train": dataclasses.asdict(lm_configs.TrainConfig(steps=900))})
