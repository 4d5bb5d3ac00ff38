"""The (sum, count) and from-logits forms of both losses: bitwise twins of the means, and exact gradient accumulation."""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import given, settings, strategies as st

import jaxequiv
from jaxequiv import bitwise

T = 16
SENTENCES = ["Hello there.", "a.", "The cat sat on.", "Zz 9.", "ab cd.", "ab ce.", "x" * (T - 1) + "."]
CFG = jaxequiv.ModelConfig(num_layers=1, width=32, num_heads=4, seq_len=T)
APPLY = jaxequiv.make_apply(CFG)
_params = functools.cache(lambda: jaxequiv.init(jax.random.key(0), CFG))  # on first use, not at import


def _mean_from_sum(sum_fn):
  def loss(params, batch):
    total, count = sum_fn(params, batch, APPLY)
    return total / count
  return loss


class SumCountTest(chex.TestCase):

  @chex.variants(with_jit=True, without_jit=True)
  def test_sum_forms_are_the_means_numerator_and_denominator_bitwise(self):
    lm = jaxequiv.lm_batch(jaxequiv.canonical_order(SENTENCES), T)
    packed = jaxequiv.pack(jaxequiv.prefix_examples(SENTENCES), T)
    lm_sum = self.variant(functools.partial(jaxequiv.lm_nll_sum, apply_fn=APPLY))
    clf_sum = self.variant(functools.partial(jaxequiv.classification_xent_sum, apply_fn=APPLY))
    (s1, c1), (s2, c2) = lm_sum(_params(), lm), clf_sum(_params(), packed)
    chex.assert_shape([s1, c1, s2, c2], ())
    chex.assert_type([s1, s2], jnp.float32)
    assert int(c1) == int(c2) == sum(len(s) for s in SENTENCES)
    bitwise.assert_bitwise_equal((s1, c1), (s2, c2))
    mean = self.variant(functools.partial(jaxequiv.lm_nll, apply_fn=APPLY))(_params(), lm)
    bitwise.assert_bitwise_equal(mean, s1 / c1)

  def test_sum_form_gradients_are_bitwise_equal_under_jit(self):
    lm = jaxequiv.lm_batch(jaxequiv.canonical_order(SENTENCES), T)
    ex = jaxequiv.prefix_examples(SENTENCES)
    packed = jaxequiv.pack(ex.take(np.random.default_rng(0).permutation(len(ex))), T)
    g = lambda f: jax.jit(jax.grad(lambda p, b: f(p, b, APPLY)[0]))  # noqa: E731
    rep = bitwise.assert_bitwise_equal(g(jaxequiv.lm_nll_sum)(_params(), lm), g(jaxequiv.classification_xent_sum)(_params(), packed))
    assert rep.elements > 1000

  @chex.variants(with_jit=True)
  def test_from_logits_forms_equal_the_apply_fn_forms_bitwise(self):
    lm = jaxequiv.lm_batch(jaxequiv.canonical_order(SENTENCES), T)
    packed = jaxequiv.pack(jaxequiv.prefix_examples(SENTENCES), T)
    pairs = [
        (lambda p: jaxequiv.lm_nll(p, lm, APPLY), lambda p: jaxequiv.lm_nll_from_logits(APPLY(p, lm.inputs), lm)),
        (lambda p: jaxequiv.lm_nll_sum(p, lm, APPLY), lambda p: jaxequiv.lm_nll_sum_from_logits(APPLY(p, lm.inputs), lm)),
        (lambda p: jaxequiv.classification_xent(p, packed, APPLY),
         lambda p: jaxequiv.classification_xent_from_logits(APPLY(p, packed.tokens), packed)),
        (lambda p: jaxequiv.classification_xent_sum(p, packed, APPLY),
         lambda p: jaxequiv.classification_xent_sum_from_logits(APPLY(p, packed.tokens), packed)),
    ]
    for a, b in pairs:
      bitwise.assert_bitwise_equal(self.variant(a)(_params()), self.variant(b)(_params()))
    ga = self.variant(jax.grad(pairs[0][0]))(_params())
    gb = self.variant(jax.grad(pairs[2][1]))(_params())
    bitwise.assert_bitwise_equal(ga, gb)

  def test_from_logits_checks_the_logits_shape(self):
    lm = jaxequiv.lm_batch(["Hi."], T)
    with self.assertRaisesRegex(ValueError, r"logits have shape \(1, 16, 10\) for tokens \(1, 16\); expected \(1, 16, 64\)"):
      jaxequiv.lm_nll_from_logits(jnp.zeros((1, T, 10)), lm)


R = len(SENTENCES)  # fixed rows (and R*T examples), so each program compiles once


def _fixed_rows(batch):
  """A packed classification batch padded to R rows of PAD and R*T examples (padding: row R)."""
  r = batch.tokens.shape[0]
  tokens = np.concatenate([batch.tokens, np.full((R - r, T), jaxequiv.PAD, np.int32)])
  rows = np.where(np.asarray(batch.rows) == r, R, batch.rows).astype(np.int32)
  return jaxequiv.pad_examples(batch._replace(tokens=tokens, rows=rows), R * T)


@functools.lru_cache(maxsize=None)
def _sum_grad(sum_fn):
  return jax.jit(jax.grad(lambda p, b: sum_fn(p, b, APPLY), has_aux=True))


def _accumulate(sum_fn, batches):
  pairs = [_sum_grad(sum_fn)(_params(), b) for b in batches]
  total = sum(float(c) for _, c in pairs)
  return jax.tree.map(lambda *x: sum(x) / total, *[g for g, _ in pairs])


@functools.lru_cache(maxsize=None)
def _mean_grad():
  return jax.jit(jax.grad(functools.partial(jaxequiv.lm_nll, apply_fn=APPLY)))


@settings(max_examples=8, deadline=None)
@given(st.integers(1, len(SENTENCES) - 1), st.integers(0, 1000))
def test_gradient_accumulation_with_sums_is_exact_and_mean_of_means_is_not(split, seed):
  """Micro-batches with different prediction counts: sum/count accumulation matches the full batch to float32 rounding.

  Tolerance: 1e-5 relative per leaf (the accumulated sum adds one float32 rounding per micro-batch, ~2^-24 each).
  The mean of the micro-batch means is a different estimator: it differs by far more (printed).
  """
  order = list(np.random.default_rng(seed).permutation(SENTENCES))
  parts = [order[:split], order[split:]]
  mean_g = _mean_grad()
  full = mean_g(_params(), jaxequiv.lm_batch(jaxequiv.canonical_order(order), T, num_rows=R))
  micro = [jaxequiv.lm_batch(jaxequiv.canonical_order(p), T, num_rows=R) for p in parts]
  acc = _accumulate(jaxequiv.lm_nll_sum, micro)
  ex = [jaxequiv.prefix_examples(p) for p in parts]
  acc_clf = _accumulate(jaxequiv.classification_xent_sum, [_fixed_rows(jaxequiv.pack(e, T)) for e in ex])
  mean_of_means = jax.tree.map(lambda a, b: (a + b) / 2, *[mean_g(_params(), b) for b in micro])
  err = bitwise.max_relative_error(full, acc)
  bias = bitwise.max_relative_error(full, mean_of_means)
  print(f"split {split}: sum/count accumulation rel err {err:.2e}; mean of means rel err {bias:.2e}")
  assert err <= 1e-5
  bitwise.assert_bitwise_equal(acc, acc_clf)  # the classifier's accumulation is the LM's, bit for bit
  counts = [sum(len(s) for s in p) for p in parts]
  if counts[0] != counts[1]:
    assert bias > 10 * max(err, 1e-7)
