"""The reductio, first half: LM NLL and packed classification give bitwise-equal gradients for every activation.

The equivalence is indifferent to whether the model is "rectangular" (ReLU), "tangential" (tanh) or GELU, in float32
and bfloat16 compute. Raw bits are compared (uint32 / uint16 views), not values.
"""

import jax
import numpy as np
import pytest

from jaxequiv import bitwise, model
from jaxequiv.roles import checks

# One cached set of compiled gradient functions per (activation, dtype), shared with roles.checks.
_setup = checks.grid_grad_fns


def _batches(shuffle_seed):
  return checks.grid_batches(shuffle_seed=shuffle_seed)


# bfloat16 compute for every activation is slow (pytest -m slow); in CI, tests/losses_test.py checks it with relu and
# `jaxequiv verify` with gelu.
@pytest.mark.parametrize("dtype", ["float32", pytest.param("bfloat16", marks=pytest.mark.slow)])
@pytest.mark.parametrize("activation", sorted(model.ACTIVATIONS))
def test_lm_and_packed_classifier_gradients_bitwise_equal(activation, dtype):
  params, lm_fn, clf_fn = _setup(activation, dtype)
  lm, packed = _batches(shuffle_seed=0)
  (l1, g1), (l2, g2) = lm_fn(params, lm), clf_fn(params, packed)
  report = bitwise.compare_bits(g1, g2)
  print(f"{activation}/{dtype}: {report.elements} gradient elements, {report.mismatched_elements} differ in bits;"
        f" loss {float(l1):.6f} vs {float(l2):.6f}")
  assert report.equal and report.leaves == len(jax.tree.leaves(params)) and report.elements > 0
  assert bitwise.bits(l1) == bitwise.bits(l2)
  assert sum(int(np.count_nonzero(bitwise.bits(g))) for g in jax.tree.leaves(g1)) > report.elements // 2


def test_the_grid_covers_every_activation_and_the_check_can_fail():
  """Negative control: another activation's gradient differs in its bits (so the comparison is not vacuous)."""
  assert set(model.ACTIVATIONS) >= {"relu", "tanh", "gelu"}
  lm, _ = _batches(shuffle_seed=0)
  params, relu_lm, _ = _setup("relu", "float32")
  _, tanh_lm, _ = _setup("tanh", "float32")
  report = bitwise.compare_bits(relu_lm(params, lm)[1], tanh_lm(params, lm)[1])
  print(f"relu vs tanh LM gradients: {report.mismatched_elements} of {report.elements} elements differ")
  assert not report.equal and report.mismatched_elements > 0
