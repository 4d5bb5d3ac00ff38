"""Tests for the batch iterators: fixed shapes, determinism, pairing with the LM, iid counts, padding."""

import collections
import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxequiv import alphabet, bitwise, losses, model, packing, prefix
from jaxequiv.lm import corpus
from jaxequiv.lm import data
from jaxequiv.lm import grammar

T = 32
B = 8
SENTENCES = [s for s in grammar.sample_sentences(grammar.default_grammar(), 400, seed=0) if len(s) <= T][: 10 * B]
assert len(SENTENCES) == 10 * B  # divisible by B


def _as_int(tree):
  """bool leaves as int32 (``bitwise.bits`` views 2-, 4- and 8-byte dtypes)."""
  return jax.tree.map(lambda x: np.asarray(x).astype(np.int32) if np.asarray(x).dtype == bool else x, tree)


def _bits_equal(a, b) -> bool:
  return bitwise.compare_bits(_as_int(a), _as_int(b)).equal


def _segments(batch):
  """The sentences of an LMBatch, row by row, segment by segment."""
  out = []
  for inp, tgt, m in zip(batch.inputs, batch.targets, batch.mask):
    starts = list(np.flatnonzero(inp == alphabet.BOS)) + [int(m.sum())]
    out += [alphabet.decode(tgt[s:e]) for s, e in zip(starts[:-1], starts[1:])]
  return out


def _steps_per_epoch(sentences, packed):
  return max(1, sum(map(len, sentences)) // (B * T)) if packed else len(sentences) // B


@pytest.mark.parametrize("packed", [False, True])
def test_lm_batches_fixed_shapes_and_epochs(packed):
  s = SENTENCES[:-3]
  out = list(data.lm_batches(s, B, T, epochs=2, packed=packed))
  assert len(out) == 2 * _steps_per_epoch(s, packed)  # partial batches dropped
  for b in out:
    assert b.inputs.shape == b.targets.shape == b.mask.shape == (B, T)
    assert b.inputs.dtype == np.int32 and b.mask.dtype == bool
  endless = data.lm_batches(SENTENCES, B, T, packed=packed)
  assert len(list(itertools.islice(endless, 25))) == 25


def test_lm_batches_are_deterministic_shuffled_and_canonical():
  a = list(data.lm_batches(SENTENCES, B, T, seed=1, epochs=2, packed=False))
  b = list(data.lm_batches(SENTENCES, B, T, seed=1, epochs=2, packed=False))
  c = list(data.lm_batches(SENTENCES, B, T, seed=2, epochs=2, packed=False))
  assert _bits_equal(a, b)
  assert not _bits_equal(a, c)
  steps = len(SENTENCES) // B
  rows = lambda batches: [alphabet.decode(r) for x in batches for r in np.where(x.mask, x.targets, alphabet.PAD)]  # noqa: E731
  epoch0, epoch1 = rows(a[:steps]), rows(a[steps:])
  assert sorted(epoch0) == sorted(epoch1) == sorted(SENTENCES)  # every sentence once per epoch
  assert epoch0 != epoch1  # reshuffled
  for x in a:
    s = [alphabet.decode(r) for r in np.where(x.mask, x.targets, alphabet.PAD)]
    assert s == alphabet.validate_sentences(s) and s == data.batches.canonical_order(s)


def test_packed_lm_batches_use_each_sentence_at_most_once_per_epoch_and_are_dense():
  a = list(data.lm_batches(SENTENCES, B, T, seed=1, epochs=2))
  b = list(data.lm_batches(SENTENCES, B, T, seed=1, epochs=2))
  assert _bits_equal(a, b) and not _bits_equal(a, list(data.lm_batches(SENTENCES, B, T, seed=2, epochs=2)))
  steps = _steps_per_epoch(SENTENCES, True)
  pool = collections.Counter(SENTENCES)
  for epoch in (a[:steps], a[steps:]):
    seen = collections.Counter(s for x in epoch for s in _segments(x))
    assert not seen - pool, "a sentence appeared more often than in the corpus"
    print(f"epoch uses {sum(seen.values())} of {len(SENTENCES)} sentences;"
          f" density {np.mean([x.mask.mean() for x in epoch]):.3f}")
  for x in a:  # the batch is exactly lm_batch of its sentences, packed
    bitwise.assert_bitwise_equal(_as_int(x), _as_int(data.batches.lm_batch(_segments(x), T, num_rows=B, packed=True)))
  one_per_row = np.mean([x.mask.mean() for x in data.lm_batches(SENTENCES, B, T, seed=1, epochs=2, packed=False)])
  assert np.mean([x.mask.mean() for x in a]) > one_per_row + 0.15, one_per_row
  assert np.mean([(x.inputs == alphabet.BOS).sum() for x in a]) > 1.1 * B  # rows often hold several sentences


@pytest.mark.parametrize("packed", [False, True])
def test_paired_rows_equal_lm_rows_bitwise(packed):
  lm = list(data.lm_batches(SENTENCES, B, T, seed=3, epochs=1, packed=packed))
  cls = list(data.classification_batches(SENTENCES, B, T, mode="paired", seed=3, epochs=1, packed=packed))
  n = B * T if packed else data.max_predictions(SENTENCES, B)
  assert len(lm) == len(cls) == _steps_per_epoch(SENTENCES, packed)
  for a, c in zip(lm, cls):
    assert c.tokens.shape == (B, T) and c.rows.shape == c.positions.shape == c.labels.shape == (n,)
    bitwise.assert_bitwise_equal(c.tokens, a.inputs)
    real = c.rows < B
    assert int(real.sum()) == int(a.mask.sum())
    # The examples sit exactly at the LM's predictions, with the LM's targets as labels.
    mask = np.zeros((B, T), bool)
    mask[c.rows[real], c.positions[real]] = True
    bitwise.assert_bitwise_equal(_as_int(mask), _as_int(a.mask))
    bitwise.assert_bitwise_equal(c.labels[real], a.targets[c.rows[real], c.positions[real]])
    assert np.all(c.rows[~real] == B)


def _examples_of(batch):
  """The real examples of a classification batch as (context, label) strings (context since its segment's BOS)."""
  r = batch.tokens.shape[0]
  out = []
  for row, pos, lab in zip(batch.rows, batch.positions, batch.labels):
    if row < r:
      start = int(np.flatnonzero(batch.tokens[row, : pos + 1] == alphabet.BOS)[-1])
      out.append((alphabet.decode(batch.tokens[row, start + 1 : pos + 1]), alphabet.ALPHABET[lab]))
  return out


@pytest.mark.parametrize("packed", [False, True])
def test_iid_counts_match_lm_and_each_example_appears_at_most_once_per_epoch(packed):
  lm = list(data.lm_batches(SENTENCES, B, T, seed=4, epochs=2, packed=packed))
  iid = list(data.classification_batches(SENTENCES, B, T, mode="iid", seed=4, epochs=2, packed=packed))
  n = B * T if packed else data.max_predictions(SENTENCES, B)
  assert len(iid) == len(lm)
  for a, c in zip(lm, iid):
    assert c.tokens.shape == (n, T) and c.rows.shape == (n,)
    assert int((c.rows < n).sum()) == int(a.mask.sum())
  ex = prefix.prefix_examples(SENTENCES)
  everything = collections.Counter(ex.example(i) for i in range(len(ex)))
  steps = _steps_per_epoch(SENTENCES, packed)
  for epoch in range(2):
    seen = collections.Counter(e for c in iid[epoch * steps : (epoch + 1) * steps] for e in _examples_of(c))
    assert not seen - everything
    if not packed:  # B divides the corpus, so an LM epoch uses every character
      assert seen == everything
  # Shuffled: the first step is not just the first sentences' examples, and epochs differ.
  assert _examples_of(iid[0]) != _examples_of(iid[steps])
  rows_used = [int(c.rows[c.rows < n].max()) + 1 for c in iid]
  print(f"packed={packed}: iid rows used per step: {rows_used} (LM uses {B}); N = {n}")


def test_iid_is_deterministic():
  a = list(data.classification_batches(SENTENCES, B, T, mode="iid", seed=5, epochs=1))
  b = list(data.classification_batches(SENTENCES, B, T, mode="iid", seed=5, epochs=1))
  c = list(data.classification_batches(SENTENCES, B, T, mode="iid", seed=6, epochs=1))
  assert _bits_equal(a, b)
  assert not _bits_equal(a, c)


@pytest.mark.parametrize("packed", [False, True])
@pytest.mark.parametrize("mode", ["lm", "paired", "iid"])
def test_start_step_resumes_exactly(mode, packed):
  """Step k's batch is a pure function of (seed, k): start_step=k equals a fresh iterator's k-th batch."""
  s = SENTENCES[:-3]

  def it(start_step=0):
    if mode == "lm":
      return data.lm_batches(s, B, T, seed=9, packed=packed, start_step=start_step)
    return data.classification_batches(s, B, T, mode=mode, seed=9, packed=packed, start_step=start_step)

  fresh = list(itertools.islice(it(), 30))
  for k in (0, 1, 7, 13, 29):
    assert _bits_equal(next(it(k)), fresh[k]), k
  assert not _bits_equal(next(it(7)), fresh[8])
  with pytest.raises(ValueError, match="start_step must be >= 0"):
    next(it(-1))


@pytest.mark.parametrize("mode", ["lm", "iid"])
def test_resume_cost_does_not_grow_with_the_step(mode, monkeypatch):
  """Resuming at step 10**6 plans one epoch, like resuming at 10 (counted, not timed)."""
  calls = []
  plan = data.StepPlan._plan  # pylint: disable=protected-access
  monkeypatch.setattr(data.StepPlan, "_plan", lambda self, e: calls.append(e) or plan(self, e))
  for k in (10, 10**6):
    calls.clear()
    if mode == "lm":
      next(data.lm_batches(SENTENCES, B, T, start_step=k))
    else:
      next(data.classification_batches(SENTENCES, B, T, mode="iid", start_step=k))
    assert calls == [k // _steps_per_epoch(SENTENCES, True)], (k, calls)
  epochs = list(data.lm_batches(SENTENCES, B, T, epochs=3))
  assert len(epochs) == 3 * _steps_per_epoch(SENTENCES, True) and list(data.lm_batches(
      SENTENCES, B, T, epochs=3, start_step=len(epochs))) == []


@pytest.fixture(scope="module")
def tiny():
  cfg = model.ModelConfig(num_layers=1, width=32, num_heads=2, seq_len=T)
  return model.init(jax.random.key(0), cfg), model.make_apply(cfg)


def test_padding_does_not_change_loss_bits(tiny):
  params, apply_fn = tiny
  lm = next(data.lm_batches(SENTENCES, B, T, seed=7))
  padded = next(data.classification_batches(SENTENCES, B, T, mode="paired", seed=7))
  unpadded = packing.pack(prefix.prefix_examples(_segments(lm)), T, packed=True)
  assert len(unpadded.rows) < len(padded.rows)
  xent = jax.jit(functools.partial(losses.classification_xent, apply_fn=apply_fn))
  l_pad, l_unpad = xent(params, padded), xent(params, unpadded)
  l_lm = jax.jit(functools.partial(losses.lm_nll, apply_fn=apply_fn))(params, lm)
  print(f"paired loss {float(l_pad):.7f} (padded) {float(l_unpad):.7f} (unpadded) {float(l_lm):.7f} (LM)")
  bitwise.assert_bitwise_equal(l_pad, l_unpad)
  bitwise.assert_bitwise_equal(l_pad, l_lm)
  g_pad = jax.jit(jax.grad(functools.partial(losses.classification_xent, apply_fn=apply_fn)))(params, padded)
  g_lm = jax.jit(jax.grad(functools.partial(losses.lm_nll, apply_fn=apply_fn)))(params, lm)
  bitwise.assert_bitwise_equal(g_pad, g_lm)


def test_iid_padding_changes_loss_by_rounding_at_most(tiny):
  # Extra PAD rows change the [R, T] reduction's length, so this is a rounding claim, not bitwise.
  params, apply_fn = tiny
  s = SENTENCES[:B]
  ex = prefix.prefix_examples(s).take(np.random.default_rng(0).permutation(sum(map(len, s))))
  unpadded = packing.pack(ex, T)
  r = unpadded.tokens.shape[0]
  padded = data.pad_classification_batch(unpadded, r + 37, len(unpadded.rows) + 50)
  same_rows = data.pad_classification_batch(unpadded, r, len(unpadded.rows) + 50)
  xent = jax.jit(functools.partial(losses.classification_xent, apply_fn=apply_fn))
  l0 = xent(params, unpadded)
  bitwise.assert_bitwise_equal(xent(params, same_rows), l0)
  l1 = xent(params, padded)
  rel = abs(float(l1) - float(l0)) / float(l0)
  print(f"iid loss with 37 extra PAD rows: relative change {rel:.2e} (tolerance 1e-6)")
  assert rel < 1e-6
  per_example = jax.jit(functools.partial(losses.classification_xent_per_example, apply_fn=apply_fn))
  per0, per1 = per_example(params, unpadded), per_example(params, padded)
  assert np.all(np.asarray(per1[len(per0):]) == 0)


def test_errors_name_the_problem():
  long = SENTENCES + ["A" * T + "."]
  with pytest.raises(ValueError, match=f"sentence {len(SENTENCES)} has {T + 1} characters"):
    next(data.lm_batches(long, B, T))
  with pytest.raises(ValueError, match="cannot fill one batch"):
    next(data.lm_batches(SENTENCES[:3], B, T, packed=False))
  with pytest.raises(ValueError, match="no sentences"):
    next(data.lm_batches([], B, T))
  with pytest.raises(ValueError, match="mode must be one of"):
    next(data.classification_batches(SENTENCES, B, T, mode="random"))
  with pytest.raises(ValueError, match="more than the fixed num_examples=10"):
    next(data.classification_batches(SENTENCES, B, T, max_examples=10))
  with pytest.raises(ValueError, match="more than the fixed num_rows=4"):
    next(data.classification_batches(SENTENCES, B, T, max_rows=4, packed=False))
  with pytest.raises(ValueError, match="more than the fixed num_rows=3"):
    next(data.classification_batches(SENTENCES, B, T, mode="iid", max_rows=3))


def test_prefix_dataset_of_builtin_corpus_is_at_most_16_bytes_per_character():
  s = corpus.load_sentences("builtin", max_len=64)
  ex = prefix.prefix_examples(s)
  chars = data.corpus_stats(s)["characters"]
  per_char = ex.nbytes / chars
  print(f"builtin corpus prefix dataset: {ex.nbytes} bytes for {chars} characters = {per_char:.2f} B/char")
  assert len(ex) == chars and per_char <= 16


def test_corpus_stats():
  assert data.corpus_stats(["Hi.", "Ok then.", "Hi."]) == {
      "sentences": 3, "characters": 14, "mean_length": 14 / 3, "max_length": 8, "min_length": 3, "distinct": 2}
  assert data.corpus_stats([])["sentences"] == 0
  assert data.max_predictions(["Hi.", "Ok then.", "Hello."], 2) == 14


def test_jit_compiles_once_over_an_epoch(tiny):
  params, apply_fn = tiny
  f = jax.jit(functools.partial(losses.classification_xent, apply_fn=apply_fn))
  for c in data.classification_batches(SENTENCES, B, T, mode="iid", epochs=1):
    f(params, jax.tree.map(jnp.asarray, c))
  assert f._cache_size() == 1  # pylint: disable=protected-access
