"""taxonomy.experiment: the scripts' defaults, one-line errors, a tiny run of each experiment through run."""

import dataclasses
import json

import numpy as np
import pytest

from jaxequiv.taxonomy import exp_functions, experiment
from jaxequiv.taxonomy.experiment import ExperimentConfig


def test_defaults_per_experiment_and_json_round_trip():
  assert (ExperimentConfig("regression").steps, ExperimentConfig("regression").folds) == (800, 5)
  assert ExperimentConfig("embeddings").steps == 1500 and ExperimentConfig("embeddings").docs == 100
  assert (ExperimentConfig("functions").cnp_steps, ExperimentConfig("functions").cnp_tasks) == (10000, 32)
  for name in experiment.DEFAULTS:
    c = ExperimentConfig(name, seed=3)
    assert ExperimentConfig(**json.loads(json.dumps(dataclasses.asdict(c)))) == c


@pytest.mark.parametrize("kw, culprit", [({"experiment": "clustering"}, "'clustering'"),
                                         ({"experiment": "functions", "parts": ["search"]}, "search")])
def test_bad_config_is_one_line_naming_it(kw, culprit):
  with pytest.raises(ValueError, match=culprit) as e:
    ExperimentConfig(**kw)
  assert "\n" not in str(e.value)


def test_functions_cnp_is_cnp_vs_gp():
  r = experiment.run(ExperimentConfig("functions", parts=("cnp",), cnp_steps=3, cnp_tasks=2, cnp_test_tasks=4, seed=1,
                                      num_seeds=1))
  direct = exp_functions.cnp_vs_gp(steps=3, tasks_per_step=2, test_tasks=4, seed=1)
  assert sorted(r) == ["arrays", "cnp", "per_seed", "seeds"] and sorted(r["arrays"]) == ["cnp_params", "cnp_test"]
  for k in ("cnp_nll", "gp_posterior_nll", "gp_prior_nll", "final_train_nll"):
    got = np.float64([r["per_seed"][0]["cnp"][k], *r["cnp"][k]]).view(np.uint64)
    assert got.tolist() == np.float64([direct[k], direct[k], 0.0]).view(np.uint64).tolist(), k   # [mean, std]


def test_embeddings_clip_digits_with_arrays():
  r = experiment.run(ExperimentConfig("embeddings", steps=2, parts=("digits",), digit_models=("clip",), num_seeds=1))
  u, v, y = r["arrays"]["clip"]
  assert u.shape[0] == y.shape[0] and v.shape[0] == 10 and "clip_arrays" not in r["digits"]
  assert 0.0 <= r["digits"]["accuracy_clip_zero_shot"][0] <= 1.0 and r["digits"]["accuracy_clip_zero_shot"][1] == 0.0


def test_over_seeds_is_mean_and_std_of_every_number():
  got = experiment.over_seeds([{"a": {"x": 1.0, "n": 4, "name": "p"}, "ex": ["u"]},
                               {"a": {"x": 3.0, "n": 4, "name": "q"}, "ex": ["v"]}])
  assert got == {"a": {"x": [2.0, 1.0], "n": [4.0, 0.0], "name": "p"}, "ex": ["u"]}


@pytest.mark.slow
def test_captioner_is_the_transformer_string_head_and_reports_nll():
  r = experiment.run(ExperimentConfig("embeddings", steps=2, parts=("digits",), digit_models=("10way", "captioner"),
                                      num_seeds=2, decoder_width=8, decoder_layers=1))
  d = r["digits"]
  assert r["seeds"] == [0, 1] and len(r["per_seed"]) == 2 and "Transformer" in d["decoder"]
  for k in ("accuracy_10way", "nll_10way", "accuracy_captioner_rank", "nll_captioner"):
    vals = [s["digits"][k] for s in r["per_seed"]]
    assert d[k] == [float(np.mean(vals)), float(np.std(vals))] and np.all(np.isfinite(vals)), k


@pytest.mark.slow
def test_regression_and_search_tiny():
  r = experiment.run(ExperimentConfig("regression", folds=2, steps=2, num_seeds=2, decoder_width=8))["heads"]
  assert "ridge" in r and all(len(v["rmse"]) == 2 and len(v["nll_per_seed"]) == 2 for v in r.values())
  s = experiment.run(ExperimentConfig("embeddings", steps=2, docs=20, parts=("search",), num_seeds=1, decoder_width=8))
  assert sorted(s) == ["arrays", "per_seed", "search", "search_zen_only", "seeds"]
  assert s["search"]["_data"]["docs"] == [20.0, 0.0] and "nll" in s["search"]["id_decoder"]
