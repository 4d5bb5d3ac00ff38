import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from jaxequiv import alphabet, batches, packing, prefix

SENTENCES = ["Hi there.", "Hi.", "Hi.", ".", "ab cd.", "ab ce.", "Zq9 x."]


def _strings(ex):
  return [ex.example(i) for i in range(len(ex))]


def test_prefix_examples_every_prefix_with_next_char():
  ex = prefix.prefix_examples(["Hi.", "a."])
  assert _strings(ex) == [("", "H"), ("H", "i"), ("Hi", "."), ("", "a"), ("a", ".")]
  assert len(prefix.prefix_examples(SENTENCES)) == sum(map(len, SENTENCES))


def test_prefix_examples_validates_with_sentence_index():
  with pytest.raises(ValueError, match=r"sentence 2: character '!' .* position 1"):
    prefix.prefix_examples(["a.", "b.", "c!."])
  with pytest.raises(ValueError, match="sentence 1 has 9 characters, more than the limit of 4"):
    prefix.prefix_examples(["ab.", "abcdefgh."], max_len=4)
  assert len(prefix.prefix_examples(["ab.", "abcdefgh."], max_len=4, too_long="drop")) == 3


def test_prefix_memory_is_linear_in_characters():
  long_sentence = "x" * 20000 + "."  # O(chars * T) would be 2e8 entries
  for s in ([long_sentence], SENTENCES * 100):
    ex = prefix.prefix_examples(s)
    chars = sum(map(len, s))
    print(f"{ex.nbytes / chars:.2f} bytes per character")
    assert ex.nbytes <= 16 * chars


def test_pack_rebuilds_the_lm_rows_in_canonical_order():
  t = 12
  packed = packing.pack(prefix.prefix_examples(SENTENCES), t)
  lm = batches.lm_batch(batches.canonical_order(SENTENCES), t)
  assert packed.tokens.dtype == np.int32
  np.testing.assert_array_equal(packed.tokens, lm.inputs)
  assert len(packed.labels) == int(lm.mask.sum())
  # Every LM prediction is exactly one example, with the LM's target.
  np.testing.assert_array_equal(lm.mask[packed.rows, packed.positions], True)
  np.testing.assert_array_equal(lm.targets[packed.rows, packed.positions], packed.labels)
  slots = set(zip(packed.rows.tolist(), packed.positions.tolist()))
  assert len(slots) == len(packed.labels)


def test_canonical_order_is_class_id_order():
  assert batches.canonical_order(["b.", "A.", "a.", "9.", " x.", "."]) == ["a.", "b.", "A.", "9.", " x.", "."]
  assert batches.canonical_order(["Hi.", "Hi there."]) == ["Hi there.", "Hi."]  # ' ' < '.'


def test_pack_of_a_shuffled_bag_is_identical():
  ex = prefix.prefix_examples(SENTENCES)
  ref = packing.pack(ex, 12)
  for seed in range(5):
    perm = np.random.default_rng(seed).permutation(len(ex))
    got, index = packing.pack(ex.take(perm), 12, return_index=True)
    for a, b in zip(ref, got):
      assert a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b)
    # index maps each packed example back to the input example it came from.
    shuffled = ex.take(perm)
    np.testing.assert_array_equal(shuffled.labels[index], got.labels)
    np.testing.assert_array_equal(shuffled.lengths[index], got.positions)


def test_pack_compares_contexts_by_content_not_by_origin():
  # Two copies of "ab" in different places of a hand-made buffer share one row.
  chars = alphabet.encode("abxab")
  ex = prefix.PrefixExamples(chars, np.array([0, 3, 3], np.int64), np.array([2, 1, 2], np.int32),
                             alphabet.encode("c" + "b" + "d"))
  got = packing.pack(ex, 8)
  assert [alphabet.decode(r) for r in got.tokens] == ["ab", "ab"]  # rows "abc" and "abd": BOS,a,b
  assert got.tokens.shape == (2, 8)
  assert sorted(zip(got.rows.tolist(), got.positions.tolist(), got.labels.tolist())) == [
      (0, 1, alphabet.ALPHABET.index("b")), (0, 2, alphabet.ALPHABET.index("c")), (1, 2, alphabet.ALPHABET.index("d"))]


def test_pack_pads_rows_and_rejects_too_few():
  ex = prefix.prefix_examples(["ab.", "c."])
  got = packing.pack(ex, 5, num_rows=4)
  assert got.tokens.shape == (4, 5)
  assert np.all(got.tokens[2:] == alphabet.PAD) and got.rows.max() == 1
  with pytest.raises(ValueError, match="num_rows=1 is fewer than the 2 rows"):
    packing.pack(ex, 5, num_rows=1)


def test_pack_rejects_contexts_longer_than_the_context():
  ex = prefix.prefix_examples(["abcdef."])
  with pytest.raises(ValueError, match=r"example 6 has a context of 6 characters; context length T=6 fits contexts of at most 5"):
    packing.pack(ex, 6)
  with pytest.raises(ValueError, match="example 6 has a context of 6"):
    packing.unpacked(ex, 6)


def test_unpacked_is_one_padded_row_per_example():
  ex = prefix.prefix_examples(["ab."])
  got = packing.unpacked(ex, 4)
  b, a = alphabet.BOS, alphabet.PAD
  ia, ib = alphabet.ALPHABET.index("a"), alphabet.ALPHABET.index("b")
  np.testing.assert_array_equal(got.tokens, [[b, a, a, a], [b, ia, a, a], [b, ia, ib, a]])
  np.testing.assert_array_equal(got.positions, [0, 1, 2])
  np.testing.assert_array_equal(got.rows, [0, 1, 2])
  np.testing.assert_array_equal(got.labels, alphabet.encode("ab."))


sentence_st = st.text(alphabet=alphabet.ALPHABET[:-1], min_size=0, max_size=9).map(lambda s: s + ".")


@settings(max_examples=60, deadline=None)
@given(st.lists(sentence_st, min_size=1, max_size=8), st.randoms(use_true_random=False), st.floats(0.2, 1.0))
def test_pack_of_any_sub_bag_places_each_example_on_a_matching_row(sentences, rnd, keep):
  """Any subset of examples, in any order: each sits at a distinct slot whose row spells its context and label."""
  ex = prefix.prefix_examples(sentences)
  idx = [i for i in range(len(ex)) if rnd.random() < keep] or [0]
  rnd.shuffle(idx)
  sub = ex.take(np.array(idx))
  got, index = packing.pack(sub, 10, return_index=True)
  assert sorted(index.tolist()) == list(range(len(sub)))
  assert len(set(zip(got.rows.tolist(), got.positions.tolist()))) == len(sub)
  for j, i in enumerate(index):
    context, label = sub.example(int(i))
    row = got.tokens[got.rows[j]]
    assert row[0] == alphabet.BOS and alphabet.decode(row[1 : got.positions[j] + 1]) == context
    assert got.positions[j] == len(context) and alphabet.ALPHABET[got.labels[j]] == label
  # Each row ends with an example; rows are in canonical (class-id) order; no more rows than examples.
  r = got.tokens.shape[0]
  last = np.full(r, -1)
  np.maximum.at(last, got.rows, got.positions)
  assert np.all(last >= 0)
  rows = []
  for k in range(r):
    j = int(np.flatnonzero((got.rows == k) & (got.positions == last[k]))[0])
    rows.append(tuple(got.tokens[k, 1 : last[k] + 1].tolist()) + (int(got.labels[j]),))
  assert rows == sorted(rows) and r <= len(sub)


@settings(max_examples=60, deadline=None)
@given(st.lists(sentence_st, min_size=1, max_size=8), st.integers(0, 2**31 - 1))
def test_fast_path_for_whole_chains_equals_the_general_trie(sentences, seed):
  ex = prefix.prefix_examples(sentences)
  ex = ex.take(np.random.default_rng(seed).permutation(len(ex)))
  fast = packing.pack(ex, 10)
  general = packing.pack(ex, 10, _force_general=True)
  assert packing._whole_chains(ex, *np.unique(ex.starts, return_inverse=True), ex.lengths.astype(np.int64),  # pylint: disable=protected-access
                              ex.labels.astype(np.int64)) is not None
  for a, b in zip(fast, general):
    assert a.dtype == b.dtype and np.array_equal(a, b)
