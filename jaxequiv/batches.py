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
