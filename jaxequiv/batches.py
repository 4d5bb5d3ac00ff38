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

from collections.abc import Sequence
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


def canonical_order(sentences: Sequence[str]) -> list[str]:
  """Sentences sorted by class ids (a < .. < z < A < .. < 9 < ' ' < '.').

  This is the row order ``pack`` produces, so ``lm_batch(canonical_order(S))``
  and ``pack(prefix_examples(S))`` hold the same rows.
  """
  return sorted(sentences, key=lambda s: s.translate(_ORDER_TABLE))


def inputs_from_targets(targets_RxT: np.ndarray) -> np.ndarray:
  """Inputs for rows of targets (-1 past each row's end): BOS, then shifted, then PAD."""
  r, t = targets_RxT.shape
  inputs = np.full((r, t), alphabet.PAD, np.int32)
  inputs[:, 0] = np.where(targets_RxT[:, 0] >= 0, alphabet.BOS, alphabet.PAD)
  inputs[:, 1:] = np.where(targets_RxT[:, 1:] >= 0, targets_RxT[:, :-1], alphabet.PAD)
  return inputs


def lm_batch(
    sentences: Sequence[str],
    seq_len: int,
    *,
    num_rows: int | None = None,
    too_long: str = "error",
) -> LMBatch:
  """Builds an LM batch, one row per sentence, in the given order.

  Args:
    sentences: strings over the alphabet, each ending with its only ``'.'``.
    seq_len: context length T; sentences may have up to T characters.
    num_rows: pad with empty rows to this many rows (fixed shapes for jit).
    too_long: policy for sentences over T characters (see
      ``alphabet.validate_sentences``).

  Returns:
    ``LMBatch`` of numpy arrays with shape ``[R, T]``.
  """
  sentences = alphabet.validate_sentences(sentences, max_len=seq_len, too_long=too_long)
  r = len(sentences) if num_rows is None else num_rows
  if r < len(sentences):
    raise ValueError(f"num_rows={num_rows} is fewer than the {len(sentences)} sentences")
  targets = np.full((r, seq_len), -1, np.int32)
  for i, s in enumerate(sentences):
    targets[i, : len(s)] = alphabet.encode(s)
  mask = targets >= 0
  return LMBatch(inputs_from_targets(targets), np.where(mask, targets, 0), mask)


def _shape_error(what: str, batch) -> ValueError:
  got = ", ".join(f"{k} {tuple(np.shape(v))} {getattr(v, 'dtype', type(v).__name__)}" for k, v in batch._asdict().items())
  return ValueError(f"{what}; got {got}")


def _is_int(x) -> bool:
  return np.issubdtype(getattr(x, "dtype", np.float32), np.integer)


def check_lm_batch(batch: LMBatch) -> None:
  """Raises ValueError unless inputs, targets and mask are integer/bool [R, T] arrays."""
  if not isinstance(batch, LMBatch):
    raise TypeError(f"expected LMBatch, got {type(batch).__name__}")
  shapes = {np.shape(x) for x in batch}
  if len(shapes) != 1 or len(np.shape(batch.inputs)) != 2:
    raise _shape_error("LMBatch fields must all have the same shape [R, T]", batch)
  if not (_is_int(batch.inputs) and _is_int(batch.targets)):
    raise _shape_error("LMBatch inputs and targets must be integer arrays", batch)
  if getattr(batch.mask, "dtype", None) not in (np.bool_, np.dtype(bool)) and not _is_int(batch.mask):
    raise _shape_error("LMBatch mask must be bool", batch)


def check_classification_batch(batch: ClassificationBatch) -> None:
  """Raises ValueError on shape or dtype mismatches.

  For concrete (non-traced) arrays it also checks that positions lie in
  ``[0, T)``, labels in ``[0, 64)``, rows in ``[0, R]`` and that no two real
  examples share a ``(row, position)`` slot.
  """
  if not isinstance(batch, ClassificationBatch):
    raise TypeError(f"expected ClassificationBatch, got {type(batch).__name__}")
  if len(np.shape(batch.tokens)) != 2:
    raise _shape_error("ClassificationBatch tokens must have shape [R, T]", batch)
  n_shapes = {np.shape(batch.rows), np.shape(batch.positions), np.shape(batch.labels)}
  if len(n_shapes) != 1 or len(next(iter(n_shapes))) != 1:
    raise _shape_error("ClassificationBatch rows, positions and labels must all have shape [N]", batch)
  if not all(_is_int(x) for x in batch):
    raise _shape_error("ClassificationBatch fields must be integer arrays", batch)
  if any(type(x).__name__.endswith("Tracer") or "Tracer" in type(x).__name__ for x in batch):
    return
  r, t = np.shape(batch.tokens)
  rows, pos, labels = (np.asarray(x) for x in batch[1:])
  real = rows != r
  if np.any((rows < 0) | (rows > r)):
    i = int(np.flatnonzero((rows < 0) | (rows > r))[0])
    raise ValueError(f"example {i} has row {rows[i]}, outside [0, {r}] (R={r} marks padding)")
  if np.any(real & ((pos < 0) | (pos >= t))):
    i = int(np.flatnonzero(real & ((pos < 0) | (pos >= t)))[0])
    raise ValueError(f"example {i} has position {pos[i]}, outside [0, {t})")
  if np.any(real & ((labels < 0) | (labels >= alphabet.NUM_CLASSES))):
    i = int(np.flatnonzero(real & ((labels < 0) | (labels >= alphabet.NUM_CLASSES)))[0])
    raise ValueError(f"example {i} has label {labels[i]}, outside [0, 64)")
  slots = rows[real].astype(np.int64) * t + pos[real]
  uniq, counts = np.unique(slots, return_counts=True)
  if np.any(counts > 1):
    s = int(uniq[np.argmax(counts > 1)])
    raise ValueError(f"{int(counts.max())} examples share the slot (row {s // t}, position {s % t})")


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
