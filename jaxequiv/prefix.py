"""The essay's dataset: every prefix of every sentence, labelled with its next character.

``prefix_examples(S)`` stores the examples in O(total characters): one shared
character buffer, and per example the start and length of its context in that
buffer plus its label. Shuffling or sub-sampling (``examples.take``) keeps the
buffer, so a shuffled bag costs no more. ``check_examples`` validates a bag
built by hand. ``jaxequiv.packing`` turns a bag into classifier batches.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from jaxequiv import alphabet


def _index_dtype(size: int):
  return np.int32 if size < 2**31 else np.int64


def encode_sentences(
    sentences: Sequence[str], max_len: int | None = None, too_long: str = "error"
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Validates and encodes sentences into one buffer.

  Returns:
    ``(chars_C, starts_S, lengths_S)``: uint8 class ids of all sentences
    concatenated, and each sentence's start and length in that buffer.
  """
  if isinstance(sentences, str):
    raise TypeError("sentences must be a sequence of str, not one str")
  sentences = list(sentences)
  lengths = np.fromiter((len(s) if isinstance(s, str) else -1 for s in sentences), np.int64, len(sentences))
  ok = bool(sentences) and lengths.min() > 0 and (max_len is None or lengths.max() <= max_len)
  if ok:
    joined = "".join(sentences)
    try:
      raw = np.frombuffer(joined.encode("ascii"), np.uint8)
    except UnicodeEncodeError:
      ok = False
  if ok:
    chars = alphabet._LUT[raw]  # pylint: disable=protected-access
    ends = np.cumsum(lengths)
    is_period = chars == alphabet.PERIOD
    ok = not np.any(chars == alphabet._INVALID) and int(is_period.sum()) == len(sentences) and bool(np.all(is_period[ends - 1]))  # pylint: disable=protected-access
  if not ok:  # Slow path: names the culprit, or applies the too_long policy.
    sentences = alphabet.validate_sentences(sentences, max_len=max_len, too_long=too_long)
    if not sentences:
      return np.zeros(0, np.uint8), np.zeros(0, np.int32), np.zeros(0, np.int32)
    return encode_sentences(sentences)
  starts = ends - lengths
  return chars, starts.astype(_index_dtype(len(chars))), lengths.astype(np.int32)


@dataclasses.dataclass(frozen=True)
class PrefixExamples:
  """A bag of classification examples ``(context, label)``.

  Example i has context ``chars[starts[i] : starts[i] + lengths[i]]`` (class
  ids) and label ``labels[i]``. ``chars`` is shared and never copied per example.
  """

  chars: np.ndarray    # [C] uint8 shared character buffer.
  starts: np.ndarray   # [N] int32 (int64 for buffers over 2**31) context start in ``chars``.
  lengths: np.ndarray  # [N] int32 context length (0 for the empty prefix).
  labels: np.ndarray   # [N] uint8 next-character class id.

  def __post_init__(self):
    n = {len(self.starts), len(self.lengths), len(self.labels)}
    if len(n) != 1:
      raise ValueError(
          f"starts, lengths and labels must have the same length; got {len(self.starts)},"
          f" {len(self.lengths)}, {len(self.labels)}")
    if len(self.starts) and (self.starts.min() < 0 or (self.starts + self.lengths).max() > len(self.chars)):
      raise ValueError("an example's context runs outside the character buffer")

  def __len__(self) -> int:
    return len(self.labels)

  def take(self, index: np.ndarray) -> "PrefixExamples":
    """The examples at ``index`` (e.g. a permutation), sharing the buffer."""
    index = np.asarray(index)
    return PrefixExamples(self.chars, self.starts[index], self.lengths[index], self.labels[index])

  def context(self, i: int) -> str:
    s = int(self.starts[i])
    return alphabet.decode(self.chars[s : s + int(self.lengths[i])])

  def example(self, i: int) -> tuple[str, str]:
    """Example i as ``(context, label)`` strings."""
    return self.context(i), alphabet.ALPHABET[int(self.labels[i])]

  @property
  def nbytes(self) -> int:
    return sum(a.nbytes for a in (self.chars, self.starts, self.lengths, self.labels))


def prefix_examples(
    sentences: Sequence[str], *, max_len: int | None = None, too_long: str = "error"
) -> PrefixExamples:
  """Every prefix of every sentence, labelled with its next character.

  A sentence of length L gives L examples: contexts of length 0..L-1 (the
  empty prefix included). Duplicates and shared prefixes are kept as they are.
  Memory is O(total characters): 10 bytes per character (int32 start and
  length, uint8 label, the uint8 buffer).

  Args:
    sentences: strings over the alphabet, each ending with its only ``'.'``.
    max_len: optional limit on sentence length (characters).
    too_long: ``"error"``, ``"drop"`` or ``"split"`` for sentences over max_len.

  Examples:
    >>> ex = prefix_examples(["Hi."])
    >>> [ex.example(i) for i in range(len(ex))]
    [('', 'H'), ('H', 'i'), ('Hi', '.')]
  """
  chars, starts, lengths = encode_sentences(sentences, max_len, too_long)
  owner = np.repeat(np.arange(len(starts)), lengths)
  ex_starts = starts[owner]
  ex_lengths = (np.arange(len(chars), dtype=np.int64) - ex_starts).astype(np.int32)
  ex_starts = ex_starts.astype(_index_dtype(len(chars)))
  return PrefixExamples(chars, ex_starts, ex_lengths, chars.copy())


def check_examples(examples: PrefixExamples, where: str = "pack") -> None:
  """Raises TypeError/ValueError naming the first bad example: labels in [0, 64), contexts in the alphabet.

  Cost O(N + C): the buffer is scanned once, and only a bad character that
  some context covers is an error.
  """
  if not isinstance(examples, PrefixExamples):
    raise TypeError(
        f"{where} expects PrefixExamples (e.g. prefix_examples(sentences)), got {type(examples).__name__};"
        " to batch sentences use prefix_examples(sentences) or lm_batch(sentences, T)")
  n = len(examples)
  if n == 0:
    raise ValueError(f"{where} got no examples; an empty batch has no prediction to average")
  labels = np.asarray(examples.labels)
  if labels.min() < 0 or labels.max() >= alphabet.NUM_CLASSES:
    i = int(np.argmax((labels < 0) | (labels >= alphabet.NUM_CLASSES)))
    raise ValueError(f"example {i} has label {labels[i]}, not a class id in [0, 64)")
  if examples.lengths.min() < 0:
    i = int(np.argmax(examples.lengths < 0))
    raise ValueError(f"example {i} has a negative context length {examples.lengths[i]}")
  chars = examples.chars
  if len(chars) and chars.max() >= alphabet.NUM_CLASSES:
    starts = examples.starts.astype(np.int64)
    cover = np.zeros(len(chars) + 1, np.int64)  # how many contexts cover each buffer position
    np.add.at(cover, starts, 1)
    np.add.at(cover, starts + examples.lengths, -1)
    used_bad = (np.cumsum(cover[:-1]) > 0) & (chars >= alphabet.NUM_CLASSES)
    if used_bad.any():
      p = int(np.argmax(used_bad))
      i = int(np.argmax((starts <= p) & (p < starts + examples.lengths)))
      raise ValueError(
          f"example {i}'s context holds {int(chars[p])} at position {p - int(starts[i])}, not a class id in [0, 64)")
