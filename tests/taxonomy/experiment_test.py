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
  r = experiment.run(ExperimentConfig("functions", parts=("cnp",), cnp_steps=3, cnp_tasks=2, cnp_test_tasks=4, seed=1))
  direct = exp_functions.cnp_vs_gp(steps=3, tasks_per_step=2, test_tasks=4, seed=1)
  assert sorted(r) == ["arrays", "cnp"] and sorted(r["arrays"]) == ["cnp_params", "cnp_test"]
  for k in ("cnp_nll", "gp_posterior_nll", "gp_prior_nll", "final_train_nll"):
    assert np.float64(r["cnp"][k]).view(np.uint64) == np.float64(direct[k]).view(np.uint64), k


def test_embeddings_clip_digits_with_arrays():
  r = experiment.run(ExperimentConfig("embeddings", steps=2, parts=("digits",), digit_models=("clip",)))
  u, v, y = r["arrays"]["clip"]
  assert u.shape[0] == y.shape[0] and v.shape[0] == 10 and "clip_arrays" not in r["digits"]
  assert 0.0 <= r["digits"]["accuracy_clip_zero_shot"] <= 1.0


@pytest.mark.slow
def test_regression_and_search_tiny():
  r = experiment.run(ExperimentConfig("regression", folds=2, steps=2))
  assert "ridge" in r and all(len(v["rmse"]) == 2 for v in r.values())
  s = experiment.run(ExperimentConfig("embeddings", steps=2, docs=20, parts=("search",)))
  assert sorted(s) == ["arrays", "search", "search_zen_only"] and s["search"]["_data"]["docs"] == 20
