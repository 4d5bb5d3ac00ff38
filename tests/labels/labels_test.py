"""Tests for jaxequiv.labels: the label trie and exact K-way <-> character conversions."""

from __future__ import annotations

import functools

import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

import jaxequiv
from jaxequiv import alphabet, bitwise
from jaxequiv import labels as L

EPS = float(np.finfo(np.float32).eps)
# Each new label set is a new shape, hence a new XLA compile (~0.5 s on this 2-core machine): few examples,
# each checked on a batch of rows with several logit scales.
HYP = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SCALES = np.array([0.1, 1.0, 5.0, 20.0], np.float32)[:, None]

# Jitted once per shape; the trie is a traced argument.
path_char_logprobs = jax.jit(L.path_char_logprobs)
char_conditionals = jax.jit(L.char_conditionals)
label_logprobs = jax.jit(L.label_logprobs, static_argnums=2)

# Few characters, so random labels share prefixes; '.' ends each label.
label_sets = st.lists(st.text("abc A", min_size=0, max_size=6).map(lambda s: s + "."),
                      min_size=1, max_size=10, unique=True)
seeds = st.integers(0, 2**31 - 1)


def _logits(seed: int, shape, scale=1.0) -> np.ndarray:
  return (scale * np.random.default_rng(seed).standard_normal(shape)).astype(np.float32)


def _log_softmax64(x) -> np.ndarray:
  x = np.asarray(x, np.float64)
  m = x.max(-1, keepdims=True)
  return x - m - np.log(np.exp(x - m).sum(-1, keepdims=True))


def _path_tol(trie: L.LabelTrie, x) -> float:
  """float32 tolerance for a telescoping sum of Lmax log-mass differences (each ~|x| in size)."""
  return 8 * (trie.max_len + 1) * EPS * (1.0 + float(np.max(np.abs(x))))


# ------------------------------------------------------------------ the trie


def test_small_trie_structure():
  trie = L.label_trie(["cat.", "car.", "dog."])
  assert (trie.num_nodes, trie.num_classes, trie.max_len) == (11, 3, 4)
  assert trie.labels == ("cat.", "car.", "dog.")
  assert L.node_prefixes(trie) == ["", "c", "d", "ca", "do", "car", "cat", "dog", "car.", "cat.", "dog."]
  np.testing.assert_array_equal(trie.leaf_class, [-1] * 8 + [1, 0, 2])
  np.testing.assert_array_equal(trie.label_nodes, [[0, 1, 3, 6, 9], [0, 1, 3, 5, 8], [0, 2, 4, 7, 10]])
  np.testing.assert_array_equal(trie.depth, [0, 1, 1, 2, 2, 3, 3, 3, 4, 4, 4])
  assert trie.child[3, alphabet.ALPHABET.index("t")] == 6 and trie.child[3, alphabet.ALPHABET.index("d")] == -1
  assert L.trie_text(trie) == "\n".join([
      "(root)", "+-- 'ca'", "|   +-- 'r.'  -> 1", "|   +-- 't.'  -> 0", "+-- 'dog.'  -> 2"])
  assert all(a.dtype == np.int32 for a in trie)


@HYP
@given(labels=label_sets)
def test_trie_invariants(labels):
  trie = L.label_trie(labels)
  prefixes = {s[:i] for s in labels for i in range(len(s) + 1)}
  assert trie.num_nodes == len(prefixes)
  assert sorted(L.node_prefixes(trie)) == sorted(prefixes)
  assert trie.labels == tuple(labels)
  n = np.arange(1, trie.num_nodes)
  assert np.all(trie.parent[n] < n) and np.all(np.diff(trie.depth) >= 0)  # BFS order.
  np.testing.assert_array_equal(trie.child[trie.parent[n], trie.char[n]], n)
  assert int((trie.child >= 0).sum()) == trie.num_nodes - 1
  for k, s in enumerate(labels):
    leaf = trie.label_nodes[k, len(s)]
    assert trie.leaf_class[leaf] == k and np.all(trie.child[leaf] < 0)
    assert L.node_prefixes(trie)[leaf] == s
    assert np.all(trie.label_nodes[k, len(s):] == leaf)
  desc = L.descendant_classes(trie)
  want = [[s.startswith(prefix) for s in labels] for prefix in L.node_prefixes(trie)]
  np.testing.assert_array_equal(desc, want)
  assert np.all(np.diff(trie.entry_node) >= 0) and len(trie.entry_node) == sum(len(s) + 1 for s in labels)
  # Leaves are exactly the nodes reached by '.'.
  np.testing.assert_array_equal(trie.leaf_class >= 0, trie.char == alphabet.PERIOD)


@pytest.mark.parametrize("labels, match", [
    (["cat.", "dog.", "cat."], r"labels 0 and 2 are both 'cat\.'"),
    (["cat.", "d\u00e9j\u00e0."], r"label 1: character '\u00e9' \(U\+00E9\) at position 1"),
    (["cat.", "do-g."], r"label 1: character '-' \(U\+002D\) at position 2"),
    (["cat.", ""], r"label 1 is empty"),
    (["cat", "dog."], r"label 0 does not end with '\.': last character 't' at position 2"),
    (["cat.", "a.b."], r"label 1 has a '\.' at position 1 before its end"),
    ([], r"labels is empty"),
])
def test_label_trie_errors(labels, match):
  with pytest.raises(ValueError, match=match):
    L.label_trie(labels)


def test_label_trie_type_errors():
  with pytest.raises(TypeError, match="not one str"):
    L.label_trie("cat.")
  with pytest.raises(TypeError, match="label 1: expected str, got int"):
    L.label_trie(["cat.", 3])


# ------------------------------------------------------ K-way -> characters


def test_path_char_logprobs_small():
  trie = L.label_trie(["cat.", "car.", "dog."])
  p = jnp.exp(L.path_char_logprobs(trie, jnp.log(jnp.array([[0.5, 0.3, 0.2]]))))
  np.testing.assert_allclose(p[0], [[0.8, 1, 0.625, 1], [0.8, 1, 0.375, 1], [0.2, 1, 1, 1]], rtol=1e-6)


def test_k_way_to_characters_is_exact():
  """Path sums reproduce log p(k); class xent == summed character xents; nodes sum to 1; -inf off the trie."""
  errs = {"path": [], "xent": [], "norm": []}

  @HYP
  @given(labels=label_sets, seed=seeds)
  def check(labels, seed):
    trie = L.label_trie(labels)
    x = _logits(seed, (4, len(labels)), SCALES)
    tol = _path_tol(trie, x)
    want = _log_softmax64(x)
    path = np.asarray(path_char_logprobs(trie, x), np.float64)
    err = np.max(np.abs(path.sum(-1) - want))
    errs["path"].append((err, err / tol))
    assert err <= tol, (err, tol)
    assert np.all(path[:, ~trie.label_mask] == 0)
    # Cross-entropies via the dense node conditionals (a separate gather).
    cond = char_conditionals(trie, x)
    yy = np.arange(4) % len(labels)  # One target class per row.
    class_xent = -want[np.arange(4), yy]
    prefix_4xL = trie.label_nodes[yy, :-1]
    cond_3xLx64 = np.asarray(cond)[np.arange(4)[:, None], prefix_4xL]
    char_xent = -np.take_along_axis(cond_3xLx64, trie.label_chars[yy][..., None], axis=-1)[..., 0]
    char_xent = np.where(trie.label_mask[yy], char_xent, 0).sum(-1)
    err = np.max(np.abs(char_xent - class_xent))
    errs["xent"].append((err, err / tol))
    assert err <= tol, (err, tol)
    # Each internal node's distribution sums to 1; characters with no child are -inf.
    inner = trie.leaf_class < 0
    sums = np.exp(np.asarray(cond, np.float64)).sum(-1)
    err = np.max(np.abs(sums[:, inner] - 1))
    errs["norm"].append((err, err / (64 * EPS)))
    assert err <= 64 * EPS, err
    assert np.all(np.isneginf(np.asarray(cond)[:, trie.child < 0]))
    assert not np.any(np.isnan(np.asarray(cond)))

  check()
  for k, v in errs.items():
    print(f"{k}: max |error| = {max(e for e, _ in v):.3g}, max error/tolerance = {max(r for _, r in v):.3g}"
          f" over {len(v)} label sets x 4 logit scales")
  print("tolerances: path/xent 8*(Lmax+1)*eps32*(1+max|logit|) nats; node sums 64*eps32")


def test_char_conditionals_zero_mass_nodes_have_no_nan():
  trie = L.label_trie(["ab.", "ac.", "d."])
  x = jnp.array([[0.0, -jnp.inf, -jnp.inf]])  # Only "ab." has mass: nodes "ac", "ac.", "d", "d." have none.
  cond = np.asarray(L.char_conditionals(trie, x))
  assert not np.any(np.isnan(cond))
  a, b, c, d = (alphabet.ALPHABET.index(ch) for ch in "abcd")
  assert cond[0, 0, a] == 0.0 and np.isneginf(cond[0, 0, d])
  assert cond[0, 1, b] == 0.0 and np.isneginf(cond[0, 1, c])
  np.testing.assert_allclose(np.exp(cond[0, trie.leaf_class < 0]).sum(-1)[:2], 1.0)


def test_grad_class_xent_equals_grad_char_xent():
  trie = L.label_trie(["cat.", "car.", "dog.", "do.", "c."])
  x = jnp.asarray(_logits(0, (4, 5), 2.0))
  y = jnp.array([0, 3, 2, 4])
  class_loss = lambda x: -jnp.sum(jax.nn.log_softmax(x)[jnp.arange(4), y])
  char_loss = lambda x: -jnp.sum(L.path_char_logprobs(trie, x)[jnp.arange(4), y])
  g1, g2 = jax.jit(lambda x: (jax.grad(class_loss)(x), jax.grad(char_loss)(x)))(x)
  err = float(jnp.max(jnp.abs(g1 - g2)))
  print(f"max |grad class xent - grad char xent| = {err:.3g} (tol 1e-5)")
  assert err <= 1e-5


def test_conversions_under_jit_and_vmap():
  trie = L.label_trie(["cat.", "car.", "dog.", "do."])
  x = jnp.asarray(_logits(1, (5, 4), 3.0))
  eager = L.path_char_logprobs(trie, x)
  traced = jax.jit(L.path_char_logprobs)(trie, x)  # trie fields traced as int32 arrays.
  closed = jax.jit(functools.partial(L.path_char_logprobs, trie))(x)  # trie as constants.
  vmapped = jax.vmap(lambda row: L.path_char_logprobs(trie, row[None])[0])(x)
  for other in (traced, closed, vmapped):
    np.testing.assert_allclose(other, eager, atol=1e-6)
  np.testing.assert_allclose(jax.jit(L.char_conditionals)(trie, x), L.char_conditionals(trie, x), atol=1e-6)
  chars = jnp.asarray(_logits(2, (5, 4, trie.max_len, 64), 1.0))
  np.testing.assert_allclose(jax.jit(L.label_logprobs, static_argnums=2)(trie, chars, True),
                             L.label_logprobs(trie, chars, True), atol=1e-6)


def test_class_logits_shape_error():
  trie = L.label_trie(["a.", "b."])
  with pytest.raises(ValueError, match=r"shape \[B, K=2\], got \(3,\)"):
    L.char_conditionals(trie, jnp.zeros(3))


# ------------------------------------------------------ characters -> K-way


@pytest.fixture(scope="module")
def tiny_model():
  """A 1-layer, width-32 transformer (seq_len 16) and its jitted apply(params, tokens)."""
  cfg = jaxequiv.ModelConfig(num_layers=1, width=32, num_heads=2, seq_len=16)
  params = jax.jit(jaxequiv.init, static_argnums=1)(jax.random.key(1), cfg)
  return cfg, params, jax.jit(jaxequiv.make_apply(cfg))


def _conditional_char_logits(trie, x_BxK):
  """Teacher-forced logits of the 'perfect' character model induced by a K-way model: [B, K, Lmax, 64]."""
  cond_BxNx64 = np.asarray(char_conditionals(trie, x_BxK))
  return cond_BxNx64[:, trie.label_nodes[:, :-1]]


def test_round_trip_k_way_characters_k_way():
  """K-way -> character model -> rank classification recovers log p(k), with zero leakage."""
  errs = []

  @HYP
  @given(labels=label_sets, seed=seeds)
  def check(labels, seed):
    trie = L.label_trie(labels)
    x = _logits(seed, (4, len(labels)), SCALES)
    # Past a label's end the node is a leaf (all -inf); give those steps any finite logits.
    chars = np.where(trie.label_mask[None, :, :, None], _conditional_char_logits(trie, x), 0.0)
    got = np.asarray(label_logprobs(trie, chars, False), np.float64)
    tol = _path_tol(trie, x)
    err = np.max(np.abs(got - _log_softmax64(x)))
    errs.append((err, err / tol))
    assert err <= tol
    leak = 1 - np.exp(got).sum(-1)
    assert np.max(np.abs(leak)) <= 8 * (trie.max_len + 1) * EPS, leak

  check()
  print(f"round trip: max |error| = {max(e for e, _ in errs):.3g} nats, max error/tolerance ="
        f" {max(r for _, r in errs):.3g} (tolerance 8*(Lmax+1)*eps32*(1+max|logit|))")


def test_label_model_inputs_match_lm_batch():
  trie = L.label_trie(["cat.", "car.", "dog.", "do."])
  batch = L.label_model_inputs(trie, 6)
  want = jaxequiv.lm_batch(["cat.", "car.", "dog.", "do."], 6)
  for a, b in zip(batch, want):
    np.testing.assert_array_equal(a, b)
  np.testing.assert_array_equal(batch.targets[:, :trie.max_len], np.where(trie.label_mask, trie.label_chars, 0))
  assert L.label_model_inputs(trie).inputs.shape == (4, 4)
  with pytest.raises(ValueError, match=r"seq_len=3 is shorter than label 0 \('cat\.', 4 characters\)"):
    L.label_model_inputs(trie, 3)


def test_label_logprobs_matches_lm_nll_and_leakage(tiny_model):
  """Unconstrained label log-probs are minus the per-sentence LM loss; leakage = 1 - their total mass."""
  trie = L.label_trie(["cat.", "car.", "dog.", "do."])
  cfg, params, apply_fn = tiny_model
  batch = L.label_model_inputs(trie, cfg.seq_len)
  logits = apply_fn(params, jnp.asarray(batch.inputs))
  got = L.label_logprobs(trie, logits[None])[0]
  per_token = jaxequiv.token_xent(logits, batch.targets)
  want = -jnp.sum(jnp.where(batch.mask, per_token, 0), axis=-1)
  np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
  leak = float(L.leakage(got[None])[0])
  want_leak = 1 - np.exp(np.asarray(got, np.float64)).sum()
  assert 0 < leak < 1 and abs(leak - want_leak) <= 1e-6, (leak, want_leak)
  # Constrained, the K labels hold all the mass.
  c = L.label_logprobs(trie, logits[None], constrained=True)
  assert abs(float(jax.nn.logsumexp(c))) <= 1e-6


def test_constrained_distribution_sums_to_one():
  errs = []

  @HYP
  @given(labels=label_sets, seed=seeds)
  def check(labels, seed):
    trie = L.label_trie(labels)
    # A consistent model: rows that share a prefix get the same logits there (one draw per trie node).
    node_logits = _logits(seed, (4, trie.num_nodes, 64), SCALES[:, :, None])
    lp = label_logprobs(trie, node_logits[:, trie.label_nodes[:, :-1]], True)
    err = float(np.max(np.abs(np.exp(np.asarray(lp, np.float64)).sum(-1) - 1)))
    tol = 4 * (trie.max_len + 1) * 64 * EPS
    errs.append((err, err / tol))
    assert err <= tol, (err, tol)

  check()
  print(f"sum_k q(k) - 1: max |error| = {max(e for e, _ in errs):.3g}, max error/tolerance ="
        f" {max(r for _, r in errs):.3g} (tolerance 4*(Lmax+1)*64*eps32)")


def test_constrained_logprobs_masks_and_normalises():
  trie = L.label_trie(["cat.", "car.", "dog."])
  logits = jnp.asarray(_logits(3, (11, 64), 4.0))
  lp = np.asarray(L.constrained_logprobs(trie, jnp.arange(11), logits))
  assert not np.any(np.isnan(lp))
  np.testing.assert_array_equal(np.isneginf(lp), trie.child < 0)
  inner = trie.leaf_class < 0
  np.testing.assert_allclose(np.exp(lp[inner].astype(np.float64)).sum(-1), 1.0, atol=64 * EPS)
  assert L.advance(trie, jnp.array([0, 3, 3]), jnp.array([2, 19, 3])).tolist() == [1, 6, -1]


# ---------------------------------------------------------------- decoding


def _fixed_step(table: dict[str, list[float]]):
  """A fake model: logits looked up by the decoded prefix (tokens after BOS up to the position)."""

  def step_fn(tokens_BxT, position):
    def one(row):
      key = alphabet.decode(np.asarray(row)[1:int(position) + 1])
      return np.asarray(table.get(key, np.zeros(64)), np.float32)  # Finished rows: anything.
    return jnp.asarray(np.stack([one(r) for r in np.asarray(tokens_BxT)]))

  return step_fn


def _onehotish(**probs):
  """Logits over 64 characters: log of the given probabilities, -30 elsewhere."""
  out = np.full(64, -30.0, np.float32)
  for ch, p in probs.items():
    out[alphabet.ALPHABET.index(ch) if ch != "dot" else alphabet.PERIOD] = np.log(p)
  return out


def _callback_step(table):
  """Wraps a Python step function so it runs inside jitted lax loops."""
  fn = _fixed_step(table)

  def step_fn(tokens, position):
    return jax.pure_callback(lambda t, p: fn(t, p), jax.ShapeDtypeStruct((tokens.shape[0], 64), jnp.float32),
                             tokens, position)

  return step_fn


def test_greedy_and_beam_on_known_logits():
  # p(a)=.6, p(d)=.4 at the root; after 'a', 'b' and 'c' are equally likely (.5 each).
  # Greedy takes 'a' then 'b' (.3); the best label is "d." (.4), which beam search finds.
  # 'z' (outside the trie) gets the biggest logit everywhere and must never be emitted.
  trie = L.label_trie(["ab.", "ac.", "d."])
  z = dict(z=50.0)
  table = {
      "": _onehotish(a=0.6, d=0.4, **z), "a": _onehotish(b=0.5, c=0.5, **z), "d": _onehotish(dot=1.0, **z),
      "ab": _onehotish(dot=1.0, **z), "ac": _onehotish(dot=1.0, **z),
  }
  step = _callback_step(table)
  g = jax.jit(lambda: L.greedy_decode(trie, step, 2))()
  assert g.classes.tolist() == [0, 0]
  np.testing.assert_allclose(g.logprobs, np.log(0.3), rtol=1e-5)
  bm = jax.jit(lambda: L.beam_decode(trie, step, 2, beam_size=2))()
  assert bm.classes.tolist() == [2, 2] and bm.beam_classes.tolist() == [[2, 0], [2, 0]]
  np.testing.assert_allclose(bm.beam_logprobs[0], np.log([0.4, 0.3]), rtol=1e-5)
  b1 = jax.jit(lambda: L.beam_decode(trie, step, 1, beam_size=1))()
  assert b1.classes.tolist() == [0]
  b5 = jax.jit(lambda: L.beam_decode(trie, step, 1, beam_size=5, seq_len=6))()
  assert b5.beam_classes.tolist() == [[2, 0, 1, -1, -1]]
  np.testing.assert_allclose(b5.beam_logprobs[0, :3], np.log([0.4, 0.3, 0.3]), rtol=1e-5)
  assert np.all(np.isneginf(b5.beam_logprobs[0, 3:]))


def test_decoding_never_leaves_the_trie_even_with_zero_probability_labels():
  trie = L.label_trie(["ab.", "ac.", "d."])
  step = lambda tokens, t: jnp.full((tokens.shape[0], 64), -jnp.inf).at[:, 25].set(0.0)  # Only 'z'.
  # The trie passed as a (traced) argument this time.
  greedy, beam = jax.jit(lambda tr: (L.greedy_decode(tr, step, 3), L.beam_decode(tr, step, 3, beam_size=4)))(trie)
  for out in (greedy, beam):
    assert set(out.classes.tolist()) <= {0, 1, 2}
  assert sorted(beam.beam_classes[0].tolist()) == [-1, 0, 1, 2]


def _causal_fake_model(seed: int, seq_len: int):
  """A causal 'model': logits at t = sum_{s<=t} W[s, token_s]. Returns full(tokens_RxT) -> [R, T, 64]."""
  w = jnp.asarray(_logits(seed, (seq_len, alphabet.INPUT_VOCAB, 64), 1.5))

  def full(tokens_RxT):
    return jnp.cumsum(w[jnp.arange(tokens_RxT.shape[1])[None, :], tokens_RxT], axis=1)

  return full


def test_beam_with_k_beams_is_exact_brute_force():
  """beam_size >= K returns every label with its constrained log-prob; the best is the brute-force argmax."""
  errs = []

  @settings(HYP, max_examples=6)
  @given(labels=label_sets, seed=seeds, extra=st.integers(0, 2))
  def check(labels, seed, extra):
    trie = L.label_trie(labels)
    k, b, w, t = len(labels), 2, len(labels) + extra, trie.max_len + 1
    full = _causal_fake_model(seed, t)
    bias = jnp.asarray(_logits(seed + 1, (b, 64), 2.0))  # Per-input features; beam rows are input-major.
    step = lambda tokens, pos: full(tokens)[:, pos] + jnp.repeat(bias, w, axis=0)
    step1 = lambda tokens, pos: full(tokens)[:, pos] + bias  # One row per input.
    out, greedy, beam1 = jax.jit(lambda: (L.beam_decode(trie, step, b, beam_size=w, seq_len=t),
                                          L.greedy_decode(trie, step1, b, seq_len=t),
                                          L.beam_decode(trie, step1, b, beam_size=1, seq_len=t)))()
    rows = jnp.asarray(L.label_model_inputs(trie, t).inputs)
    brute = np.asarray(label_logprobs(trie, full(rows)[None] + bias[:, None, None, :], True))
    tol = 8 * (trie.max_len + 1) * EPS * (1 + float(np.max(np.abs(brute))))
    for i in range(b):
      assert sorted(out.beam_classes[i, :k].tolist()) == list(range(k))
      assert np.all(np.asarray(out.beam_classes[i, k:]) == -1)
      got = np.asarray(out.beam_logprobs[i, :k])
      err = np.max(np.abs(got - brute[i, np.asarray(out.beam_classes[i, :k])]))
      errs.append((err, err / tol))
      assert err <= tol, (err, tol)
      assert np.all(np.diff(got) <= 0)  # Sorted best first.
      top2 = np.sort(brute[i])[::-1][:2]
      if k == 1 or top2[0] - top2[1] > 2 * tol:  # Else a near-tie: either answer is right.
        assert int(out.classes[i]) == int(np.argmax(brute[i]))
      assert float(out.logprobs[i]) >= brute[i].max() - tol
    np.testing.assert_array_equal(greedy.classes, beam1.classes)
    np.testing.assert_allclose(greedy.logprobs, beam1.logprobs, atol=tol)

  check()
  print(f"beam vs brute force log-probs: max |error| = {max(e for e, _ in errs):.3g} nats,"
        f" max error/tolerance = {max(r for _, r in errs):.3g}"
        " (tolerance 8*(Lmax+1)*eps32*(1+max|logprob|))")


def test_stateful_step_fn_matches_stateless():
  """A state-carrying step (running sum = the fake causal model) decodes like the stateless one; beams reorder state."""
  trie = L.label_trie(["cat.", "car.", "cart.", "dog.", "do.", "c.", "cab."])
  b, w, t = 3, 4, trie.max_len
  wt = jnp.asarray(_logits(5, (t, alphabet.INPUT_VOCAB, 64), 1.5))
  bias = jnp.asarray(_logits(6, (b, 64), 2.0))
  full = lambda tok: jnp.cumsum(wt[jnp.arange(t)[None, :], tok], axis=1)

  def run(width):
    rep = jnp.repeat(bias, width, axis=0)
    stateless = lambda tok, pos: full(tok)[:, pos] + rep

    def stateful(acc, tok, pos):
      acc = acc + wt[pos, tok[:, pos]]
      return acc + rep, acc

    zero = jnp.zeros((b * width, 64))
    if width == 1:
      return (L.greedy_decode(trie, stateless, b), L.greedy_decode(trie, stateful, b, init_state=zero))
    return (L.beam_decode(trie, stateless, b, width), L.beam_decode(trie, stateful, b, width, init_state=zero))

  for width in (1, w):
    plain, cached = jax.jit(lambda: run(width))()
    np.testing.assert_array_equal(plain.beam_classes, cached.beam_classes)
    np.testing.assert_allclose(plain.beam_logprobs, cached.beam_logprobs, atol=1e-5)
  again, _ = jax.jit(lambda: run(w))()  # Deterministic: a second jit and run give the same bits.
  bitwise.assert_bitwise_equal(plain, again)


def test_beam_decode_with_kv_cache(tiny_model):
  """The KV-cached decoder (jaxequiv.lm.decoding) as a state-carrying step gives the same beams as full recompute."""
  from jaxequiv.lm import decoding  # pylint: disable=import-outside-toplevel
  trie = L.label_trie(["cat.", "car.", "cart.", "dog.", "do.", "c.", "cab."])
  cfg, params, _ = tiny_model
  b, w = 2, 3
  full_step = lambda tok, pos: jaxequiv.apply(params, tok, cfg)[:, pos]
  cache_step = lambda cache, tok, pos: decoding.decode_step(params, cache, tok[:, pos], pos, cfg)
  plain, cached = jax.jit(lambda: (
      L.beam_decode(trie, full_step, b, w, cfg.seq_len),
      L.beam_decode(trie, cache_step, b, w, cfg.seq_len, init_state=decoding.init_cache(cfg, b * w))))()
  np.testing.assert_array_equal(plain.beam_classes, cached.beam_classes)
  err = float(jnp.max(jnp.abs(plain.beam_logprobs - cached.beam_logprobs)))
  print(f"KV-cached vs recomputed beam log-probs: max |error| = {err:.3g} (tol 1e-5)")
  assert err <= 1e-5


def test_beam_decode_with_the_transformer(tiny_model):
  """With the jaxequiv transformer as step function, beam search (W = K) scores labels like teacher forcing."""
  trie = L.label_trie(L.normalize_labels(["maple_tree", "oak_tree", "orchid", "otter", "ray", "rose"]))
  cfg, params, apply_fn = tiny_model
  step = lambda p, tokens, t: jaxequiv.apply(p, tokens, cfg)[:, t]
  decode = jax.jit(lambda p: L.beam_decode(trie, functools.partial(step, p), 1, trie.num_classes, cfg.seq_len))
  out = decode(params)
  logits = apply_fn(params, jnp.asarray(L.label_model_inputs(trie, cfg.seq_len).inputs))
  brute = L.label_logprobs(trie, logits[None], constrained=True)[0]
  err = float(jnp.max(jnp.abs(out.beam_logprobs[0] - brute[out.beam_classes[0]])))
  print(f"transformer beam vs teacher forcing: max |error| = {err:.3g} (tol 1e-5)")
  assert err <= 1e-5
  assert int(out.classes[0]) == int(jnp.argmax(brute))
  g = jax.jit(lambda p: L.greedy_decode(trie, functools.partial(step, p), 1, cfg.seq_len))(params)
  # Greedy's reported log-probability is its label's teacher-forced constrained log-probability, and no beam beats the
  # exact argmax that beam search (W = K) found.
  g_err = abs(float(g.logprobs[0]) - float(brute[g.classes[0]]))
  print(f"greedy vs teacher forcing: |error| = {g_err:.3g} (tol 1e-5)")
  assert g_err <= 1e-5 and float(g.logprobs[0]) <= float(out.logprobs[0]) + 1e-6


def test_decode_argument_errors():
  trie = L.label_trie(["ab.", "c."])
  step = lambda tokens, t: jnp.zeros((tokens.shape[0], 64))
  with pytest.raises(ValueError, match="seq_len=2 is shorter"):
    L.greedy_decode(trie, step, 1, seq_len=2)
  with pytest.raises(ValueError, match="beam_size must be >= 1"):
    L.beam_decode(trie, step, 1, beam_size=0)
  with pytest.raises(ValueError, match=r"step_fn returned logits of shape \(1, 10\)"):
    L.greedy_decode(trie, lambda tokens, t: jnp.zeros((1, 10)), 1)


# ------------------------------------------------------------- class names


@pytest.mark.parametrize("name, label", [
    ("maple_tree", "maple tree."),
    ("aquarium_fish", "aquarium fish."),
    ("n01440764 tench", "tench."),
    ("n01440764", "n01440764."),
    ("tench, Tinca tinca", "tench."),
    ("St. Bernard", "St Bernard."),
    ("jack-o'-lantern", "jack o lantern."),
    ("  Caf\u00e9_au_lait ", "Cafe au lait."),
    ("what?!", "what."),
])
def test_normalize_label(name, label):
  out = L.normalize_label(name)
  assert out == label
  L.label_trie([out])  # A valid label.


def test_normalize_label_options_and_errors():
  assert L.normalize_label("German_Shepherd", lowercase=True) == "german shepherd."
  assert L.normalize_label("tench, Tinca tinca", first_synonym=False) == "tench Tinca tinca."
  with pytest.raises(ValueError, match=r"class name '\?\?' has no letter or digit"):
    L.normalize_label("??")
  with pytest.raises(ValueError, match=r"class names 0 \('maple_tree'\) and 1 \('maple tree'\) both normalise"):
    L.normalize_labels(["maple_tree", "maple tree"])


# ------------------------------------------------------------------ drawing


def test_trie_figure():
  trie = L.label_trie(L.normalize_labels(["apple", "aquarium_fish", "baby", "bear", "beaver"]))
  fig = L.trie_figure(trie)
  texts = [t.get_text() for t in fig.axes[0].texts]
  assert {"0", "1", "2", "3", "4"} <= set(texts)
  assert {"a", "pple.", "quarium fish.", "b", "aby.", "ea", "r.", "ver."} <= set(texts)
  assert "5 labels" in fig.axes[0].get_title()
