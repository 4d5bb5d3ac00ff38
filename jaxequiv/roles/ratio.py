r"""The discriminator is a classifier that estimates a density ratio.

A classifier trained with the logistic loss to tell samples of :math:`p` (label 1)
from equally many samples of :math:`q` (label 0) has, at its optimum, the logit

.. math:: \ell^*(x) = \log p(x) - \log q(x).

For two 1-D Gaussians the log-ratio is a quadratic in :math:`x`, so a logistic
discriminator on the features :math:`(1, x, x^2)` can represent it exactly, and
its maximum-likelihood fit converges to it as the sample grows (at the usual
:math:`1/\sqrt{n}` rate). The same logistic loss is the GAN discriminator's
(``discriminator_loss``), which ``roles.gan`` uses.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def discriminator_loss(logits_real_B: jax.Array, logits_fake_B: jax.Array) -> jax.Array:
  r"""Logistic loss of a real-vs-fake classifier: :math:`-\log\sigma(\ell_r) - \log(1-\sigma(\ell_f))`, averaged.

  Args:
    logits_real_B: logits ``[B]`` on samples of the data distribution (label 1).
    logits_fake_B: logits ``[B']`` on samples of the model (label 0).

  Returns:
    Scalar: mean loss over real plus mean loss over fake.

  Examples:
    >>> import jax.numpy as jnp
    >>> from jaxequiv.roles import ratio
    >>> round(float(ratio.discriminator_loss(jnp.zeros(3), jnp.zeros(3))), 4)  # 2 log 2
    1.3863
  """
  return jnp.mean(jax.nn.softplus(-logits_real_B)) + jnp.mean(jax.nn.softplus(logits_fake_B))


def gaussian_log_ratio(x: jax.Array, mean_p: float, std_p: float, mean_q: float, std_q: float) -> jax.Array:
  r""":math:`\log \mathcal N(x; \mu_p, \sigma_p^2) - \log \mathcal N(x; \mu_q, \sigma_q^2)`, elementwise."""
  zp, zq = (x - mean_p) / std_p, (x - mean_q) / std_q
  return -0.5 * zp**2 + 0.5 * zq**2 - jnp.log(std_p) + jnp.log(std_q)


def quadratic_features(x_N: jax.Array) -> jax.Array:
  """Features ``[N, 3]``: ``(1, x, x^2)``."""
  return jnp.stack([jnp.ones_like(x_N), x_N, x_N**2], axis=-1)


def fit_logistic(x_N: jax.Array, y_N: jax.Array, num_newton_steps: int = 25, ridge: float = 1e-6) -> jax.Array:
  r"""Maximum-likelihood logistic regression on ``quadratic_features`` by Newton's method (IRLS).

  Args:
    x_N: scalar inputs ``[N]``.
    y_N: labels ``[N]`` in {0, 1}.
    num_newton_steps: Newton iterations (the loss is convex; 25 reach float32 precision here).
    ridge: added to the Hessian's diagonal (numerical safety only).

  Returns:
    Coefficients ``[3]`` of the logit ``c0 + c1 x + c2 x^2``.
  """
  if x_N.ndim != 1 or x_N.shape != y_N.shape:
    raise ValueError(f"x and y must be 1-D of the same length, got {x_N.shape} and {y_N.shape}")
  phi_Nx3 = quadratic_features(x_N)
  n = x_N.shape[0]

  def newton(_, c_3):
    p_N = jax.nn.sigmoid(phi_Nx3 @ c_3)
    grad_3 = phi_Nx3.T @ (p_N - y_N) / n
    hess_3x3 = (phi_Nx3 * (p_N * (1 - p_N))[:, None]).T @ phi_Nx3 / n + ridge * jnp.eye(3)
    return c_3 - jnp.linalg.solve(hess_3x3, grad_3)

  return jax.lax.fori_loop(0, num_newton_steps, newton, jnp.zeros(3, x_N.dtype))


def log_ratio_error(key: jax.Array, n: int, mean_p: float = 0.5, std_p: float = 0.8, mean_q: float = 0.0,
                    std_q: float = 1.0, lo: float = -2.0, hi: float = 2.0) -> jax.Array:
  r"""Max over ``[lo, hi]`` of :math:`|\hat\ell(x) - (\log p(x) - \log q(x))|` after fitting on ``n`` samples of each.

  Args:
    key: PRNG key for the samples.
    n: samples per class (static).
    mean_p, std_p, mean_q, std_q: the two Gaussians (p is "data", label 1).
    lo, hi: the interval on which the error is measured (201 points).

  Returns:
    Scalar float32 error in nats.

  Examples:
    >>> import jax
    >>> from jaxequiv.roles import ratio
    >>> bool(ratio.log_ratio_error(jax.random.key(0), 100_000) < 0.1)
    True
  """
  kp, kq = jax.random.split(key)
  x = jnp.concatenate([mean_p + std_p * jax.random.normal(kp, (n,)), mean_q + std_q * jax.random.normal(kq, (n,))])
  y = jnp.concatenate([jnp.ones(n), jnp.zeros(n)])
  coef = fit_logistic(x, y)
  grid = jnp.linspace(lo, hi, 201)
  true = gaussian_log_ratio(grid, mean_p, std_p, mean_q, std_q)
  return jnp.max(jnp.abs(quadratic_features(grid) @ coef - true))
