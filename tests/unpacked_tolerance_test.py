"""The unpacked path (one row per example) agrees with the LM to float32 rounding, within a bound that grows with N."""

import functools

import jax
import numpy as np
import pytest

import jaxequiv
from jaxequiv import bitwise

T = 16


@pytest.mark.parametrize("copies", [1, 200])
def test_unpacked_within_the_stated_bound_including_many_duplicates(copies):
  """200 copies of one 15-character sentence: 3,000 one-example rows (the case that once broke a flat 1e-5)."""
  sentences = ["The cat sat on."] * copies if copies > 1 else ["The cat sat on.", "a.", "Hello there.", "Zz 9."]
  cfg = jaxequiv.ModelConfig(num_layers=1, width=32, num_heads=4, seq_len=T)
  params, apply_fn = jaxequiv.init(jax.random.key(0), cfg), jaxequiv.make_apply(cfg)
  vg = lambda loss: jax.jit(jax.value_and_grad(functools.partial(loss, apply_fn=apply_fn)))  # noqa: E731
  ex = jaxequiv.prefix_examples(sentences)
  with jax.default_matmul_precision("float32"):
    (l1, g1) = vg(jaxequiv.lm_nll)(params, jaxequiv.lm_batch(jaxequiv.canonical_order(sentences), T))
    (l2, g2) = vg(jaxequiv.classification_xent)(params, jaxequiv.unpacked(ex, T))
  rtol = bitwise.unpacked_rtol(len(ex))
  err = bitwise.max_relative_error(g1, g2)
  loss_err = abs(float(l1) - float(l2)) / abs(float(l1))
  print(f"N={len(ex)}: max per-leaf grad rel err {err:.2e}, loss rel err {loss_err:.2e}, bound {rtol:.2e}")
  assert err <= rtol and loss_err <= rtol


def test_the_bound_grows_like_sqrt_n():
  assert bitwise.unpacked_rtol(10) == bitwise.unpacked_rtol(500) == 1e-5
  assert bitwise.unpacked_rtol(2000) == pytest.approx(2e-5)
  assert np.isclose(bitwise.unpacked_rtol(3000), 1e-5 * np.sqrt(6))
