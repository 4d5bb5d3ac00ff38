"""A logistic discriminator on (1, x, x^2) converges to the true log-ratio of two Gaussians as the sample grows."""

import jax
import numpy as np
import pytest

from jaxequiv.roles import ratio

_err = jax.jit(ratio.log_ratio_error, static_argnums=1)
SEEDS = range(4)


def test_converges_to_the_true_log_ratio():
  """Tolerance: max error on [-2, 2] <= 30/sqrt(n) for every seed, mean over seeds <= 12/sqrt(n).

  (Measured: mean * sqrt(n) ~ 7, max * sqrt(n) <= 23 for n = 1e2..1e6.) The mean error must also shrink with n.
  """
  means = []
  for n in (300, 3_000, 30_000, 300_000):
    errs = np.array([float(_err(jax.random.key(s), n)) for s in SEEDS])
    print(f"n={n:>7} per class: max |logit - log p/q| mean {errs.mean():.4f}, worst {errs.max():.4f}"
          f" (tolerance {30 / np.sqrt(n):.4f})")
    assert errs.max() <= 30 / np.sqrt(n) and errs.mean() <= 12 / np.sqrt(n)
    means.append(errs.mean())
  assert all(a > b for a, b in zip(means, means[1:]))


def test_a_wrong_target_is_detected():
  """Negative control: the fit is far from the log-ratio of a different pair of Gaussians."""
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  x = jnp.concatenate([0.5 + 0.8 * jax.random.normal(jax.random.key(0), (50_000,)),
                       jax.random.normal(jax.random.key(1), (50_000,))])
  y = jnp.concatenate([jnp.ones(50_000), jnp.zeros(50_000)])
  coef = jax.jit(ratio.fit_logistic)(x, y)
  grid = jnp.linspace(-2, 2, 201)
  wrong = ratio.gaussian_log_ratio(grid, 0.0, 0.8, 0.0, 1.0)
  assert float(jnp.max(jnp.abs(ratio.quadratic_features(grid) @ coef - wrong))) > 0.3


def test_shapes_are_checked():
  with pytest.raises(ValueError, match="same length"):
    ratio.fit_logistic(np.zeros(3, np.float32), np.zeros(4, np.float32))
