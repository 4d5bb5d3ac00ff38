r"""A model that outputs a function: the conditional neural process (Garnelo et al., 2018).

A CNP is a conditional likelihood :math:`p(y_* \mid x_*, C)` for a context set
:math:`C = \{(x_i, y_i)\}`: an encoder maps each pair to :math:`h(x_i, y_i)`,
a masked mean makes the summary :math:`r(C)` invariant to the order of the
context (exactly in real arithmetic; to float rounding in float32), and a
decoder maps :math:`(x_*, r)` to a Gaussian. With a fixed variance of 1/2 its
loss is squared error plus a constant (``regression.gaussian_nll``).

The floor for data drawn from a Gaussian process is the exact GP posterior
predictive (``gp_posterior``), computed in closed form.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxequiv.taxonomy import nets, regression

Params = Any


class CNPBatch(NamedTuple):
  x_ctx_BxC: jax.Array
  y_ctx_BxC: jax.Array
  mask_BxC: jax.Array   # bool: True at real context points.
  x_tgt_BxT: jax.Array
  y_tgt_BxT: jax.Array


def init(key: jax.Array, width: int = 64, r_dim: int | None = None, enc_hidden: int = 2, dec_hidden: int = 2) -> Params:
  """Encoder ``2 -> width x enc_hidden -> r_dim`` and decoder ``1 + r_dim -> width x dec_hidden -> 2`` MLPs.

  ``r_dim`` defaults to ``width``. The reference CNP (an encoder of 4 x 128, a
  decoder of 128, 128, 2) is ``init(key, 128, enc_hidden=3)``.
  """
  r_dim = width if r_dim is None else r_dim
  k1, k2 = jax.random.split(key)
  return {"enc": nets.mlp_init(k1, [2, *[width] * enc_hidden, r_dim]),
          "dec": nets.mlp_init(k2, [1 + r_dim, *[width] * dec_hidden, 2])}


def summary(params: Params, x_ctx_BxC: jax.Array, y_ctx_BxC: jax.Array, mask_BxC: jax.Array) -> jax.Array:
  """Permutation-invariant context summary ``r`` ``[B, R]``: masked mean of ``h(x_i, y_i)``."""
  h = nets.mlp_apply(params["enc"], jnp.stack([x_ctx_BxC, y_ctx_BxC], axis=-1))
  m = mask_BxC.astype(h.dtype)[..., None]
  return jnp.sum(h * m, axis=1) / jnp.maximum(jnp.sum(m, axis=1), 1.0)


def predict(params: Params, batch: CNPBatch) -> tuple[jax.Array, jax.Array]:
  """Predictive mean and variance ``[B, T]`` at the targets; variance ``1e-4 + softplus``."""
  r = summary(params, batch.x_ctx_BxC, batch.y_ctx_BxC, batch.mask_BxC)
  t = batch.x_tgt_BxT.shape[1]
  inp = jnp.concatenate([batch.x_tgt_BxT[..., None], jnp.broadcast_to(r[:, None], (r.shape[0], t, r.shape[1]))], -1)
  out = nets.mlp_apply(params["dec"], inp)
  return out[..., 0], 1e-4 + jax.nn.softplus(out[..., 1])


def gaussian_nll(mean_BxT: jax.Array, var_BxT: jax.Array, y_BxT: jax.Array) -> jax.Array:
  """Mean of ``-log N(y; mean, var)`` over every target point."""
  return jnp.mean(0.5 * jnp.log(2 * jnp.pi * var_BxT) + jnp.square(y_BxT - mean_BxT) / (2 * var_BxT))


def nll(params: Params, batch: CNPBatch) -> jax.Array:
  """Mean Gaussian NLL per target point (the CNP training loss)."""
  return gaussian_nll(*predict(params, batch), batch.y_tgt_BxT)


def fixed_var_nll(params: Params, batch: CNPBatch) -> jax.Array:
  """Gaussian NLL with the variance fixed to 1/2: squared error of the mean plus ``log(pi)/2``."""
  mean, _ = predict(params, batch)
  return regression.gaussian_nll(mean.reshape(-1), batch.y_tgt_BxT.reshape(-1), 0.5)


def mean_squared_error(params: Params, batch: CNPBatch) -> jax.Array:
  """Squared error of the predicted mean (the loss ``fixed_var_nll`` reduces to)."""
  mean, _ = predict(params, batch)
  return regression.squared_error(mean.reshape(-1), batch.y_tgt_BxT.reshape(-1))


# --- Gaussian-process data and the exact posterior ----------------------------------------------------------


def rbf(x_A: np.ndarray, x_B: np.ndarray, lengthscale: float, amplitude: float) -> np.ndarray:
  """RBF kernel matrix ``amplitude^2 exp(-(x - x')^2 / (2 l^2))`` (float64)."""
  return amplitude**2 * np.exp(-0.5 * np.square(x_A[:, None] - x_B[None, :]) / lengthscale**2)


def sample_tasks(key: jax.Array, num: int, num_ctx: int, num_tgt: int, lengthscale: float = 0.4,
                 amplitude: float = 1.0, noise: float = 0.1) -> CNPBatch:
  """GP function draws on ``x ~ U[-2, 2]``: ``num`` tasks, each ``num_ctx`` context and ``num_tgt`` target points.

  Pure JAX (float32; jit-able, so a training step can draw fresh tasks from its
  key). Context sizes vary: task b keeps its first ``n_b ~ U{3..num_ctx}``
  context points (the rest are masked). Observations carry Gaussian noise of
  std ``noise``.
  """
  kx, ky, kn = jax.random.split(key, 3)
  n = num_ctx + num_tgt
  x_BxN = jax.random.uniform(kx, (num, n), minval=-2.0, maxval=2.0)
  cov_BxNxN = (amplitude**2 * jnp.exp(-0.5 * jnp.square(x_BxN[:, :, None] - x_BxN[:, None, :]) / lengthscale**2)
               + noise**2 * jnp.eye(n))
  y_BxN = jnp.einsum("bij,bj->bi", jnp.linalg.cholesky(cov_BxNxN), jax.random.normal(ky, (num, n)))
  sizes_B = jax.random.randint(kn, (num,), 3, num_ctx + 1)
  mask_BxC = jnp.arange(num_ctx)[None, :] < sizes_B[:, None]
  return CNPBatch(x_BxN[:, :num_ctx], y_BxN[:, :num_ctx], mask_BxC, x_BxN[:, num_ctx:], y_BxN[:, num_ctx:])


def gp_posterior(x_ctx: np.ndarray, y_ctx: np.ndarray, x_tgt: np.ndarray, lengthscale: float = 0.4,
                 amplitude: float = 1.0, noise: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
  """Exact posterior predictive mean and variance of noisy targets given the context (float64, one task)."""
  k_cc = rbf(x_ctx, x_ctx, lengthscale, amplitude) + noise**2 * np.eye(len(x_ctx))
  k_tc = rbf(x_tgt, x_ctx, lengthscale, amplitude)
  chol = np.linalg.cholesky(k_cc)
  alpha = np.linalg.solve(chol.T, np.linalg.solve(chol, y_ctx))
  v = np.linalg.solve(chol, k_tc.T)
  var = amplitude**2 + noise**2 - np.sum(v * v, axis=0)
  return k_tc @ alpha, var


def gp_nll(batch: CNPBatch, lengthscale: float = 0.4, amplitude: float = 1.0, noise: float = 0.1) -> float:
  """Mean NLL per target point under the exact GP posterior predictive: the floor for a CNP."""
  total, count = 0.0, 0
  for b in range(batch.x_ctx_BxC.shape[0]):
    m = np.asarray(batch.mask_BxC[b])
    xc, yc = np.asarray(batch.x_ctx_BxC[b], np.float64)[m], np.asarray(batch.y_ctx_BxC[b], np.float64)[m]
    mu, var = gp_posterior(xc, yc, np.asarray(batch.x_tgt_BxT[b], np.float64), lengthscale, amplitude, noise)
    y = np.asarray(batch.y_tgt_BxT[b], np.float64)
    total += float(np.sum(0.5 * np.log(2 * math.pi * var) + 0.5 * np.square(y - mu) / var))
    count += len(y)
  return total / count
