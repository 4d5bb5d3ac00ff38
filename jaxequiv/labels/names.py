"""Dataset class names to labels: one sentence each, ending with ``'.'``."""

from __future__ import annotations

import re
from collections.abc import Sequence

from jaxequiv import alphabet


_SYNSET = re.compile(r"^n\d{8}[\s_:-]+(?=\S)")
_TERMINATORS = re.compile(r"[.!?;]")


def normalize_label(name: str, *, lowercase: bool = False, first_synonym: bool = True) -> str:
  """Maps a dataset class name to a label: one sentence ending with ``'.'``.

  Policy, in order:
    1. A leading WordNet synset id followed by text (``"n01440764 tench"``) is
       dropped; a bare id (``"n01440764"``) is kept as the name.
    2. If ``first_synonym``, only the text before the first comma is kept
       (``"tench, Tinca tinca"`` -> ``"tench"``).
    3. Underscores become spaces; ``.``, ``!``, ``?`` and ``;`` become spaces so
       the name stays one sentence (``"St. Bernard"`` -> ``"St Bernard."``).
    4. ``jaxequiv.alphabet.normalize``: accents dropped, apostrophes deleted,
       other symbols become spaces, spaces collapse; one final ``'.'``.
    5. If ``lowercase``, the result is lowercased (default: case is kept).

  Raises:
    ValueError: if no letter or digit is left, naming the input.

  Examples:
    >>> [normalize_label(s) for s in ["maple_tree", "aquarium_fish", "n01440764 tench"]]
    ['maple tree.', 'aquarium fish.', 'tench.']
  """
  if not isinstance(name, str):
    raise TypeError(f"class name must be str, got {type(name).__name__} ({name!r})")
  s = _SYNSET.sub("", name.strip())
  if first_synonym:
    s = s.split(",")[0]
  s = _TERMINATORS.sub(" ", s.replace("_", " "))
  pieces = alphabet.normalize(s)
  if not pieces:
    raise ValueError(f"class name {name!r} has no letter or digit left after normalisation")
  assert len(pieces) == 1, pieces
  return pieces[0].lower() if lowercase else pieces[0]


def normalize_labels(names: Sequence[str], **kwargs) -> list[str]:
  """``normalize_label`` on each name; raises if two names map to the same label (naming both)."""
  out, seen = [], {}
  for i, name in enumerate(names):
    s = normalize_label(name, **kwargs)
    if s in seen:
      j = seen[s]
      raise ValueError(f"class names {j} ({names[j]!r}) and {i} ({name!r}) both normalise to {s!r}")
    seen[s] = i
    out.append(s)
  return out
