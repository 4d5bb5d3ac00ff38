"""Fixed-shape batch iterators for the two objectives, so ``jax.jit`` compiles once.

* ``lm_batches``: each step's sentences come from a per-epoch shuffle and are
  laid out as an ``LMBatch`` ``[batch_size, T]``. Packed (the default): several
  whole sentences per row, each a segment starting with ``BOS``
  (``batches.lm_batch(..., packed=True)``); otherwise one sentence per row, in
  canonical order.
* ``classification_batches(mode="paired")``: the same sentences as prefix
  examples, packed the same way: the token rows equal the LM batch's inputs bit
  for bit and the examples are exactly the LM's predictions.
* ``classification_batches(mode="iid")``: i.i.d. draws from the shuffled prefix
  dataset, with as many examples per step as the LM batch of that step has
  predictions.

Step k's batch is a pure function of (sentences, seed, k): ``start_step=k``
resumes at k by building one epoch's plan, whatever k is (O(1) in k).

Several processes (``jaxequiv.lm.parallel``): ``rows=slice(a, b)`` builds
only rows a..b-1 of each global batch. Every process plans the same step from
the sentence lengths alone (cheap); an LM process then encodes only the
sentences packed into its rows. Classification batches keep their per-example
arrays whole (they are replicated across devices) and slice the token rows.

Classification batches are padded to a fixed ``[R, T]`` tokens and ``N``
examples; padding examples have ``row == R`` and are ignored by the losses.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence

import numpy as np

from jaxequiv import alphabet, batches, packing, prefix
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


def _check(sentences: Sequence[str], batch_size: int, seq_len: int, packed: bool) -> list[str]:
  if batch_size < 1:
    raise ValueError(f"batch_size must be >= 1, got {batch_size}")
  sentences = alphabet.validate_sentences(sentences, max_len=seq_len, too_long="error")
  if not sentences:
    raise ValueError("no sentences: an empty corpus cannot fill a batch")
  if not packed and len(sentences) < batch_size:
    raise ValueError(
        f"{len(sentences)} sentences cannot fill one batch of batch_size={batch_size}"
        " (the last partial batch of each epoch is dropped)")
  return sentences


def _rng(seed: int, *stream: int) -> np.random.Generator:
  return np.random.default_rng([seed, *stream])


def epoch_chunks(num_sentences: int, batch_size: int, *, seed: int = 0, epochs: int | None = None) -> Iterator[np.ndarray]:
  """Indices of each step's sentences, one sentence per row: a fresh permutation per epoch, partial batches dropped.

  Epoch e uses ``np.random.default_rng([seed, 0, e]).permutation(num_sentences)``
  and yields ``num_sentences // batch_size`` chunks of it.
  """
  for epoch in itertools.count() if epochs is None else range(epochs):
    perm = _rng(seed, 0, epoch).permutation(num_sentences)
    for i in range(num_sentences // batch_size):
      yield perm[i * batch_size : (i + 1) * batch_size]


WINDOW = 1.5  # a packed step considers sentences worth WINDOW * R * T characters


class StepPlan:
  """Which sentences each step uses: a pure function of (sentence lengths, seed, step).

  * One sentence per row: epoch e's permutation ``default_rng([seed, 0, e])``
    cut into ``N // batch_size`` chunks.
  * Packed: ``steps_per_epoch = max(1, C // (R * T))`` for C characters in
    all. Step i of epoch e takes, from the front of the epoch's shuffled
    stream, sentences worth ``WINDOW * R * T`` characters, packs them in
    canonical order with ``batches.pack_rows`` and keeps the sentences of the
    first R rows (repacking those alone gives the same rows); the others go
    back to the front of the stream. Each step uses at most ``R * T``
    characters, so the stream never runs dry; what is left at the end of an
    epoch (a few per cent) is skipped in that epoch, as a partial batch is.

  The plan of one epoch is computed at once, so step k costs the same for
  every k.
  """

  def __init__(self, sentences: Sequence[str], batch_size: int, seq_len: int, *, seed: int, packed: bool):
    self.lengths = np.fromiter((len(s) for s in sentences), np.int64, len(sentences))
    self.batch_size, self.seq_len, self.seed, self.packed = batch_size, seq_len, seed, packed
    if packed:
      self.rank = np.empty(len(sentences), np.int64)
      self.rank[sorted(range(len(sentences)), key=lambda i: batches.order_key(sentences[i]))] = np.arange(len(sentences))
      self.steps_per_epoch = max(1, int(self.lengths.sum()) // (batch_size * seq_len))
    else:
      self.steps_per_epoch = len(sentences) // batch_size
    self._epoch, self._steps = -1, []

  def epoch(self, e: int) -> list[np.ndarray]:
    """Sentence indices of every step of epoch e."""
    if e != self._epoch:
      self._epoch, self._steps = e, self._plan(e)
    return self._steps

  def step(self, k: int) -> np.ndarray:
    return self.epoch(k // self.steps_per_epoch)[k % self.steps_per_epoch]

  def _plan(self, e: int) -> list[np.ndarray]:
    perm = _rng(self.seed, 0, e).permutation(len(self.lengths))
    b, t = self.batch_size, self.seq_len
    if not self.packed:
      return [perm[i * b : (i + 1) * b] for i in range(self.steps_per_epoch)]
    budget = WINDOW * b * t
    csum = np.cumsum(self.lengths[perm])
    steps, back, pos = [], np.zeros(0, np.int64), 0  # back: sentences returned to the stream's front
    for _ in range(self.steps_per_epoch):
      have = int(self.lengths[back].sum())
      end = int(np.searchsorted(csum, (csum[pos - 1] if pos else 0) + budget - have, side="right"))
      end = min(max(end, pos + 1), len(perm))
      window = np.concatenate([back, perm[pos:end]])
      pos = end
      canon = window[np.argsort(self.rank[window], kind="stable")]
      row, _, _ = batches.pack_rows(self.lengths[canon], t)
      kept = canon[row < b]
      steps.append(kept)
      kept_set = np.zeros(len(self.lengths), bool)
      kept_set[kept] = True
      back = window[~kept_set[window]] if len(kept) < len(window) else np.zeros(0, np.int64)
    return steps


def _steps(plan: StepPlan, start_step: int, epochs: int | None) -> Iterator[tuple[int, np.ndarray]]:
  if start_step < 0:
    raise ValueError(f"start_step must be >= 0, got {start_step}")
  end = None if epochs is None else epochs * plan.steps_per_epoch
  k = start_step
  while end is None or k < end:
    yield k, plan.step(k)
    k += 1


def lm_rows(sentences: Sequence[str], seq_len: int, rows: slice, *, packed: bool = True) -> LMBatch:
  """Rows ``rows`` of ``batches.lm_batch(canonical_order(sentences), seq_len, num_rows=rows.stop, packed=packed)``.

  Only the sentences laid out in those rows are encoded: the layout
  (``batches.pack_rows``) needs their lengths alone.

  Examples:
    >>> s = ["Hi.", "Ok then.", "A cat.", "Go."]
    >>> full = batches.lm_batch(batches.canonical_order(s), 8, num_rows=4, packed=True)
    >>> part = lm_rows(s, 8, slice(1, 3))
    >>> bool((part.inputs == full.inputs[1:3]).all() and (part.mask == full.mask[1:3]).all())
    True
  """
  sentences = batches.canonical_order(sentences)
  lengths = np.fromiter((len(s) for s in sentences), np.int64, len(sentences))
  if packed:
    row, offset, _ = batches.pack_rows(lengths, seq_len)
  else:
    row, offset = np.arange(len(sentences)), np.zeros(len(sentences), np.int64)
  start, n = rows.start or 0, rows.stop - (rows.start or 0)
  targets = np.full((n, seq_len), -1, np.int32)
  starts = np.zeros((n, seq_len), bool)
  mine = np.flatnonzero((row >= start) & (row < rows.stop))
  for i in mine:
    targets[row[i] - start, offset[i] : offset[i] + lengths[i]] = alphabet.encode(sentences[i])
  starts[row[mine] - start, offset[mine]] = True
  mask = targets >= 0
  return LMBatch(batches.inputs_from_targets(targets, starts), np.where(mask, targets, 0), mask)


def lm_batches(
    sentences: Sequence[str],
    batch_size: int,
    seq_len: int,
    *,
    seed: int = 0,
    epochs: int | None = None,
    packed: bool = True,
    start_step: int = 0,
    rows: slice | None = None,
) -> Iterator[LMBatch]:
  """LM batches of fixed shape ``[batch_size, seq_len]``, shuffled per epoch.

  Packed (default), each row holds several whole sentences (segments starting
  with ``BOS``; over 95% of positions are predictions on real text); otherwise
  one sentence per row in canonical order. Either way row r matches row r of
  the paired classification batch of the same step.

  Args:
    sentences: valid sentences of at most ``seq_len`` characters (use
      ``corpus.load_sentences(..., max_len=seq_len)``); longer ones raise.
    batch_size: rows R per step.
    seq_len: context length T.
    seed: shuffling seed; epoch e's order depends only on (seed, e).
    epochs: number of passes, or None for an endless iterator.
    packed: several sentences per row (see ``StepPlan``).
    start_step: the first step to yield (resume): the batches equal those of
      a fresh iterator from that step on, at a cost independent of it.
    rows: build only these rows of each batch (one process's share,
      ``jaxequiv.lm.parallel.process_rows``); None: all.

  Yields:
    ``LMBatch`` of numpy arrays ``[batch_size, seq_len]`` (``rows``: only those rows).

  Examples:
    >>> from jaxequiv.lm import corpus, data
    >>> it = data.lm_batches(corpus.load_sentences("synthetic", max_len=64, num_synthetic=500), 8, 64)
    >>> next(it).inputs.shape
    (8, 64)
  """
  sentences = _check(sentences, batch_size, seq_len, packed)
  plan = StepPlan(sentences, batch_size, seq_len, seed=seed, packed=packed)
  for _, idx in _steps(plan, start_step, epochs):
    chunk = [sentences[i] for i in idx]
    if rows is not None:
      yield lm_rows(chunk, seq_len, rows, packed=packed)
      continue
    if not packed:
      chunk = batches.canonical_order(chunk)
    yield batches.lm_batch(chunk, seq_len, num_rows=batch_size, packed=packed)


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
    packed: bool = True,
    start_step: int = 0,
    rows: slice | None = None,
) -> Iterator[ClassificationBatch]:
  """Classification batches of prefix examples with fixed shapes ``tokens [R, T]``, ``N`` examples.

  Step t of either mode has exactly as many real examples as ``lm_batches``
  (same sentences, batch_size, seed, packed) has predictions at step t, so the
  two objectives see the same number of examples per step, and the iterators
  end after the same number of steps.

  * ``"paired"``: the prefix examples of the LM's step-t sentences, packed
    with ``packing.pack(..., packed=packed)``: ``tokens`` equals the LM batch's
    ``inputs`` and the examples sit exactly at the LM's mask. R defaults to
    ``batch_size``.
  * ``"iid"``: the prefix examples of all sentences are built once (O(total
    characters) memory, ``prefix.PrefixExamples``). In epoch e they are
    shuffled with ``default_rng([seed, 1, e])``; the epoch's step i takes the
    next ``n_i`` examples of that permutation (each example at most once per
    epoch), where ``n_i`` is the LM's prediction count at that step, and packs
    them. Random examples seldom share a context chain: each needs its own
    segment of ``len(context) + 1`` positions, which packing puts several to
    a row. R defaults to N (never exceeded); that extra compute per example is
    the real cost of training the classifier on i.i.d. examples.

  Args:
    sentences: valid sentences of at most ``seq_len`` characters.
    batch_size: rows of the LM step (the example counts follow from them).
    seq_len: context length T.
    mode: ``"paired"`` or ``"iid"``.
    seed: shuffling seed (the sentence order matches ``lm_batches(seed=seed)``).
    epochs: LM epochs to run, or None for an endless iterator.
    max_examples: fixed N; default ``batch_size * seq_len`` packed, else
      ``max_predictions(sentences, batch_size)`` (never exceeded). A smaller N
      raises when a step needs more.
    max_rows: fixed R; default ``batch_size`` (paired) or N (iid, never
      exceeded). A smaller R raises when a step needs more rows.
    packed: several segments per row, like ``lm_batches(packed=...)``.
    start_step: the first step to yield (resume, O(1) in the step).
    rows: keep only these token rows (one process's share); the per-example
      arrays stay whole, with global row indices.

  Yields:
    ``ClassificationBatch``: tokens ``[R, T]``; rows, positions, labels ``[N]``
    (padding examples have row R).

  Examples:
    >>> from jaxequiv.lm import corpus, data
    >>> s = corpus.load_sentences("synthetic", max_len=64, num_synthetic=500)
    >>> a, b = next(data.lm_batches(s, 8, 64)), next(data.classification_batches(s, 8, 64))
    >>> bool((a.inputs == b.tokens).all())
    True
  """
  if mode not in MODES:
    raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
  sentences = _check(sentences, batch_size, seq_len, packed)
  if max_examples is not None:
    n_max = max_examples
  else:
    n_max = batch_size * seq_len if packed else max_predictions(sentences, batch_size)
  plan = StepPlan(sentences, batch_size, seq_len, seed=seed, packed=packed)
  steps = _steps(plan, start_step, epochs)
  if rows is not None:
    full = classification_batches(sentences, batch_size, seq_len, mode=mode, seed=seed, epochs=epochs,
                                  max_examples=max_examples, max_rows=max_rows, packed=packed, start_step=start_step)
    yield from (b._replace(tokens=b.tokens[rows]) for b in full)
    return
  if mode == "paired":
    r_max = batch_size if max_rows is None else max_rows
    for _, idx in steps:
      examples = prefix.prefix_examples([sentences[i] for i in idx])
      yield pad_classification_batch(packing.pack(examples, seq_len, packed=packed), r_max, n_max)
    return

  r_max = n_max if max_rows is None else max_rows
  examples = prefix.prefix_examples(sentences)
  lengths = plan.lengths
  for k, idx in steps:
    e, i = divmod(k, plan.steps_per_epoch)
    counts = [int(lengths[s].sum()) for s in plan.epoch(e)]
    offset = sum(counts[:i])
    perm = _example_permutation(len(examples), seed, e)
    idx = perm[offset : offset + counts[i]]
    yield pad_classification_batch(packing.pack(examples.take(idx), seq_len, packed=packed), r_max, n_max)


_PERM_CACHE: dict = {}


def _example_permutation(n: int, seed: int, epoch: int) -> np.ndarray:
  """``default_rng([seed, 1, epoch]).permutation(n)``, remembered for the current epoch."""
  key = (n, seed, epoch)
  if key not in _PERM_CACHE:
    _PERM_CACHE.clear()
    _PERM_CACHE[key] = _rng(seed, 1, epoch).permutation(n)
  return _PERM_CACHE[key]
