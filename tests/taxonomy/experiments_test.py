"""Experiment helpers: data, features, closed-form ridge; a slow smoke run of each experiment."""

import numpy as np
import pytest

from jaxequiv import alphabet
from jaxequiv.taxonomy import exp_embeddings, exp_regression


def test_zen_lines_are_sentences_over_the_alphabet():
  zen = exp_embeddings.zen_lines()
  assert len(zen) >= 15 and zen[0] == "Beautiful is better than ugly."
  for s in zen:
    alphabet.check_sentence(s)


def test_spans_and_trigrams():
  rng = np.random.default_rng(0)
  sp = exp_embeddings.spans("Beautiful is better than ugly.", rng, 4)
  assert len(sp) == 4 and len(set(sp)) == 4 and all(s in "Beautiful is better than ugly" for s in sp)
  f = exp_embeddings.trigram_features(["abc abc", "abc abc", "xyz"])
  np.testing.assert_allclose(np.linalg.norm(f, axis=1), 1.0, rtol=1e-6)
  assert f[0] @ f[1] == pytest.approx(1.0) and f[0] @ f[2] < 0.5


def test_ridge_matches_sklearn():
  from sklearn.linear_model import Ridge
  rng = np.random.default_rng(0)
  x, y = rng.normal(size=(50, 4)), rng.normal(size=50)
  _, pred = exp_regression.ridge(x, y, x[:5], alpha=2.0)
  np.testing.assert_allclose(pred, Ridge(alpha=2.0).fit(x, y).predict(x[:5]), rtol=1e-8)


@pytest.mark.slow
def test_experiments_smoke():
  r = exp_regression.run(folds=2, steps=50, decoder_width=8, decoder_layers=1)["heads"]
  assert set(r) == {*exp_regression.HEADS, "ridge"} and all(np.isfinite(v["rmse"][0]) for v in r.values())
  d = exp_embeddings.digits_three_ways(steps=50, decoder_width=8, decoder_layers=1)
  assert 0 <= d["infonce_bound_N10_nats"] <= np.log(10) + 1e-6
