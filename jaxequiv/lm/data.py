"""Fixed-shape batch iterators for the two objectives, so ``jax.jit`` compiles once.

* ``lm_batches``: each step takes the next ``batch_size`` sentences of a
  per-epoch shuffle and yields their ``LMBatch`` ``[batch_size, T]``, rows in
  canonical order.
* ``classification_batches(mode="paired")``: the same sentence chunks as
  prefix examples, packed: the token rows equal the LM batch's inputs bit for
  bit and the examples are exactly the LM's predictions.
* ``classification_batches(mode="iid")``: i.i.d. draws from the shuffled prefix
  dataset (every example once per epoch), with as many examples per step as
  the LM batch of that step has predictions.

Classification batches are padded to a fixed ``[R, T]`` tokens and ``N``
examples; padding examples have ``row == R`` and are ignored by the losses.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence

import numpy as np

from jaxequiv import alphabet, batches, prefix
from jaxequiv.batches import ClassificationBatch, LMBatch

MODES = ("paired", "iid")


def corpus_stats(sentences: Sequence[str]) -> dict:
  """Sentence count, characters (= next-character predictions), mean/max/min length, distinct count.

  >>> corpus_stats(["Hi.", "Ok then."])
  {'sentences': 2, 'characters': 11, 'mean_length': 5.5, 'max_length': 8, 'min_length': 3, 'distinct': 2}
  """
  lengths = np.fromiter((len(s) for s in sentences), np.int64, len(sentences))
  return {
      "sentences": len(sentences),
      "characters": int(lengths.sum()),
      "mean_length": float(lengths.mean()) if len(lengths) else 0.0,
      "max_length": int(lengths.max(initial=0)),
      "min_length": int(lengths.min()) if len(lengths) else 0,
      "distinct": len(set(sentences)),
  }


def _check(sentences: Sequence[str], batch_size: int, seq_len: int) -> list[str]:
  if batch_size < 1:
    raise ValueError(f"batch_size must be >= 1, got {batch_size}")
  sentences = alphabet.validate_sentences(sentences, max_len=seq_len, too_long="error")
  if len(sentences) < batch_size:
    raise ValueError(
        f"{len(sentences)} sentences cannot fill one batch of batch_size={batch_size}"
        " (the last partial batch of each epoch is dropped)")
  return sentences


def _rng(seed: int, *stream: int) -> np.random.Generator:
  return np.random.default_rng([seed, *stream])


def epoch_chunks(num_sentences: int, batch_size: int, *, seed: int = 0, epochs: int | None = None) -> Iterator[np.ndarray]:
  """Indices of each step's sentences: a fresh permutation per epoch, partial batches dropped.

  Epoch e uses ``np.random.default_rng([seed, 0, e]).permutation(num_sentences)``
  and yields ``num_sentences // batch_size`` chunks of it.
  """
  for epoch in itertools.count() if epochs is None else range(epochs):
    perm = _rng(seed, 0, epoch).permutation(num_sentences)
    for i in range(num_sentences // batch_size):
      yield perm[i * batch_size : (i + 1) * batch_size]


def lm_batches(
    sentences: Sequence[str],
    batch_size: int,
    seq_len: int,
    *,
    seed: int = 0,
    epochs: int | None = None,
) -> Iterator[LMBatch]:
  """LM batches of ``batch_size`` sentences, shuffled per epoch, fixed shape ``[batch_size, seq_len]``.

  Each batch's sentences are in canonical order, so row r matches row r of the
  packed classification batch of the same step.

  Args:
    sentences: valid sentences of at most ``seq_len`` characters (use
      ``corpus.load_sentences(..., max_len=seq_len)``); longer ones raise.
    batch_size: sentences per batch (rows R).
    seq_len: context length T.
    seed: shuffling seed; epoch e's order depends only on (seed, e).
    epochs: number of passes, or None for an endless iterator.

  Yields:
    ``LMBatch`` of numpy arrays ``[batch_size, seq_len]``.

  Example:
    >>> it = lm_batches(corpus.load_sentences("synthetic", max_len=64), 32, 64)
    >>> batch = next(it)  # inputs, targets, mask: [32, 64]
  """
  sentences = _check(sentences, batch_size, seq_len)
  for chunk in epoch_chunks(len(sentences), batch_size, seed=seed, epochs=epochs):
    yield batches.lm_batch(batches.canonical_order([sentences[i] for i in chunk]), seq_len, num_rows=batch_size)


def pad_classification_batch(batch: ClassificationBatch, num_rows: int, num_examples: int) -> ClassificationBatch:
  """Pads to ``num_rows`` token rows (all PAD) and ``num_examples`` examples (row = num_rows, position 0, label 0).

  Padding examples point at the row one past the end, which the losses drop,
  so the loss and its gradient are unchanged.

  Raises:
    ValueError: if the batch already has more rows or examples.
  """
  r, t = batch.tokens.shape
  n = len(batch.rows)
  if r > num_rows:
    raise ValueError(f"the batch needs {r} rows, more than the fixed num_rows={num_rows}")
  if n > num_examples:
    raise ValueError(f"the batch has {n} examples, more than the fixed num_examples={num_examples}")
  tokens = np.full((num_rows, t), alphabet.PAD, np.int32)
  tokens[:r] = batch.tokens
  rows = np.full(num_examples, num_rows, np.int32)
  rows[:n] = np.where(batch.rows == r, num_rows, batch.rows)
  positions = np.zeros(num_examples, np.int32)
  positions[:n] = batch.positions
  labels = np.zeros(num_examples, np.int32)
  labels[:n] = batch.labels
  return ClassificationBatch(tokens, rows, positions, labels)


def max_predictions(sentences: Sequence[str], batch_size: int) -> int:
  """The most next-character predictions any batch of ``batch_size`` sentences can have.

  That is the total length of the ``batch_size`` longest sentences: the
  default fixed number of examples N of a classification batch.
  """
  lengths = np.sort(np.fromiter((len(s) for s in sentences), np.int64, len(sentences)))
  return int(lengths[len(lengths) - batch_size:].sum()) if batch_size <= len(lengths) else int(lengths.sum())


def classification_batches(
    sentences: Sequence[str],
    batch_size: int,
    seq_len: int,
    *,
    mode: str = "paired",
    seed: int = 0,
    epochs: int | None = None,
    max_examples: int | None = None,
    max_rows: int | None = None,
) -> Iterator[ClassificationBatch]:
  """Classification batches of prefix examples with fixed shapes ``tokens [R, T]``, ``N`` examples.

  Step t of either mode has exactly as many real examples as ``lm_batches``
  (same sentences, batch_size, seed) has predictions at step t, so the two
  objectives see the same number of examples per step, and the iterators end
  after the same number of steps.

  * ``"paired"``: the prefix examples of the LM's step-t sentences, packed:
    ``tokens`` equals the LM batch's ``inputs`` and the examples sit exactly at
    the LM's mask. R defaults to ``batch_size``.
  * ``"iid"``: the prefix examples of all sentences are built once (O(total
    characters) memory, ``prefix.PrefixExamples``) and shuffled per epoch with
    ``default_rng([seed, 1, epoch])``; step t takes the next ``n_t`` examples of
    the stream of epoch permutations (crossing into the next permutation when
    one runs out, so each example appears once per pass), where ``n_t`` is the
    step-t LM batch's prediction count, and packs them. Random examples seldom
    share a context chain, so a packed iid batch needs about one row per
    example: R defaults to N, i.e. tokens ``[N, T]``, some ``mean length``
    times the LM's ``[batch_size, T]``. That extra compute per example is the
    real cost of training the classifier on i.i.d. examples.

  Args:
    sentences: valid sentences of at most ``seq_len`` characters.
    batch_size: sentences per LM step (the example counts follow from them).
    seq_len: context length T.
    mode: ``"paired"`` or ``"iid"``.
    seed: shuffling seed (the sentence order matches ``lm_batches(seed=seed)``).
    epochs: LM epochs to run, or None for an endless iterator.
    max_examples: fixed N; default ``max_predictions(sentences, batch_size)``
      (never exceeded). A smaller N raises when a step needs more.
    max_rows: fixed R; default ``batch_size`` (paired) or N (iid, never
      exceeded). A smaller R raises when a step needs more rows.

  Yields:
    ``ClassificationBatch``: tokens ``[R, T]``; rows, positions, labels ``[N]``
    (padding examples have row R).

  Example:
    >>> lm = lm_batches(sentences, 32, 64, seed=1)
    >>> cls = classification_batches(sentences, 32, 64, seed=1)
    >>> a, b = next(lm), next(cls)  # b.tokens == a.inputs
  """
  if mode not in MODES:
    raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
  sentences = _check(sentences, batch_size, seq_len)
  n_max = max_predictions(sentences, batch_size) if max_examples is None else max_examples
  lengths = np.fromiter((len(s) for s in sentences), np.int64, len(sentences))
  chunks = epoch_chunks(len(sentences), batch_size, seed=seed, epochs=epochs)
  if mode == "paired":
    r_max = batch_size if max_rows is None else max_rows
    for chunk in chunks:
      packed = prefix.pack(prefix.prefix_examples([sentences[i] for i in chunk]), seq_len)
      yield pad_classification_batch(packed, r_max, n_max)
    return

  r_max = n_max if max_rows is None else max_rows
  examples = prefix.prefix_examples(sentences)
  stream = _ExampleStream(len(examples), seed)
  for chunk in chunks:
    idx = stream.take(int(lengths[chunk].sum()))
    yield pad_classification_batch(prefix.pack(examples.take(idx), seq_len), r_max, n_max)


class _ExampleStream:
  """Example indices: the permutations ``default_rng([seed, 1, e])`` of epochs e = 0, 1, ... back to back."""

  def __init__(self, num_examples: int, seed: int):
    self.num_examples, self.seed, self.epoch, self.pos = num_examples, seed, 0, 0
    self.perm = _rng(seed, 1, 0).permutation(num_examples)

  def take(self, n: int) -> np.ndarray:
    parts = []
    while n:
      if self.pos == self.num_examples:
        self.epoch, self.pos = self.epoch + 1, 0
        self.perm = _rng(self.seed, 1, self.epoch).permutation(self.num_examples)
      k = min(n, self.num_examples - self.pos)
      parts.append(self.perm[self.pos : self.pos + k])
      self.pos, n = self.pos + k, n - k
    return np.concatenate(parts) if parts else np.zeros(0, np.int64)
