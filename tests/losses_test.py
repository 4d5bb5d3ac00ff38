"""The central claim as jit-compiled tests: LM NLL and packed classification give bitwise-equal gradients."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given, settings, strategies as st

import jaxequiv
from jaxequiv import alphabet, batches, bitwise, losses, model, prefix
from tests import archs

T = 16
CASES = {
    "variable_lengths": ["Hello there.", "a.", "The cat sat on.", "Zz 9."],
    "duplicates": ["same.", "same.", "same.", "other."],
    "shared_prefixes": ["ab cd.", "ab ce.", "ab c.", "abd.", "a."],
    "single_period": [".", "x.", "."],
    "fill_context": ["x" * (T - 1) + ".", "The end is near" + ".", "y" * 7 + "."],
}


@functools.lru_cache(maxsize=None)
def _transformer(activation="gelu", dtype="float32", attention="auto"):
  cfg = model.ModelConfig(num_layers=2, width=32, num_heads=4, seq_len=T, activation=activation, dtype=dtype,
                          attention=attention)
  return model.init(jax.random.key(0), cfg), model.make_apply(cfg)


@functools.lru_cache(maxsize=None)
def _arch(name):
  if name == "conv":
    return archs.make(archs.CausalConv(), T)
  if name == "gru":
    return archs.make(archs.GRU(), T)
  return _transformer(*name.split("/"))


@functools.lru_cache(maxsize=None)
def _grad_fns(name):
  _, apply_fn = _arch(name)
  lm = jax.jit(jax.value_and_grad(functools.partial(jaxequiv.lm_nll, apply_fn=apply_fn)))
  clf = jax.jit(jax.value_and_grad(functools.partial(jaxequiv.classification_xent, apply_fn=apply_fn)))
  return lm, clf


R = 6  # fixed rows, so each architecture compiles once


def _lm_and_packed(sentences, shuffle_seed=None, fixed=True, packed=False):
  """LM batch in canonical order, and the packed prefix examples (optionally shuffled first).

  With ``fixed``, both are padded to R rows and the examples to R*T, so shapes never change. With
  ``packed``, several sentences share a row (segments starting with BOS) on both sides.
  """
  ex = jaxequiv.prefix_examples(sentences)
  if shuffle_seed is not None:
    ex = ex.take(np.random.default_rng(shuffle_seed).permutation(len(ex)))
  if not fixed:
    return (jaxequiv.lm_batch(jaxequiv.canonical_order(sentences), T, packed=packed),
            jaxequiv.pack(ex, T, packed=packed))
  lm = jaxequiv.lm_batch(jaxequiv.canonical_order(sentences), T, num_rows=R, packed=packed)
  return lm, jaxequiv.pad_examples(jaxequiv.pack(ex, T, num_rows=R, packed=packed), R * T)


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("name", ["gelu/float32", "relu/bfloat16", "tanh/float32", "conv", "gru"])
@pytest.mark.parametrize("layout", ["row_per_sentence", "packed"])
def test_gradients_bitwise_equal(case, name, layout):
  """Packed rows (several sentences per row) keep the equality exactly as one sentence per row does."""
  params, _ = _arch(name)
  lm_fn, clf_fn = _grad_fns(name)
  for shuffle_seed in (None, 1):
    lm, packed = _lm_and_packed(CASES[case], shuffle_seed, packed=layout == "packed")
    if layout == "packed" and name == "gelu/float32" and case != "fill_context":
      assert np.any(np.sum(lm.inputs == alphabet.BOS, axis=1) > 1), "a row holds several sentences"
    (l1, g1), (l2, g2) = lm_fn(params, lm), clf_fn(params, packed)
    report = bitwise.assert_bitwise_equal(g1, g2)
    assert report.leaves == len(jax.tree.leaves(params)) and report.elements > 0
    assert bitwise.bits(l1) == bitwise.bits(l2), (l1, l2)
    assert np.isfinite(l1) and any(np.any(bitwise.bits(g) != 0) for g in jax.tree.leaves(g1))


@pytest.mark.parametrize("case", ["variable_lengths", "shared_prefixes"])
def test_gradients_bitwise_equal_unpadded_shapes(case):
  """Without any padding: R = number of sentences, N = number of characters."""
  params, apply_fn = _transformer()
  lm, packed = _lm_and_packed(CASES[case], shuffle_seed=3, fixed=False)
  assert packed.tokens.shape == (len(CASES[case]), T) and len(packed.labels) == sum(map(len, CASES[case]))
  f = lambda loss, batch: jax.jit(jax.grad(functools.partial(loss, apply_fn=apply_fn)))(params, batch)
  bitwise.assert_bitwise_equal(f(jaxequiv.lm_nll, lm), f(jaxequiv.classification_xent, packed))


def test_a_different_batch_is_detected():
  """The bitwise check can fail: one changed label changes the gradient bits."""
  params, _ = _arch("gelu/float32")
  lm_fn, clf_fn = _grad_fns("gelu/float32")
  lm, packed = _lm_and_packed(CASES["variable_lengths"])
  labels = packed.labels.copy()
  labels[3] = (labels[3] + 1) % 64
  report = bitwise.compare_bits(lm_fn(params, lm)[1], clf_fn(params, packed._replace(labels=labels))[1])
  assert not report.equal and report.mismatched_elements > 0


def test_padded_examples_change_nothing():
  params, _ = _arch("gelu/float32")
  _, clf_fn = _grad_fns("gelu/float32")
  _, packed = _lm_and_packed(CASES["shared_prefixes"])
  packed = packed._replace(rows=packed.rows[:30], positions=packed.positions[:30], labels=packed.labels[:30])
  padded = jaxequiv.pad_examples(packed, R * T)
  (l1, g1), (l2, g2) = clf_fn(params, packed), clf_fn(params, padded)
  bitwise.assert_bitwise_equal((l1, g1), (l2, g2))


@pytest.mark.parametrize("dtype,packed", [("float32", False), ("float32", True),
                                          pytest.param("bfloat16", True, marks=pytest.mark.slow)])
def test_trajectories_bitwise_equal_for_50_adamw_steps(dtype, packed):
  params0, apply_fn = _transformer(dtype=dtype)
  opt = optax.adamw(3e-3)
  b = 4

  def make_step(loss_fn):
    @jax.jit
    def step(params, opt_state, batch):
      loss, g = jax.value_and_grad(functools.partial(loss_fn, apply_fn=apply_fn))(params, batch)
      updates, opt_state = opt.update(g, opt_state, params)
      return optax.apply_updates(params, updates), opt_state, loss
    return step

  lm_step, clf_step = make_step(jaxequiv.lm_nll), make_step(jaxequiv.classification_xent)
  rng = np.random.default_rng(0)
  corpus = [s for ss in CASES.values() for s in ss] + ["the quick fox.", "jumps over.", "Lazy dogs 42."]
  p_lm, s_lm = params0, opt.init(params0)
  p_clf, s_clf = params0, opt.init(params0)
  losses_seen = []
  for step in range(50):
    chunk = [corpus[i] for i in rng.choice(len(corpus), b, replace=False)]
    lm = jaxequiv.lm_batch(jaxequiv.canonical_order(chunk), T, num_rows=b, packed=packed)
    ex = jaxequiv.prefix_examples(chunk)
    clf = jaxequiv.pad_examples(jaxequiv.pack(ex.take(rng.permutation(len(ex))), T, num_rows=b, packed=packed), b * T)
    p_lm, s_lm, l1 = lm_step(p_lm, s_lm, lm)
    p_clf, s_clf, l2 = clf_step(p_clf, s_clf, clf)
    bitwise.assert_bitwise_equal((p_lm, s_lm, l1), (p_clf, s_clf, l2))
    losses_seen.append(float(l1))
  assert losses_seen[-1] < losses_seen[0], "training moved the params"
  assert not bitwise.compare_bits(p_lm, params0).equal


@pytest.mark.parametrize("case", ["variable_lengths", "shared_prefixes", "fill_context"])
def test_unpacked_within_float_rounding(case):
  """Independent evaluation: one row per example. float32 tolerance: max relative error per leaf <= 1e-5."""
  params, apply_fn = _transformer()
  lm_fn, clf_fn = _grad_fns("gelu/float32")
  lm, _ = _lm_and_packed(CASES[case])
  naive = jaxequiv.unpacked(jaxequiv.prefix_examples(CASES[case]), T)
  (l1, g1), (l2, g2) = lm_fn(params, lm), clf_fn(params, naive)
  loss_err = abs(float(l1) - float(l2)) / abs(float(l1))
  grad_err = bitwise.max_relative_error(g1, g2)
  print(f"{case}: loss rel err {loss_err:.2e}, max per-leaf grad rel err {grad_err:.2e},"
        f" max ULP {bitwise.max_ulp_distance(g1, g2)} (all elements),"
        f" {bitwise.max_ulp_distance(g1, g2, rel_floor=1e-3)} (|g| >= 1e-3 max|g| per leaf)")
  assert loss_err <= 1e-5 and grad_err <= 1e-5


def test_per_example_losses_match_the_mean():
  params, apply_fn = _transformer()
  lm, packed = _lm_and_packed(CASES["variable_lengths"], fixed=False)
  per_ex = losses.classification_xent_per_example(params, packed, apply_fn)
  per_tok = losses.lm_nll_per_token(params, lm, apply_fn)
  np.testing.assert_array_equal(bitwise.bits(per_ex), bitwise.bits(per_tok[packed.rows, packed.positions]))
  mean = jaxequiv.classification_xent(params, packed, apply_fn)
  assert abs(float(per_ex.mean()) - float(mean)) <= 1e-6 * float(mean)


def test_batch_shape_and_dtype_errors_state_the_shapes():
  params, apply_fn = _transformer()
  lm, packed = _lm_and_packed(CASES["duplicates"], fixed=False)
  with pytest.raises(ValueError, match=r"same shape \[R, T\].*mask \(4, 15\) bool"):
    jaxequiv.lm_nll(params, lm._replace(mask=lm.mask[:, :-1]), apply_fn)
  with pytest.raises(ValueError, match=r"integer arrays.*targets \(4, 16\) float32"):
    jaxequiv.lm_nll(params, lm._replace(targets=lm.targets.astype(np.float32)), apply_fn)
  with pytest.raises(ValueError, match=r"rows, positions and labels must all have shape \[N\].*labels \(5,\) int32"):
    jaxequiv.classification_xent(params, packed._replace(labels=packed.labels[:5]), apply_fn)
  with pytest.raises(ValueError, match=r"shape \[R, T\].*tokens \(64,\) int32"):
    jaxequiv.classification_xent(params, packed._replace(tokens=packed.tokens.reshape(-1)), apply_fn)
  bad = packed._replace(positions=np.where(np.arange(len(packed.positions)) == 2, T, packed.positions).astype(np.int32))
  with pytest.raises(ValueError, match=r"example 2 has position 16, outside \[0, 16\)"):
    jaxequiv.classification_xent(params, bad, apply_fn)
  clash = packed._replace(positions=np.zeros_like(packed.positions), rows=np.zeros_like(packed.rows))
  with pytest.raises(ValueError, match=r"share the slot \(row 0, position 0\)"):
    jaxequiv.classification_xent(params, clash, apply_fn)
  with pytest.raises(ValueError, match=r"apply_fn returned logits of shape \(4, 16, 10\)"):
    jaxequiv.lm_nll(params, lm, lambda p, x: jnp.zeros((*x.shape, 10)))


sentence_st = st.text(alphabet=alphabet.ALPHABET[:-1], min_size=0, max_size=T - 1).map(lambda s: s + ".")


@settings(max_examples=25, deadline=None)
@given(st.lists(sentence_st, min_size=1, max_size=6), st.integers(0, 2**31 - 1), st.booleans())
def test_property_gradients_bitwise_equal(sentences, seed, packed_rows):
  """Random sentence sets (duplicates, shared prefixes, '.', full context), shuffled examples, fixed shapes, both layouts."""
  params, _ = _arch("gelu/float32")
  lm_fn, clf_fn = _grad_fns("gelu/float32")
  lm, packed = _lm_and_packed(sentences, shuffle_seed=seed, packed=packed_rows)
  bitwise.assert_bitwise_equal(lm_fn(params, lm), clf_fn(params, packed))


@pytest.mark.slow
@settings(max_examples=400, deadline=None)
@given(st.lists(sentence_st, min_size=1, max_size=6), st.integers(0, 2**31 - 1), st.booleans())
def test_property_gradients_bitwise_equal_many_examples(sentences, seed, packed_rows):
  """The property test with 400 random sentence sets (slow: `pytest -m slow`)."""
  test_property_gradients_bitwise_equal.hypothesis.inner_test(sentences, seed, packed_rows)


@pytest.mark.parametrize("attention", ["einsum", "xla", "cudnn"])
@pytest.mark.parametrize("dtype", ["float32", pytest.param("bfloat16", marks=pytest.mark.slow)])
def test_gradients_bitwise_equal_with_dot_product_attention(attention, dtype):
  """jax.nn.dot_product_attention ("xla"; cuDNN's fused kernel on GPU, bf16) keeps the equality on packed rows."""
  if attention == "cudnn" and (jax.default_backend() != "gpu" or dtype != "bfloat16"):
    pytest.skip("cuDNN attention needs a GPU and 16-bit inputs")
  params, apply_fn = _transformer("gelu", dtype, attention)
  f = lambda loss, batch: jax.jit(jax.value_and_grad(functools.partial(loss, apply_fn=apply_fn)))(params, batch)
  lm, packed = _lm_and_packed(CASES["shared_prefixes"] + CASES["variable_lengths"], shuffle_seed=5, packed=True)
  report = bitwise.assert_bitwise_equal(f(jaxequiv.lm_nll, lm), f(jaxequiv.classification_xent, packed))
  print(f"{attention}/{dtype}: {report.elements} elements bitwise equal")


@pytest.mark.slow
@pytest.mark.parametrize("packed", [False, True])
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_bitwise_at_benchmark_scale_on_real_text(dtype, packed):
  """4 layers, width 128, T=128, 32 sentences of English prose from the builtin corpus (slow)."""
  from jaxequiv.lm import corpus  # pylint: disable=import-outside-toplevel
  t = 128
  fits = [s for s in corpus.builtin_sentences() if len(s) <= t]
  chunk = list(np.random.default_rng(0).choice(fits, 32, replace=False))
  cfg = model.ModelConfig(num_layers=4, width=128, num_heads=4, seq_len=t, dtype=dtype)
  params, apply_fn = model.init(jax.random.key(0), cfg), model.make_apply(cfg)
  ex = jaxequiv.prefix_examples(chunk)
  lm = jaxequiv.lm_batch(jaxequiv.canonical_order(chunk), t, packed=packed)
  clf = jaxequiv.pack(ex.take(np.random.default_rng(1).permutation(len(ex))), t, packed=packed)
  vg = lambda loss: jax.jit(jax.value_and_grad(functools.partial(loss, apply_fn=apply_fn)))
  report = bitwise.assert_bitwise_equal(vg(jaxequiv.lm_nll)(params, lm), vg(jaxequiv.classification_xent)(params, clf))
  print(f"{dtype}: {report.leaves} leaves, {report.elements:,} elements bitwise equal")
