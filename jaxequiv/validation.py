"""Checks on batches before the losses use them: shapes and dtypes always, values when the arrays are concrete."""

from __future__ import annotations

import numpy as np

from jaxequiv import alphabet
from jaxequiv.batches import ClassificationBatch, LMBatch


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
