"""jaxequiv.batches: canonical order of any iterable, and the paired LM/classifier batches (jaxequiv.prefix)."""

import functools

import jax
import numpy as np
import pytest

from jaxequiv import batches, bitwise, losses, model, packing

SENTENCES = ["The cat sat.", "A dog ran home.", "we sing.", "Go.", "It is 9 o clock."]
CFG = model.ModelConfig(num_layers=1, width=16, num_heads=2, seq_len=20)


def test_canonical_order_of_a_generator_is_the_order_of_its_list():
  want = batches.canonical_order(SENTENCES)
  assert len(want) == len(SENTENCES)
  assert batches.canonical_order(s for s in SENTENCES) == want  # was [] (the type check consumed it)
  assert batches.canonical_order(iter(SENTENCES), max_len=20) == want
  with pytest.raises(TypeError, match="sentence 1 is a int"):
    batches.canonical_order(x for x in ["a.", 3])


def test_paired_batches_hold_the_same_rows_whatever_the_given_order():
  shuffled = SENTENCES[::-1]
  for packed in (False, True):
    lm, clf = packing.paired_batches(shuffled, CFG.seq_len, packed=packed)
    np.testing.assert_array_equal(lm.inputs, clf.tokens)
    lm2, clf2 = packing.paired_batches(SENTENCES, CFG.seq_len, packed=packed)
    bitwise.assert_bitwise_equal(lm, lm2)
    bitwise.assert_bitwise_equal(clf, clf2)


def test_paired_batches_give_bitwise_equal_gradients_and_the_given_order_does_not():
  params = jax.jit(model.init, static_argnums=1)(jax.random.key(0), CFG)
  apply_fn = model.make_apply(CFG)
  grad_lm, grad_clf = (jax.jit(jax.grad(functools.partial(loss, apply_fn=apply_fn)))
                       for loss in (losses.lm_nll, losses.classification_xent))
  lm, clf = packing.paired_batches(SENTENCES, CFG.seq_len)
  g_clf = grad_clf(params, clf)
  bitwise.assert_bitwise_equal(grad_lm(params, lm), g_clf)
  unordered = batches.lm_batch(SENTENCES, CFG.seq_len)  # the newcomer's mistake: same sentences, other rows
  rep = bitwise.compare_bits(grad_lm(params, unordered), g_clf)
  print("given order vs canonical:", rep)
  assert not rep.equal
