"""Experiment helpers: data, features, closed-form ridge; a slow smoke run of each experiment."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxequiv import alphabet
from jaxequiv.taxonomy import exp_embeddings, exp_regression, nets


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


def test_early_stopping_over_seeds_is_each_seed_alone():
  rng = np.random.default_rng(0)
  x, y = rng.normal(size=(2, 40, 3)).astype(np.float32), rng.normal(size=(2, 40)).astype(np.float32)
  loss = lambda p, b: jnp.mean(jnp.square(nets.mlp_apply(p, b[0])[:, 0] - b[1]))  # noqa: E731
  inits = [nets.mlp_init(jax.random.key(k), [3, 8, 1]) for k in range(2)]
  p_s, step_s, val_s = nets.fit_early_stopping(loss, jax.tree.map(lambda *a: jnp.stack(a), *inits),
                                               (x[:, :30], y[:, :30]), (x[:, 30:], y[:, 30:]), 100, every=10,
                                               learning_rate=3e-2, seeds=True)
  err = 0.0
  for s in range(2):
    p, step, val = nets.fit_early_stopping(loss, inits[s], (x[s, :30], y[s, :30]), (x[s, 30:], y[s, 30:]), 100,
                                           every=10, learning_rate=3e-2)
    assert step == step_s[s] and step > 0
    err = max(err, abs(val - val_s[s]), *(float(jnp.max(jnp.abs(a[s] - b))) for a, b in
                                          zip(jax.tree.leaves(p_s), jax.tree.leaves(p))))
  print(f"seeds at once vs one at a time: max error {err:.1e} (tolerance 1e-5)")
  assert err <= 1e-5
