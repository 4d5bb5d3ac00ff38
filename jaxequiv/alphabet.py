"""The 64-symbol alphabet, sentence validation and an opt-in text normaliser.

Output classes are exactly 64, in this order: ``a``-``z``, ``A``-``Z``,
``0``-``9``, space, period. Inputs may also use ``BOS`` (64) and ``PAD`` (65).

A *sentence* is a non-empty string over the alphabet whose only period is its
last character, so the set of sentences is prefix-free.
"""

from __future__ import annotations

import re
import string
import unicodedata
from collections.abc import Iterable, Sequence

import numpy as np

ALPHABET = string.ascii_lowercase + string.ascii_uppercase + string.digits + " ."
NUM_CLASSES = 64
BOS = 64
PAD = 65
INPUT_VOCAB = 66
PERIOD = ALPHABET.index(".")
SPACE = ALPHABET.index(" ")
assert len(ALPHABET) == NUM_CLASSES

_INVALID = 255
_LUT = np.full(256, _INVALID, dtype=np.uint8)
for _i, _c in enumerate(ALPHABET):
  _LUT[ord(_c)] = _i

TOO_LONG_POLICIES = ("error", "drop", "split")


def _bad_char_error(text: str, pos: int, where: str) -> ValueError:
  ch = text[pos]
  return ValueError(
      f"{where}: character {ch!r} (U+{ord(ch):04X}) at position {pos} is not in"
      f" the 64-symbol alphabet (a-z, A-Z, 0-9, space, period). Text: {text!r}."
      " Use jaxequiv.normalize() to map arbitrary text into sentences."
  )


def encode(text: str, *, where: str = "text") -> np.ndarray:
  """Encodes a string over the alphabet as uint8 class ids.

  Args:
    text: a string whose characters are all in ``ALPHABET``.
    where: how errors name the string, e.g. ``"sentence 3"``.

  Returns:
    ``ids_L``, a uint8 array with ``len(text)`` entries in ``[0, 64)``.

  Raises:
    ValueError: naming the first character outside the alphabet and its position.
  """
  if not isinstance(text, str):
    raise TypeError(f"{where}: expected str, got {type(text).__name__}")
  try:
    raw = np.frombuffer(text.encode("ascii"), dtype=np.uint8)
  except UnicodeEncodeError as e:
    raise _bad_char_error(text, e.start, where) from None
  ids = _LUT[raw]
  bad = np.flatnonzero(ids == _INVALID)
  if bad.size:
    raise _bad_char_error(text, int(bad[0]), where)
  return ids


def decode(ids: Iterable[int] | np.ndarray) -> str:
  """Decodes class ids to a string; ``BOS`` and ``PAD`` are skipped.

  >>> decode(encode("Hi there."))
  'Hi there.'
  """
  out = []
  for i in np.asarray(ids).reshape(-1).tolist():
    if i in (BOS, PAD):
      continue
    if not 0 <= i < NUM_CLASSES:
      raise ValueError(f"id {i} is not a class id in [0, 64) nor BOS/PAD")
    out.append(ALPHABET[i])
  return "".join(out)


def check_sentence(sentence: str, index: int = 0) -> np.ndarray:
  """Validates one sentence and returns its ids. Errors name ``index``."""
  where = f"sentence {index}"
  if not isinstance(sentence, str):
    raise TypeError(f"{where}: expected str, got {type(sentence).__name__}")
  if not sentence:
    raise ValueError(f"{where} is empty; a sentence ends with '.', e.g. '.'")
  ids = encode(sentence, where=where)
  periods = np.flatnonzero(ids == PERIOD)
  if periods.size == 0 or periods[-1] != len(sentence) - 1:
    raise ValueError(
        f"{where} does not end with '.': last character {sentence[-1]!r} at"
        f" position {len(sentence) - 1}. Text: {sentence!r}."
    )
  if periods.size > 1:
    raise ValueError(
        f"{where} has a period at position {int(periods[0])} before its end;"
        f" '.' terminates a sentence, so it may appear only last. Text: {sentence!r}."
    )
  return ids


def _split_long(sentence: str, max_len: int) -> list[str]:
  """Splits at the last space that fits; each piece ends with '.'."""
  pieces = []
  body = sentence[:-1]
  while len(body) + 1 > max_len:
    cut = body.rfind(" ", 1, max_len)  # piece body[:cut] + "." has <= max_len chars
    if cut <= 0:
      cut = max_len - 1
      head, body = body[:cut], body[cut:]
    else:
      head, body = body[:cut], body[cut + 1:]
    pieces.append(head + ".")
  pieces.append(body + ".")
  return [p for p in pieces if p != "."] or ["."]


def validate_sentences(
    sentences: Sequence[str],
    max_len: int | None = None,
    too_long: str = "error",
) -> list[str]:
  """Validates sentences; returns them, with over-long ones handled by policy.

  Args:
    sentences: strings over the alphabet, each ending with its only ``'.'``.
    max_len: the most characters a sentence may have (a context of length T
      fits sentences of up to T characters), or None for no limit.
    too_long: ``"error"`` (default) raises; ``"drop"`` removes such sentences;
      ``"split"`` cuts them at spaces into pieces of at most ``max_len``
      characters, each ending with ``'.'`` (this changes the text; needs
      ``max_len >= 2``).

  Raises:
    ValueError: naming the sentence index, the character and its position, or
      the sentence's length and the limit; or a ``max_len`` below 1 (below 2
      for ``"split"``).
  """
  if isinstance(sentences, str):
    raise TypeError("sentences must be a sequence of str, not one str")
  if too_long not in TOO_LONG_POLICIES:
    raise ValueError(f"too_long must be one of {TOO_LONG_POLICIES}, got {too_long!r}")
  if max_len is not None and max_len < 1:
    raise ValueError(f"max_len must be None or an int >= 1, got {max_len}")
  if max_len is not None and max_len < 2 and too_long == "split":
    raise ValueError(f"too_long='split' needs max_len >= 2 (each piece is at least one character and its '.'),"
                     f" got max_len={max_len}")
  out = []
  for i, s in enumerate(sentences):
    check_sentence(s, i)
    if max_len is not None and len(s) > max_len:
      if too_long == "error":
        raise ValueError(
            f"sentence {i} has {len(s)} characters, more than the limit of"
            f" {max_len} (context length T={max_len} fits sentences of up to T"
            " characters). Pass too_long='drop' or too_long='split' to handle"
            f" such sentences. Text starts: {s[:40]!r}."
        )
      if too_long == "split":
        out.extend(_split_long(s, max_len))
      continue
    out.append(s)
  return out


_SENTENCE_END = re.compile(r"[.!?;]+")
_NOT_IN_ALPHABET = re.compile(r"[^a-zA-Z0-9 ]+")
_SPACES = re.compile(r" +")
_SPELL_OUT = str.maketrans({"ß": "ss", "æ": "ae", "Æ": "AE", "œ": "oe", "Œ": "OE", "ø": "o", "Ø": "O", "ł": "l", "Ł": "L"})


def normalize(text: str) -> list[str]:
  """Maps arbitrary text to a list of sentences over the alphabet.

  Policy, in order:
    1. Unicode NFKD, then accents (combining marks) are dropped: ``é`` -> ``e``;
       a few letters NFKD keeps are spelled out: ``ß`` -> ``ss``, ``æ`` -> ``ae``,
       ``œ`` -> ``oe``, ``ø`` -> ``o``, ``ł`` -> ``l`` (and capitals).
    2. ``.``, ``!``, ``?`` and ``;`` (and runs of them) end a sentence.
    3. Apostrophes are deleted (``don't`` -> ``dont``); every other character
       outside ``a-z A-Z 0-9 space`` (newlines, tabs, punctuation, symbols,
       non-Latin letters) becomes a space.
    4. Runs of spaces collapse to one; sentences are stripped of spaces.
    5. Empty sentences are dropped; each sentence gets one final ``'.'``.

  >>> normalize("Hello, world! Ça va?  Don't   panic.")
  ['Hello world.', 'Ca va.', 'Dont panic.']
  """
  text = unicodedata.normalize("NFKD", text)
  text = "".join(c for c in text if not unicodedata.combining(c)).translate(_SPELL_OUT)
  text = text.replace("'", "").replace("\u2019", "")
  out = []
  for piece in _SENTENCE_END.split(text):
    piece = _SPACES.sub(" ", _NOT_IN_ALPHABET.sub(" ", piece)).strip()
    if piece:
      out.append(piece + ".")
  return out
