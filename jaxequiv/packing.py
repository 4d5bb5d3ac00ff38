"""Classifier batches from a bag of prefix examples (``jaxequiv.prefix``).

``pack(examples, T)`` rebuilds rows from the examples alone: contexts and labels
(compared by content, never by where they came from). Examples whose contexts
are prefixes of one another share a row. ``unpacked(examples, T)`` gives the
naive classifier: one right-padded row per example. ``paired_batches(S, T)``
gives both objectives' batches for the same sentences, ready to compare.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from jaxequiv import alphabet
from jaxequiv.batches import ClassificationBatch, LMBatch, canonical_order, inputs_from_targets, lm_batch, pack_rows
from jaxequiv.prefix import PrefixExamples, check_examples, prefix_examples


def _dedupe(keys: np.ndarray, space: int) -> tuple[np.ndarray, np.ndarray]:
  """Sorted unique keys in [0, space) and each key's index among them."""
  if space <= max(1 << 16, 8 * len(keys)):
    present = np.zeros(space, bool)
    present[keys] = True
    uniq = np.flatnonzero(present)
    rank = np.cumsum(present, dtype=np.int64) - 1
    return uniq, rank[keys]
  return _group(keys)


def _check_context_lengths(lengths: np.ndarray, seq_len: int) -> None:
  if len(lengths) and lengths.max() >= seq_len:
    i = int(np.argmax(lengths >= seq_len))
    raise ValueError(
        f"example {i} has a context of {lengths[i]} characters; context length"
        f" T={seq_len} fits contexts of at most {seq_len - 1}")


def _group(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Sorted distinct values of x and each element's index among them (a sort, not a hash)."""
  order = np.argsort(x, kind="stable")
  xs = x[order]
  new = np.ones(len(x), bool)
  new[1:] = xs[1:] != xs[:-1]
  inv = np.empty(len(x), np.int64)
  inv[order] = np.cumsum(new) - 1
  return xs[new], inv


def _excl_cumsum(x: np.ndarray) -> np.ndarray:
  out = np.zeros(len(x), np.int64)
  np.cumsum(x[:-1], out=out[1:])
  return out


def pack(
    examples: PrefixExamples,
    seq_len: int,
    *,
    num_rows: int | None = None,
    return_index: bool = False,
    packed: bool = False,
    _force_general: bool = False,
):
  """Packs examples into shared rows: contexts that are prefixes of one another share a row.

  Each example ``(c, y)`` stands for the string ``w = c + y``. A chain holds a
  string s and classifies, at position k, the example whose w is ``s[:k+1]``.
  Chains come out in **canonical order**: sorted by their strings' class ids
  (``a`` < .. < ``z`` < ``A`` < .. < ``9`` < space < ``.``, shorter first). For
  the prefix closure of sentences S this gives one chain per sentence, in the
  order of ``batches.canonical_order(S)``, and the classification batch does
  exactly the LM's arithmetic on ``lm_batch(canonical_order(S))``.

  * ``packed=False``: one chain per row.
  * ``packed=True``: chains are packed several to a row by
    ``batches.pack_rows``, each a segment starting with ``BOS``, exactly as
    ``lm_batch(S, T, packed=True)`` packs sentences; the tokens then equal
    that LM batch's inputs. The model must keep segments apart (as
    ``jaxequiv.model`` does; ``jaxequiv.check_model(..., packed=True)`` checks yours).

  In general chains are the fewest covering the bag: a string's copies go to
  the first chains passing through it. Works on any bag, e.g. shuffled or
  sub-sampled examples. Cost: O(N log N + R*T) time and O(N + R*T) memory.
  Bags of whole chains (every prefix of some strings, e.g. ``prefix_examples``
  of a batch, shuffled) take a fast path that sorts the strings; other bags
  build a trie level by level. Both give the same batch.

  Args:
    examples: the bag, from ``prefix_examples`` or built by hand.
    seq_len: context length T; contexts may have up to T-1 characters.
    num_rows: pad with empty rows to this many rows (fixed shapes for jit).
    return_index: also return, for each output example, its input index.
    packed: pack several chains per row.

  Returns:
    A ``ClassificationBatch`` with examples sorted by (row, position); with
    ``return_index``, ``(batch, index_N)``.

  Raises:
    TypeError: if ``examples`` is not ``PrefixExamples`` (e.g. a list of str).
    ValueError: for no examples, a label outside [0, 64), a context character
      outside the alphabet, or a context of T or more characters.

  Examples:
    >>> from jaxequiv import pack, prefix_examples
    >>> pack(prefix_examples(["Hi.", "Ok."]), 8, packed=True).tokens.tolist()
    [[64, 33, 8, 64, 40, 10, 65, 65]]
  """
  check_examples(examples, "pack")
  n = len(examples)
  lengths = examples.lengths.astype(np.int64)
  _check_context_lengths(lengths, seq_len)
  labels = examples.labels.astype(np.int64)
  ustarts, inv = _group(examples.starts)
  chains = _whole_chains(examples, ustarts, inv, lengths, labels) if n and not _force_general else None
  rows_out = None if packed else num_rows
  if chains is not None:
    targets, ex_row = _pack_chains(examples.chars, ustarts, chains, inv, seq_len, rows_out)
  else:
    targets, ex_row = _pack_general(examples, ustarts, inv, lengths, labels, seq_len, rows_out)
  starts = None
  if packed:
    targets, starts, ex_row, lengths = _pack_segments(targets, ex_row, lengths, seq_len, num_rows)
  out = np.lexsort((lengths, ex_row))
  batch = ClassificationBatch(
      tokens=inputs_from_targets(targets, starts),
      rows=ex_row[out].astype(np.int32),
      positions=lengths[out].astype(np.int32),
      labels=labels[out].astype(np.int32),
  )
  return (batch, out) if return_index else batch


def _pack_segments(targets, ex_row, positions, seq_len, num_rows):
  """Chains (one per row of ``targets``) packed into shared rows: new targets, segment starts, rows, positions."""
  chain_len = (targets >= 0).sum(axis=1)
  row, offset, need = pack_rows(chain_len, seq_len)
  r = need if num_rows is None else num_rows
  if r < need:
    raise ValueError(f"num_rows={num_rows} is fewer than the {need} rows the examples need")
  out = np.full((r, seq_len), -1, np.int32)
  starts = np.zeros((r, seq_len), bool)
  cols = np.arange(seq_len)
  inside = cols[None, :] < chain_len[:, None]
  src_r, src_c = np.nonzero(inside)
  out[row[src_r], offset[src_r] + src_c] = targets[src_r, src_c]
  starts[row, offset] = True
  return out, starts, row[ex_row], offset[ex_row] + positions


def _whole_chains(examples, ustarts, inv, lengths, labels):
  """Chain lengths per distinct start if the bag is whole chains, else None.

  Whole chains: every label continues the buffer (``label == chars[start + length]``)
  and each distinct start has exactly the context lengths 0..L-1 once. Prefix
  closures of sentences (shuffled or not) are whole chains; then each start is
  one row.
  """
  ends = examples.starts.astype(np.int64) + lengths
  if ends.max() >= len(examples.chars) or not np.array_equal(examples.chars[ends], labels):
    return None
  need = np.bincount(inv, minlength=len(ustarts))
  top = np.zeros(len(ustarts), np.int64)
  np.maximum.at(top, inv, lengths)
  if not np.array_equal(top + 1, need):
    return None
  slots = np.sort(inv * (int(lengths.max()) + 1) + lengths)
  if np.any(slots[1:] == slots[:-1]):
    return None
  return need


def _pack_chains(chars, ustarts, need, inv, seq_len, num_rows):
  """Fast path: one row per start, rows sorted by their strings (bytes order = class-id order)."""
  buf = chars.tobytes()
  order = sorted(range(len(ustarts)), key=lambda j: buf[ustarts[j] : ustarts[j] + need[j]])
  rank = np.empty(len(order), np.int64)
  rank[order] = np.arange(len(order))
  num = len(order)
  r = num if num_rows is None else num_rows
  if r < num:
    raise ValueError(f"num_rows={num_rows} is fewer than the {num} rows the examples need")
  targets = np.full((r, seq_len), -1, np.int32)
  cols = np.arange(seq_len)
  s_sorted, n_sorted = ustarts[order].astype(np.int64), need[order]
  inside = cols[None, :] < n_sorted[:, None]
  idx = np.where(inside, s_sorted[:, None] + cols[None, :], 0)
  targets[:num] = np.where(inside, chars[idx].astype(np.int32), -1)
  return targets, rank[inv]


def _pack_general(examples, ustarts, inv, lengths, labels, seq_len, num_rows):
  """Any bag: a trie of contexts and w = context + label, built level by level."""
  n = len(examples)

  # Distinct context starts, deepest first, so the ones still walking are a prefix.
  need = np.zeros(len(ustarts), np.int64)
  np.maximum.at(need, inv, lengths)
  walk_order = np.argsort(-need, kind="stable")
  rank_of = np.empty_like(walk_order)
  rank_of[walk_order] = np.arange(len(walk_order))
  ustarts, need, inv = ustarts[walk_order], need[walk_order], rank_of[inv]
  by_len = np.argsort(lengths, kind="stable")
  len_bounds = np.searchsorted(lengths[by_len], np.arange(seq_len + 1))

  # Trie of all contexts and all w, level by level; local ids sort lexicographically.
  cur = np.zeros(len(ustarts), np.int64)  # node of each start's context at this level
  parents, chars_lv, counts = [], [], []
  ex_local = np.empty(n, np.int64)
  m = 1  # nodes at the current level (level 0: the root)
  depth = int(lengths.max()) + 1 if n else 0
  for k in range(depth):
    ex_k = by_len[len_bounds[k] : len_bounds[k + 1]]
    n_act = int(np.searchsorted(-need, -k, side="left"))  # starts with need > k
    walk = cur[:n_act] * 64 + examples.chars[ustarts[:n_act] + k]
    keys = np.concatenate([cur[inv[ex_k]] * 64 + labels[ex_k], walk])
    uniq, local = _dedupe(keys, m * 64)
    ex_local[ex_k] = local[: len(ex_k)]
    cur = local[len(ex_k):]
    parents.append(uniq // 64)
    chars_lv.append(uniq % 64)
    counts.append(np.bincount(local[: len(ex_k)], minlength=len(uniq)))
    m = len(uniq)

  # Bottom-up: rows through each node, and rows ending there.
  through = [None] * depth
  ends = [None] * depth
  below = np.zeros(m, np.int64)
  for k in reversed(range(depth)):
    through[k] = np.maximum(counts[k], below)
    ends[k] = through[k] - below
    size = len(chars_lv[k - 1]) if k else 1
    below = np.bincount(parents[k], weights=through[k], minlength=size).astype(np.int64)
  num = int(below.sum()) if depth else 0

  # Top-down: first canonical row of each node; fill row strings column by column.
  r = num if num_rows is None else num_rows
  if r < num:
    raise ValueError(f"num_rows={num_rows} is fewer than the {num} rows the examples need")
  targets = np.full((r, seq_len), -1, np.int32)
  parent_start, parent_ends = np.zeros(1, np.int64), np.zeros(1, np.int64)
  ex_row = np.empty(n, np.int64)
  for k in range(depth):
    p, rt = parents[k], through[k]
    excl = _excl_cumsum(rt)
    first_sibling = np.searchsorted(p, p, side="left")
    start = parent_start[p] + parent_ends[p] + excl - excl[first_sibling]
    row_idx = np.arange(int(rt.sum())) + np.repeat(start - excl, rt)
    targets[row_idx, k] = np.repeat(chars_lv[k], rt)
    ex_k = by_len[len_bounds[k] : len_bounds[k + 1]]
    node = ex_local[ex_k]
    order = np.argsort(node, kind="stable")
    sorted_node = node[order]
    rank = np.arange(len(node)) - np.searchsorted(sorted_node, sorted_node, side="left")
    ex_row[ex_k[order]] = start[sorted_node] + rank
    parent_start, parent_ends = start, ends[k]

  return targets, ex_row


def unpacked(examples: PrefixExamples, seq_len: int) -> ClassificationBatch:
  """The naive classifier's batch: one right-padded row ``[BOS, context, PAD..]`` per example.

  Validates like ``pack`` (TypeError for non-``PrefixExamples``, ValueError
  naming the first bad example or for an empty bag).
  """
  check_examples(examples, "unpacked")
  n = len(examples)
  lengths = examples.lengths.astype(np.int64)
  _check_context_lengths(lengths, seq_len)
  cols = np.arange(seq_len - 1)
  idx = np.minimum(examples.starts[:, None] + cols[None, :], max(len(examples.chars) - 1, 0))
  ctx = examples.chars[idx].astype(np.int32) if len(examples.chars) else np.zeros((n, seq_len - 1), np.int32)
  tokens = np.full((n, seq_len), alphabet.PAD, np.int32)
  tokens[:, 0] = alphabet.BOS
  tokens[:, 1:] = np.where(cols[None, :] < lengths[:, None], ctx, alphabet.PAD)
  return ClassificationBatch(
      tokens=tokens,
      rows=np.arange(n, dtype=np.int32),
      positions=lengths.astype(np.int32),
      labels=examples.labels.astype(np.int32),
  )


def paired_batches(
    sentences: Sequence[str], seq_len: int, *, packed: bool = False, num_rows: int | None = None,
    too_long: str = "error"
) -> tuple[LMBatch, ClassificationBatch]:
  """The LM batch and the classifier batch of the same sentences, with the same rows: ready to compare.

  ``lm_batch(canonical_order(S), T)`` and ``pack(prefix_examples(S), T)``: the
  classifier's rows come out in canonical order, so the LM's must too. An LM
  batch built from ``S`` in another order holds the same sentences in other
  rows, and its gradients differ from the classifier's in the last bits
  (summed in another order) although the losses are the same maths.

  Args:
    sentences: strings over the alphabet, each ending with its only ``'.'``.
    seq_len: context length T.
    packed: several sentences per row (``lm_batch``/``pack`` ``packed=True``).
    num_rows: pad both to this many rows (fixed shapes for jit).
    too_long: policy for sentences over T characters (``alphabet.validate_sentences``).

  Returns:
    ``(LMBatch, ClassificationBatch)`` whose ``inputs`` and ``tokens`` are equal.

  Examples:
    >>> from jaxequiv.packing import paired_batches
    >>> lm, clf = paired_batches(["Ok.", "Hi."], 8)
    >>> lm.inputs.tolist() == clf.tokens.tolist()
    True
    >>> clf.tokens[:, :3].tolist()  # 'H' (33) before 'O' (40): canonical order, not the given one
    [[64, 33, 8], [64, 40, 10]]
  """
  ordered = canonical_order(sentences, max_len=seq_len, too_long=too_long)
  return (lm_batch(ordered, seq_len, num_rows=num_rows, packed=packed),
          pack(prefix_examples(ordered), seq_len, num_rows=num_rows, packed=packed))
