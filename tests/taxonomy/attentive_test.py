"""Attentive CNP: padding never changes a prediction (bitwise), context order does not (to rounding), values do."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxequiv.taxonomy import attentive, cnp


@functools.cache
def _params():  # built on first use, not at import: every pytest worker imports every test module
  return attentive.init(jax.random.key(0), width=32)


@functools.cache
def _batch():
  return cnp.sample_tasks(jax.random.key(1), num=8, num_ctx=10, num_tgt=12)


PREDICT = jax.jit(lambda p, b: attentive.predict(p, b, heads=4))


def _bits(x):
  return np.asarray(x).view(np.uint32)


def test_masked_context_points_change_no_bit():
  batch = _batch()
  m1, v1 = PREDICT(_params(), batch)
  junk = batch._replace(y_ctx_BxC=jnp.where(batch.mask_BxC, batch.y_ctx_BxC, 123.0),
                        x_ctx_BxC=jnp.where(batch.mask_BxC, batch.x_ctx_BxC, -7.0))
  assert not bool(jnp.all(batch.mask_BxC)), "the batch must hold padded points for this test to mean anything"
  m2, v2 = PREDICT(_params(), junk)
  diff = int(np.sum(_bits(m1) != _bits(m2))) + int(np.sum(_bits(v1) != _bits(v2)))
  print(f"prediction bits that differ after rewriting the padded context: {diff} of {2 * m1.size}")
  assert diff == 0


def test_context_order_and_values():
  batch = _batch()
  full = batch._replace(mask_BxC=jnp.ones_like(batch.mask_BxC))
  perm = np.random.default_rng(2).permutation(10)
  permuted = full._replace(x_ctx_BxC=full.x_ctx_BxC[:, perm], y_ctx_BxC=full.y_ctx_BxC[:, perm])
  m1, m2 = PREDICT(_params(), full)[0], PREDICT(_params(), permuted)[0]
  err = float(jnp.max(jnp.abs(m1 - m2)))
  print(f"max |prediction(perm) - prediction| = {err:.2e} (float32 sum order)")
  assert err < 1e-5
  moved = full._replace(y_ctx_BxC=full.y_ctx_BxC + np.eye(10, dtype=np.float32)[3])
  assert float(jnp.max(jnp.abs(PREDICT(_params(), moved)[0] - m1))) > 1e-3   # a context value matters


def test_nll_is_the_gaussian_nll_of_its_prediction():
  batch = _batch()
  mean, var = PREDICT(_params(), batch)
  y = np.asarray(batch.y_tgt_BxT, np.float64)
  want = np.mean(0.5 * np.log(2 * np.pi * np.asarray(var, np.float64)) + (y - np.asarray(mean, np.float64)) ** 2
                 / (2 * np.asarray(var, np.float64)))
  got = float(jax.jit(lambda p, b: attentive.nll(p, b, heads=4))(_params(), batch))
  print(f"float32 NLL {got:.6f} vs float64 {want:.6f}")
  assert abs(got - want) < 1e-5 * max(1.0, abs(want))


def test_heads_must_divide_the_width():
  with pytest.raises(ValueError, match="width 32 is not a multiple of heads 5"):
    attentive.predict(_params(), _batch(), heads=5)
