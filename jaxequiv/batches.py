"""Batch types for the two objectives, and building LM batches from sentences.

* ``LMBatch``: sentences as rows. Row r holds ``inputs = [BOS, s_0, .., s_{L-2},
  PAD, ..]`` and ``targets = [s_0, .., s_{L-1}, 0, ..]``; ``mask`` marks the L
  real predictions.
* ``ClassificationBatch``: rows of context tokens ``[R, T]`` and, for each of N
  examples, the ``(row, position)`` whose logits classify it and its ``label``.
  Example rows equal to ``R`` are padding and are ignored.

Both are NamedTuples, hence pytrees that ``jax.jit`` accepts.
"""

from __future__ import annotations

import bisect
import heapq
from collections.abc import Iterable, Sequence
from typing import NamedTuple

import numpy as np

from jaxequiv import alphabet

# Sorting sentences by the translated string sorts them by class id.
_ORDER_TABLE = {ord(c): 0x100 + i for i, c in enumerate(alphabet.ALPHABET)}


class LMBatch(NamedTuple):
  inputs: np.ndarray   # [R, T] int32: BOS, characters, PAD.
  targets: np.ndarray  # [R, T] int32: next characters; 0 where mask is False.
  mask: np.ndarray     # [R, T] bool: True at real next-character predictions.


class ClassificationBatch(NamedTuple):
  tokens: np.ndarray     # [R, T] int32 context rows: BOS, characters, PAD.
  rows: np.ndarray       # [N] int32 row of each example (R marks padding).
  positions: np.ndarray  # [N] int32 position whose logits classify the example.
  labels: np.ndarray     # [N] int32 class id in [0, 64).


def canonical_order(sentences: Iterable[str], *, max_len: int | None = None, too_long: str = "error") -> list[str]:
  """Sentences sorted by class ids (a < .. < z < A < .. < 9 < ' ' < '.').

  This is the row order ``pack`` produces, so ``lm_batch(canonical_order(S))``
  and ``pack(prefix_examples(S))`` hold the same rows. With ``max_len``, over-
  long sentences are handled first (``too_long``, see
  ``alphabet.validate_sentences``): split first, then order. Any iterable
  works (a generator is read once).

  Raises:
    TypeError: for one bare ``str`` (it would sort its characters) or a
      non-str element.

  Examples:
    >>> from jaxequiv.batches import canonical_order
    >>> canonical_order(["b.", "B.", "a b.", "a."])
    ['a b.', 'a.', 'b.', 'B.']
  """
  if isinstance(sentences, str):
    raise TypeError("canonical_order takes a sequence of sentences, not one str")
  sentences = list(sentences)  # read an iterator once: the checks below would consume it
  if max_len is not None or too_long != "error":
    sentences = alphabet.validate_sentences(sentences, max_len=max_len, too_long=too_long)
  for i, s in enumerate(sentences):
    if not isinstance(s, str):
      raise TypeError(f"sentence {i} is a {type(s).__name__}, not a str")
  return sorted(sentences, key=lambda s: s.translate(_ORDER_TABLE))


def order_key(sentence: str) -> str:
  """The sort key of ``canonical_order``: equal order of keys and of class-id strings."""
  return sentence.translate(_ORDER_TABLE)


def pack_rows(lengths_S: np.ndarray, seq_len: int) -> tuple[np.ndarray, np.ndarray, int]:
  """Packs segments of the given lengths into rows of ``seq_len`` positions.

  Best fit decreasing: segments are placed longest first (ties in the given
  order), each into the open row with the least room that fits it (ties: the
  lowest row), or into a new row. The result depends only on the lengths and
  their order, so ``lm_batch`` and ``pack`` give the same rows for the same
  strings in canonical order. Keeping the first k rows of a packing and
  repacking only their segments gives those k rows again.

  Args:
    lengths_S: segment lengths, each in ``[1, seq_len]``.
    seq_len: positions per row T.

  Returns:
    ``(row_S, offset_S, num_rows)``: each segment's row and first position.

  Examples:
    >>> import numpy as np
    >>> from jaxequiv.batches import pack_rows
    >>> row, offset, num_rows = pack_rows(np.array([3, 5, 2, 4]), 8)
    >>> print(row.tolist(), offset.tolist(), num_rows)
    [0, 0, 1, 1] [5, 0, 4, 0] 2
  """
  lengths_S = np.asarray(lengths_S, np.int64)
  if len(lengths_S) and (lengths_S.min() < 1 or lengths_S.max() > seq_len):
    bad = int(np.argmax((lengths_S < 1) | (lengths_S > seq_len)))
    raise ValueError(f"segment {bad} has length {lengths_S[bad]}, outside [1, seq_len={seq_len}]")
  rows = np.empty(len(lengths_S), np.int64)
  offsets = np.empty(len(lengths_S), np.int64)
  by_room: dict[int, list[int]] = {}  # room -> heap of rows with that much room
  rooms: list[int] = []  # sorted rooms present in by_room
  num_rows = 0
  for i in np.argsort(-lengths_S, kind="stable").tolist():
    n = int(lengths_S[i])
    j = bisect.bisect_left(rooms, n)
    if j == len(rooms):
      row, room = num_rows, seq_len
      num_rows += 1
    else:
      room = rooms[j]
      heap = by_room[room]
      row = heapq.heappop(heap)
      if not heap:
        del by_room[room], rooms[j]
    rows[i], offsets[i] = row, seq_len - room
    left = room - n
    if left:
      if left not in by_room:
        by_room[left] = []
        bisect.insort(rooms, left)
      heapq.heappush(by_room[left], row)
  return rows, offsets, num_rows


def inputs_from_targets(targets_RxT: np.ndarray, starts_RxT: np.ndarray | None = None) -> np.ndarray:
  """Inputs for rows of targets (-1 where empty): BOS at each segment start, then the shifted targets, PAD elsewhere.

  ``starts_RxT`` marks segment starts; by default each row is one segment
  starting at position 0.
  """
  r, t = targets_RxT.shape
  if starts_RxT is None:
    starts_RxT = np.zeros((r, t), bool)
    starts_RxT[:, 0] = True
  inputs = np.full((r, t), alphabet.PAD, np.int32)
  inputs[:, 1:] = targets_RxT[:, :-1]
  inputs = np.where(targets_RxT < 0, alphabet.PAD, inputs)
  return np.where(starts_RxT & (targets_RxT >= 0), alphabet.BOS, inputs).astype(np.int32)


def lm_batch(
    sentences: Sequence[str],
    seq_len: int,
    *,
    num_rows: int | None = None,
    too_long: str = "error",
    packed: bool = False,
) -> LMBatch:
  """Builds an LM batch from sentences: one per row, or packed several to a row.

  * ``packed=False``: row r holds sentence r, in the given order.
  * ``packed=True``: the sentences, in canonical order, are packed into rows
    with ``pack_rows``; each starts with ``BOS`` (a segment). The model must
    keep segments apart (``jaxequiv.model`` does: it masks attention across
    BOS boundaries and restarts positions; ``jaxequiv.check_model(..., packed=True)``
    checks yours). Rows equal
    ``pack(prefix_examples(sentences), seq_len, packed=True)``'s tokens.

  With ``too_long="split"`` the pieces are put in canonical order (split first,
  then order), so the rows still equal ``pack``'s.

  Args:
    sentences: strings over the alphabet, each ending with its only ``'.'``.
    seq_len: context length T; sentences may have up to T characters.
    num_rows: pad with empty rows to this many rows (fixed shapes for jit).
    too_long: policy for sentences over T characters (see
      ``alphabet.validate_sentences``).
    packed: pack several sentences per row.

  Returns:
    ``LMBatch`` of numpy arrays with shape ``[R, T]``.

  Raises:
    ValueError: for no sentences (an empty batch has no prediction to average).

  Examples:
    >>> from jaxequiv.batches import lm_batch
    >>> lm_batch(["Hi.", "Ok."], 8, packed=True).inputs.tolist()
    [[64, 33, 8, 64, 40, 10, 65, 65]]
  """
  original = sentences
  sentences = alphabet.validate_sentences(sentences, max_len=seq_len, too_long=too_long)
  if not sentences:
    raise ValueError(f"lm_batch got no sentences (from {len(original)} given); an empty batch has no prediction")
  if packed or (too_long == "split" and len(sentences) != len(original)):
    sentences = canonical_order(sentences)
  lengths = np.fromiter((len(s) for s in sentences), np.int64, len(sentences))
  if packed:
    row, offset, need = pack_rows(lengths, seq_len)
  else:
    row, offset, need = np.arange(len(sentences)), np.zeros(len(sentences), np.int64), len(sentences)
  r = need if num_rows is None else num_rows
  if r < need:
    raise ValueError(f"num_rows={num_rows} is fewer than the {need} rows the sentences need")
  targets = np.full((r, seq_len), -1, np.int32)
  starts = np.zeros((r, seq_len), bool)
  for i, s in enumerate(sentences):
    targets[row[i], offset[i] : offset[i] + lengths[i]] = alphabet.encode(s)
  starts[row, offset] = True
  mask = targets >= 0
  return LMBatch(inputs_from_targets(targets, starts), np.where(mask, targets, 0), mask)


def pad_examples(batch: ClassificationBatch, num_examples: int) -> ClassificationBatch:
  """Pads a classification batch to ``num_examples`` examples (fixed shapes for jit).

  Padding examples get row R (one past the last row), which the losses ignore;
  the loss and its gradients are unchanged.
  """
  n = len(batch.labels)
  if num_examples < n:
    raise ValueError(f"num_examples={num_examples} is fewer than the batch's {n} examples")
  r = np.shape(batch.tokens)[0]
  fill = num_examples - n
  pad = lambda x, v: np.concatenate([np.asarray(x, np.int32), np.full(fill, v, np.int32)])
  return ClassificationBatch(batch.tokens, pad(batch.rows, r), pad(batch.positions, 0), pad(batch.labels, 0))
