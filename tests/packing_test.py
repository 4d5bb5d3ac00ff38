"""Sequence packing (several sentences per row) and the edges of pack / unpacked / lm_batch / canonical_order."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import jaxequiv
from jaxequiv import alphabet, batches, packing, prefix
from jaxequiv.lm import corpus

T = 16
sentence_st = st.text(alphabet=alphabet.ALPHABET[:-1], min_size=0, max_size=T - 1).map(lambda s: s + ".")


@settings(max_examples=20, deadline=None)
@given(st.lists(sentence_st, min_size=1, max_size=12), st.integers(0, 2**31 - 1))
def test_packed_lm_batch_equals_packed_prefix_examples(sentences, seed):
  """Rows from sentences (lm_batch) and from shuffled examples alone (pack) are equal; examples sit at the LM's mask."""
  lm = batches.lm_batch(sentences, T, packed=True)
  ex = prefix.prefix_examples(sentences)
  clf = packing.pack(ex.take(np.random.default_rng(seed).permutation(len(ex))), T, packed=True)
  np.testing.assert_array_equal(clf.tokens, lm.inputs)
  slots = np.zeros_like(lm.mask)
  slots[clf.rows, clf.positions] = True
  np.testing.assert_array_equal(slots, lm.mask)
  np.testing.assert_array_equal(clf.labels, lm.targets[clf.rows, clf.positions])
  assert len(clf.labels) == sum(map(len, sentences)) == lm.mask.sum()
  # Every segment starts with BOS and holds one whole sentence.
  assert (lm.inputs == alphabet.BOS).sum() == len(sentences)
  assert lm.inputs.shape[0] <= batches.lm_batch(sentences, T).inputs.shape[0]


def test_packed_rows_hold_sentences_back_to_back():
  lm = batches.lm_batch(["Hi.", "Ok.", "abcdefghij."], 16, packed=True)
  assert [alphabet.decode(t[m]) for t, m in zip(lm.targets, lm.mask)] == ["abcdefghij.Hi.", "Ok."]
  assert lm.inputs[0].tolist() == [alphabet.BOS, *alphabet.encode("abcdefghij"), alphabet.BOS, *alphabet.encode("Hi"),
                                   alphabet.PAD, alphabet.PAD]


@settings(max_examples=20, deadline=None)
@given(st.lists(st.integers(1, T), min_size=1, max_size=40), st.integers(1, 40))
def test_pack_rows_is_valid_and_prefix_stable(lengths, k):
  """Segments fit without overlap; any-fit bound (rows <= 2*total/T + 1); keeping the first k rows and repacking gives them back."""
  lengths = np.array(lengths)
  row, offset, num = batches.pack_rows(lengths, T)
  grid = np.zeros((num, T), int)
  for r, o, n in zip(row, offset, lengths):
    grid[r, o : o + n] += 1
  assert grid.max() == 1 and grid.sum() == lengths.sum()
  assert num <= 2 * lengths.sum() / T + 1
  keep = row < k
  row2, offset2, num2 = batches.pack_rows(lengths[keep], T)
  np.testing.assert_array_equal(row2, row[keep])
  np.testing.assert_array_equal(offset2, offset[keep])
  assert num2 == min(k, num)


@pytest.mark.parametrize("t", [64, 256])
def test_density_on_the_builtin_corpus(t):
  """>= 95% of positions are real predictions when a batch's sentences are packed (lm.data plans the batches)."""
  from jaxequiv.lm import data  # pylint: disable=import-outside-toplevel
  sentences = corpus.load_sentences("builtin", max_len=t)
  it = data.lm_batches(sentences, 12, t, epochs=1)
  masks = [b.mask for b in it]
  density = float(np.mean([m.mean() for m in masks]))
  unpacked_density = sum(map(len, sentences)) / (len(sentences) * t)
  print(f"T={t}: packed density {density:.4f} over {len(masks)} batches of 12 rows; one sentence per row: {unpacked_density:.4f}")
  assert density >= 0.95


# Issue 8: each of these failed on the old code.

def test_pack_of_strings_is_a_type_error():
  with pytest.raises(TypeError, match=r"pack expects PrefixExamples .*got list"):
    packing.pack(["Hello.", "Hi."], T)
  with pytest.raises(TypeError, match=r"unpacked expects PrefixExamples .*got list"):
    packing.unpacked(["Hello."], T)


def test_canonical_order_of_a_bare_string_is_a_type_error():
  with pytest.raises(TypeError, match="not one str"):
    batches.canonical_order("Hello.")
  with pytest.raises(TypeError, match="sentence 1 is a int"):
    batches.canonical_order(["a.", 3])


def _bag(chars, starts, lengths, labels):
  return prefix.PrefixExamples(np.array(chars, np.uint8), np.array(starts, np.int32), np.array(lengths, np.int32),
                               np.array(labels, np.uint8))


@pytest.mark.parametrize("fn", [packing.pack, packing.unpacked])
def test_pack_and_unpacked_validate_labels_and_contexts(fn):
  good = _bag([1, 2, 3], [0, 0], [0, 2], [1, 3])
  assert len(fn(good, T).labels) == 2
  with pytest.raises(ValueError, match=r"example 1 has label 64, not a class id"):
    fn(_bag([1, 2, 3], [0, 0], [0, 2], [1, 64]), T)
  with pytest.raises(ValueError, match=r"example 1's context holds 70 at position 1"):
    fn(_bag([1, 70, 3], [0, 0], [0, 2], [1, 3]), T)
  # A bad character no context covers is not an error (negative control for the coverage scan).
  assert len(fn(_bag([1, 2, 3, 70], [0, 0], [0, 2], [1, 3]), T).labels) == 2


@pytest.mark.parametrize("make", [
    lambda: packing.pack(prefix.prefix_examples([]), T),
    lambda: packing.unpacked(prefix.prefix_examples([]), T),
    lambda: batches.lm_batch([], T),
    lambda: batches.lm_batch(["x" * 20 + "."], T, too_long="drop"),
])
def test_empty_batch_is_a_clear_error(make):
  with pytest.raises(ValueError, match=r"no (examples|sentences)"):
    make()


@pytest.mark.parametrize("packed", [False, True])
def test_split_happens_before_canonical_order(packed):
  """lm_batch(canonical_order(S), T, too_long='split') equals pack of the split sentences' prefixes."""
  sentences = ["zz zz zz zz zz zz zz zz.", "aa aa aa aa aa aa aa aa.", "b."]
  lm = batches.lm_batch(batches.canonical_order(sentences), 10, too_long="split", packed=packed)
  clf = packing.pack(prefix.prefix_examples(sentences, max_len=10, too_long="split"), 10, packed=packed)
  np.testing.assert_array_equal(lm.inputs, clf.tokens)
  split_then_ordered = batches.canonical_order(sentences, max_len=10, too_long="split")
  assert split_then_ordered == batches.canonical_order(split_then_ordered)
  np.testing.assert_array_equal(batches.lm_batch(split_then_ordered, 10, packed=packed).inputs, lm.inputs)


def test_num_rows_too_small_names_the_need():
  with pytest.raises(ValueError, match=r"num_rows=1 is fewer than the 2 rows"):
    batches.lm_batch(["abcdefghij.", "abcdefghij."], 16, packed=True, num_rows=1)
  with pytest.raises(ValueError, match=r"num_rows=1 is fewer than the 2 rows"):
    packing.pack(prefix.prefix_examples(["abcdefghij.", "abcdefghij."]), 16, packed=True, num_rows=1)


def test_general_path_packs_like_the_fast_path():
  """A sub-sampled bag (not whole chains) takes the trie path; packing works on its chains too."""
  ex = prefix.prefix_examples(["Hello there.", "Hello.", "abc."])
  fast = packing.pack(ex, T, packed=True)
  slow = packing.pack(ex, T, packed=True, _force_general=True)
  for a, b in zip(fast, slow):
    np.testing.assert_array_equal(a, b)
  sub = ex.take(np.array([0, 3, 7, 12, 14]))
  b = packing.pack(sub, T, packed=True)
  assert b.tokens.shape[0] == 1 and (b.tokens == alphabet.BOS).sum() >= 2
  for i, (r, p, y) in enumerate(zip(b.rows, b.positions, b.labels)):
    row = b.tokens[r]
    start = max(j for j in range(p + 1) if row[j] == alphabet.BOS)
    assert alphabet.decode(row[start + 1 : p + 1]) + alphabet.ALPHABET[y] in {
        sub.context(k) + alphabet.ALPHABET[sub.labels[k]] for k in range(len(sub))}, i


def test_top_level_names_still_work():
  assert jaxequiv.lm_batch(["a."], 4, packed=True).inputs.tolist() == [[64, 0, 65, 65]]
