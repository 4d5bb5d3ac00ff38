r"""A classifier is a generative model of its inputs (JEM, Grathwohl et al., 2020).

Logits :math:`f(x) \in \mathbb R^K` define the joint
:math:`p(x, y) = \exp(f(x)_y) / Z` with :math:`Z = \sum_x \sum_y \exp f(x)_y`. Then

.. math:: p(y \mid x) = \frac{p(x, y)}{\sum_{y'} p(x, y')} = \mathrm{softmax}(f(x))_y, \qquad
   \log p(x) = \operatorname{logsumexp}_y f(x)_y - \log Z.

The classifier's softmax is untouched by the shift :math:`\log Z`; the density
over x is what the logits' overall level adds. On a finite input space (4x4
binary digits: 2^16 states) :math:`Z` is a sum, so the maximum-likelihood
gradient of :math:`\log p(x, y)` is exact (``exact_joint_nll``).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

LogitsFn = Callable[[jax.Array], jax.Array]  # x [B, D] -> logits [B, K]


def log_joint(logits_BxK: jax.Array, log_z: jax.Array) -> jax.Array:
  r""":math:`\log p(x, y) = f(x)_y - \log Z`, ``[B, K]``."""
  return logits_BxK - log_z


def conditional_from_joint(log_joint_BxK: jax.Array) -> jax.Array:
  r""":math:`\log p(y \mid x) = \log p(x, y) - \log \sum_{y'} p(x, y')`, ``[B, K]``.

  Examples:
    >>> import jax, jax.numpy as jnp
    >>> from jaxequiv.roles import jem
    >>> f = jnp.array([[1.0, 2.0, 3.0]])
    >>> a = jem.conditional_from_joint(jem.log_joint(f, jnp.float32(7.5)))
    >>> bool(jnp.allclose(a, jax.nn.log_softmax(f), atol=1e-6))
    True
  """
  return log_joint_BxK - jax.nn.logsumexp(log_joint_BxK, axis=-1, keepdims=True)


def log_marginal(logits_BxK: jax.Array, log_z: jax.Array) -> jax.Array:
  r""":math:`\log p(x) = \operatorname{logsumexp}_y f(x)_y - \log Z`, ``[B]``."""
  return jax.nn.logsumexp(logits_BxK, axis=-1) - log_z


def energy(logits_BxK: jax.Array) -> jax.Array:
  r"""JEM's energy of x, :math:`E(x) = -\operatorname{logsumexp}_y f(x)_y`, ``[B]``."""
  return -jax.nn.logsumexp(logits_BxK, axis=-1)


def exact_log_z(logits_fn: LogitsFn, states_SxD: jax.Array) -> jax.Array:
  r""":math:`\log Z = \operatorname{logsumexp}_{x, y} f(x)_y` over every state of a finite input space.

  Args:
    logits_fn: ``x [B, D] -> logits [B, K]``.
    states_SxD: all S input states (e.g. ``digits.all_binary_states(16)``).

  Returns:
    Scalar float32.
  """
  return jax.nn.logsumexp(logits_fn(states_SxD))


def exact_joint_nll(logits_fn: LogitsFn, x_BxD: jax.Array, y_B: jax.Array, states_SxD: jax.Array) -> jax.Array:
  r"""Exact mean :math:`-\log p(x, y)` in nats; its gradient is the exact maximum-likelihood gradient.

  .. math:: -\frac1B \sum_i f(x_i)_{y_i} + \log Z
  """
  f_BxK = logits_fn(x_BxD)
  return -jnp.mean(jnp.take_along_axis(f_BxK, y_B[:, None], axis=1)) + exact_log_z(logits_fn, states_SxD)


def exact_marginal_nll(logits_fn: LogitsFn, x_BxD: jax.Array, states_SxD: jax.Array) -> jax.Array:
  r"""Exact mean :math:`-\log p(x)` in nats."""
  return -jnp.mean(log_marginal(logits_fn(x_BxD), exact_log_z(logits_fn, states_SxD)))


def sgld(logits_fn: LogitsFn, x_BxD: jax.Array, key: jax.Array, num_steps: int = 20, step_size: float = 1.0,
         noise: float = 0.01, lo: float | None = None, hi: float | None = None) -> jax.Array:
  r"""JEM's SGLD: :math:`x \leftarrow x - \alpha \nabla_x E(x) + \sigma \epsilon` (reference: 20 steps, 1, 0.01).

  The reference (Grathwohl et al.) uses step size 1 with noise 0.01, not the
  Langevin-consistent :math:`\sqrt{2\alpha}`; that is what is reproduced here.
  With ``lo``/``hi`` each step's result is clipped into ``[lo, hi]`` (a
  projection onto the data's range, as in JEM++'s proximal SGLD).
  """
  grad_e = jax.grad(lambda x: jnp.sum(energy(logits_fn(x))))

  def step(x, k):
    x = x - step_size * grad_e(x) + noise * jax.random.normal(k, x.shape, x.dtype)
    return (x if lo is None and hi is None else jnp.clip(x, lo, hi)), None

  x, _ = jax.lax.scan(step, x_BxD, jax.random.split(key, num_steps))
  return jax.lax.stop_gradient(x)
