"""Sentence sources: an offline English corpus, text files, TFDS datasets, the synthetic grammar.

Every function returns a ``list[str]`` of sentences that
``alphabet.validate_sentences`` accepts. ``load_sentences(spec)`` picks a source
from a short string, as the CLI does:

* ``"builtin"``: English prose from CPython's own help texts (always offline).
* ``"synthetic"``: samples of ``grammar.default_grammar()`` (known entropy rate).
* ``"tfds:<name>[/<config>][:<split>]"``: a TensorFlow Datasets text dataset
  (``tiny_shakespeare``, ``lm1b``); the split defaults to ``train`` and may be
  sliced (``tfds:lm1b:train[:1%]``). Reading needs only tensorflow-datasets
  (``pip install 'jaxequiv[tfds]'``); *preparing* the files the first time
  needs TensorFlow too (``pip install 'jaxequiv[tfds-prepare]'``).
* any other string: a path to a local UTF-8 text file.

``train_val_split`` splits by a keyed hash of each sentence's text, so copies of
a sentence always land on the same side.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
from collections.abc import Iterator, Sequence

from jaxequiv import alphabet, limits, tfds_source
from jaxequiv.tfds_source import TFDS_EXTRA, TFDS_PREPARE_EXTRA

SPECS = ("builtin", "synthetic", "tfds:<name>[/<config>][:<split>]", "<path to a text file>")
# Examples read when max_examples is None: lm1b holds 30M sentences, more than a list of str should.
DEFAULT_MAX_EXAMPLES = {"lm1b": 1_000_000}
MAX_TEXT_FILE_BYTES = 2**30  # a text file larger than this is refused before it is read

# --- builtin corpus -------------------------------------------------------

MIN_WORDS = 5
MIN_LETTER_FRACTION = 0.9
_UNDERLINE = re.compile(r"^[*=\-~^#+]{3,}$")
_ABBREVIATIONS = {"e.g.": "for example", "i.e.": "that is", "etc.": "and so on", "vs.": "versus", "cf.": "compare"}
_VERSION_NOTE = re.compile(r"^(Changed|Added|New|Deprecated)( in| since)? version \d+(\.\d+)*[:.]?\s*")
_ELLIPSIS = re.compile(r"\.{2,}|\u2026")
_FOOTNOTE = re.compile(r"\[\d+\]")
_EMPHASIS = re.compile(r"\*{1,2}([A-Za-z0-9 ]+)\*{1,2}")
_SENTENCE_BREAK = re.compile(r"(?<=[.!?])\s+")
_CODE_SYMBOL = re.compile(r"[\[\]{}<>=+*/\\|_@#$%^&~`]")
_DOTTED = re.compile(r"\.\S")  # os.path, 3.11, obj.attr: a period inside a token


def _prose_paragraphs(text: str) -> Iterator[str]:
  """Paragraphs of running text: no code, grammar, tables or headings."""
  lines = text.splitlines()
  para: list[str] = []
  for i, line in enumerate(lines):
    stripped = line.strip()
    following = lines[i + 1].strip() if i + 1 < len(lines) else ""
    indent = len(line) - len(line.lstrip(" "))
    if (not stripped or _UNDERLINE.match(stripped) or _UNDERLINE.match(following)
        or indent >= 3 or stripped[0] in "+|>"):
      if para:
        yield " ".join(para)
      para = []
      continue
    if stripped.startswith(("* ", "- ")):  # a list item starts a new paragraph
      if para:
        yield " ".join(para)
      para, stripped = [], stripped[2:]
    para.append(stripped)
  if para:
    yield " ".join(para)


def _is_english(sentence: str) -> bool:
  words = sentence[:-1].split(" ")
  letters = sum(c.isalpha() for c in sentence)
  return (len(words) >= MIN_WORDS and sentence[0].isupper()
          and letters >= MIN_LETTER_FRACTION * (len(sentence) - len(words)))


def prose_sentences(text: str) -> list[str]:
  """English sentences of reStructuredText-like documentation, in order, with repeats.

  The filter used by ``builtin_sentences``:

  1. Lines indented by 3+ spaces (code examples, grammar rules), table lines
     (starting ``+`` or ``|``), ``>>>`` lines, headings (a line above an
     underline of ``*``, ``=``, ``-``...) and the underlines are dropped;
     the remaining lines are joined into paragraphs (list items start new ones).
  2. ``e.g.``, ``i.e.``, ``etc.``, ``vs.``, ``cf.`` are spelled out and
     ellipses become spaces; a leading
     "Changed in version 3.x:" and footnote marks ``[1]`` are removed;
     ``*emphasis*`` loses its asterisks.
  3. Paragraphs are split after ``.``, ``!`` or ``?`` followed by white space.
     A sentence is dropped unless it ends with ``.``, ``!`` or ``?`` (ones
     ending with ``:`` or nothing introduce code), or if it contains a period
     inside a token (``os.path``, ``3.11``: code or version numbers) or any
     code symbol (one of ``[ ] { } < > = + * / \\ | _ @ # $ % ^ & ~`` or a backtick).
  4. The rest is normalised with ``alphabet.normalize``; a resulting sentence is
     kept if it has at least ``MIN_WORDS`` words, starts with an upper-case
     letter, and at least ``MIN_LETTER_FRACTION`` of its non-space characters
     (the period excluded) are letters.
  """
  out = []
  for para in _prose_paragraphs(text):
    for short, long in _ABBREVIATIONS.items():
      para = para.replace(short, long)
    para = _ELLIPSIS.sub(" ", para)
    for raw in _SENTENCE_BREAK.split(para):
      raw = _EMPHASIS.sub(r"\1", _FOOTNOTE.sub("", _VERSION_NOTE.sub("", raw.strip())))
      if not raw.endswith((".", "!", "?")) or _DOTTED.search(raw.rstrip(".!? ")) or _CODE_SYMBOL.search(raw):
        continue
      out.extend(s for s in alphabet.normalize(raw) if _is_english(s))
  return out


@functools.lru_cache(maxsize=1)
def _builtin() -> tuple[str, ...]:
  from pydoc_data.topics import topics  # pylint: disable=import-outside-toplevel

  seen, out = set(), []
  for key in sorted(topics):
    for s in prose_sentences(topics[key]):
      if s not in seen:
        seen.add(s)
        out.append(s)
  return tuple(out)


def builtin_sentences() -> list[str]:
  """An offline English corpus: the prose of CPython's help texts (``pydoc_data.topics``).

  Topics are read in sorted key order, filtered by ``prose_sentences`` (no
  code, tables or version notes; sentences of at least 5 words), and exact
  repeats are dropped (topics share paragraphs), keeping first occurrences.
  Deterministic for a given Python version; the text differs between Python
  versions (Python 3.11.7: 929 sentences, 91,396 characters, mean 98,
  longest 289; use ``load_sentences("builtin", max_len=T)`` to cut long ones). Cached.

  Examples:
    >>> sentences = builtin_sentences()   # the first, on Python 3.11.7: 'The current code generator emits no code ...'
    >>> len(sentences) > 500, all(s.endswith(".") and s.count(".") == 1 for s in sentences)
    (True, True)
  """
  return list(_builtin())


# --- files and TFDS -------------------------------------------------------


def text_file_sentences(path: str | os.PathLike, encoding: str = "utf-8",
                        max_bytes: int = MAX_TEXT_FILE_BYTES) -> list[str]:
  """All sentences of a local text file, via ``alphabet.normalize`` (newlines are spaces).

  Raises:
    jaxequiv.limits.TooLargeError: (a ``ValueError``) naming the file, before reading it, unless it is a regular
      file of at most ``max_bytes`` (default 1 GiB; its sentences take several times that as Python strings).
    ValueError: naming the file, if it holds NUL bytes (a binary file) or is
      not valid ``encoding`` text (e.g. latin-1 read as UTF-8: the byte and its
      offset are named; pass ``encoding="latin-1"`` to read such a file).

  Examples:
    >>> import pathlib, tempfile
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "text.txt"
    >>> _ = path.write_text("Hello there. How are you?")
    >>> text_file_sentences(path)
    ['Hello there.', 'How are you.']
  """
  raw = limits.read_limited(path, max_bytes)
  nul = raw.find(b"\x00")
  if nul >= 0:
    raise ValueError(f"{os.fspath(path)!r} is not a text file: it holds a NUL byte at offset {nul} (binary data?)")
  try:
    text = raw.decode(encoding)
  except UnicodeDecodeError as e:
    raise ValueError(
        f"{os.fspath(path)!r} is not {encoding} text: byte 0x{raw[e.start]:02x} at offset {e.start} ({e.reason});"
        f" convert it to {encoding} (e.g. iconv -f latin1 -t utf-8) or pass encoding=...") from None
  return alphabet.normalize(text)


def _as_str(text) -> str:
  if isinstance(text, bytes):
    return text.decode("utf-8")
  if hasattr(text, "item"):  # numpy scalar or 0-d array
    return _as_str(text.item())
  return str(text)


_TFDS_WHOLE_TEXT = ("tiny_shakespeare",)


def _tfds_texts(tfds, name: str, split: str, data_dir, download: bool, max_examples: int | None) -> Iterator[str]:
  """The ``text`` field of up to ``max_examples`` examples, one at a time (never all of lm1b in memory)."""
  try:
    source = tfds_source.array_record_source(tfds, name, split, data_dir, download)
  except NotImplementedError:  # prepared files are not random access (tfrecord): tf.data, which needs TensorFlow
    try:
      ds = tfds.load(name, split=split, data_dir=data_dir, download=download)
    except ImportError as e:
      if not tfds_source.needs_tensorflow(e):
        raise
      raise ImportError(f"tfds:{name} is prepared as tfrecord, which only TensorFlow reads: {TFDS_PREPARE_EXTRA},"
                        f" or prepare it again with --file_format=array_record") from e
    for i, ex in enumerate(tfds.as_numpy(ds)):
      if max_examples is not None and i >= max_examples:
        return
      yield _as_str(ex["text"])
    return
  except ImportError:
    raise  # it already names the extra to install
  except Exception as e:  # pylint: disable=broad-except
    if isinstance(e, tfds.core.registered.DatasetNotFoundError) or "BuilderConfig" in str(e):
      raise ValueError(f"tfds:{name}: no such TFDS dataset or builder config ({str(e).splitlines()[0]})") from e
    raise FileNotFoundError(
        f"tfds:{name} split {split!r} could not be read from data_dir={data_dir!r}"
        f" ({type(e).__name__}: {(str(e).splitlines() or [''])[0]}). Prepare it with"
        f" `tfds build {name} --file_format=array_record` (needs TensorFlow: {TFDS_PREPARE_EXTRA})") from e
  n = len(source) if max_examples is None else min(len(source), max_examples)
  for i in range(n):
    yield _as_str(source[i]["text"])


def tfds_sentences(
    name: str,
    split: str = "train",
    data_dir: str | None = None,
    *,
    max_examples: int | None = None,
    download: bool = True,
) -> list[str]:
  """Sentences of a TensorFlow Datasets text dataset (field ``text``).

  * ``tiny_shakespeare``: each split is one long text; the examples' texts are
    joined with newlines and normalised as a whole.
  * ``lm1b`` (and any other dataset with a ``text`` field): one sentence per
    example, each normalised on its own as it is read (one example may give
    several sentences).

  Loading path: ``tfds.data_source`` (random access, array_record files, no
  TensorFlow needed to read; ``pip install 'jaxequiv[tfds]'``). *Preparing*
  the files (``download_and_prepare``, the first time) needs TensorFlow
  (``pip install 'jaxequiv[tfds-prepare]'``): prepare them once where it is
  installed, with ``tfds build <name> --file_format=array_record``, then read
  them anywhere with ``data_dir``, or pass ``download=False`` to read prepared
  files only. If the prepared files are not random access (tfrecord), this
  falls back to ``tfds.as_numpy(tfds.load(...))``, which needs TensorFlow too.

  Args:
    name: dataset name, with an optional builder config: ``"tiny_shakespeare"``,
      ``"lm1b"``, ``"<name>/<config>"``.
    split: TFDS split string, e.g. ``"train"`` or ``"validation[:10%]"``.
    data_dir: TFDS data directory (default: TFDS's, ``~/tensorflow_datasets``).
    max_examples: read at most this many examples; None reads
      ``DEFAULT_MAX_EXAMPLES`` for datasets listed there (lm1b: 1M of its 30M)
      and everything otherwise; 0 reads everything.
    download: let TFDS download and prepare the data if missing.

  Raises:
    ImportError: naming the extra to install (tensorflow-datasets, or
      TensorFlow to prepare).
    FileNotFoundError: if the data is not prepared and cannot be.
    ValueError: for an unknown dataset or a negative ``max_examples``.
  """
  try:
    import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel
  except ImportError as e:
    raise ImportError(f"tfds:{name} needs tensorflow-datasets: {TFDS_EXTRA}") from e
  base = name.split("/")[0]
  if max_examples is None:
    max_examples = DEFAULT_MAX_EXAMPLES.get(base)
  elif max_examples < 0:
    raise ValueError(f"max_examples must be >= 0 (0: all), got {max_examples}")
  texts = _tfds_texts(tfds, name, split, data_dir, download, max_examples or None)
  if base in _TFDS_WHOLE_TEXT:
    return alphabet.normalize("\n".join(texts))
  return [s for t in texts for s in alphabet.normalize(t)]


# --- one entry point ------------------------------------------------------


def parse_spec(spec: str) -> tuple[str, str, str | None]:
  """``(kind, name, split)`` of a corpus spec, checked without reading any data.

  ``kind`` is ``"builtin"``, ``"synthetic"``, ``"tfds"`` (``name`` may carry a
  ``/config``; ``split`` defaults to ``"train"``) or ``"file"`` (``name`` is the
  path).

  >>> parse_spec("tfds:lm1b:train[:1%]")
  ('tfds', 'lm1b', 'train[:1%]')

  Raises:
    ValueError: naming the spec and listing the valid forms.
  """
  if not isinstance(spec, str) or not spec:
    raise ValueError(f"corpus spec must be a non-empty str, one of {SPECS}; got {spec!r}")
  if spec in ("builtin", "synthetic"):
    return spec, spec, None
  if spec.startswith("tfds:"):
    name, _, split = spec[len("tfds:"):].partition(":")
    if not name or name.startswith("/") or name.endswith("/"):
      raise ValueError(
          f"corpus spec {spec!r} names no dataset, e.g. 'tfds:tiny_shakespeare'. Valid forms: {', '.join(SPECS)}.")
    return "tfds", name, split or "train"
  if os.path.exists(spec) and not os.path.isdir(spec):  # a FIFO or device too: the file checks name what it is
    return "file", spec, None
  raise ValueError(
      f"unknown corpus spec {spec!r}: it is not 'builtin', 'synthetic' or 'tfds:<name>[:<split>]',"
      f" and no file exists at that path. Valid forms: {', '.join(SPECS)}.")


def load_sentences(
    spec: str,
    *,
    max_len: int | None = None,
    too_long: str = "split",
    num_synthetic: int = 20000,
    seed: int = 0,
    max_examples: int | None = None,
    data_dir: str | None = None,
) -> list[str]:
  """Sentences from a source named by ``spec``, with over-long ones handled.

  Args:
    spec: ``"builtin"``, ``"synthetic"``, ``"tfds:<name>[/<config>][:<split>]"``
      (split default ``train``, slices allowed) or a text file path.
    max_len: the most characters a sentence may have (a context of T fits T),
      or None.
    too_long: ``"split"`` (default: cut at spaces), ``"drop"`` or ``"error"``;
      see ``alphabet.validate_sentences``.
    num_synthetic: how many sentences ``"synthetic"`` samples.
    seed: the sampling seed for ``"synthetic"``.
    max_examples: TFDS only: examples read (see ``tfds_sentences``; 0: all).
    data_dir: TFDS only: its data directory.

  Returns:
    A list of valid sentences, each of at most ``max_len`` characters.

  Examples:
    >>> sentences = load_sentences("builtin", max_len=64)
  """
  kind, name, split = parse_spec(spec)
  if kind == "builtin":
    sentences = builtin_sentences()
  elif kind == "synthetic":
    from jaxequiv.lm import grammar  # pylint: disable=import-outside-toplevel

    sentences = grammar.sample_sentences(grammar.default_grammar(), num_synthetic, seed)
  elif kind == "tfds":
    sentences = tfds_sentences(name, split, data_dir, max_examples=max_examples)
  else:
    sentences = text_file_sentences(name)
  if not sentences:
    raise ValueError(f"corpus {spec!r} gave no sentences")
  return alphabet.validate_sentences(sentences, max_len=max_len, too_long=too_long)


def _unit_hash(sentence: str, seed: int) -> float:
  digest = hashlib.blake2b(sentence.encode("utf-8"), digest_size=8, salt=seed.to_bytes(8, "little", signed=True))
  return int.from_bytes(digest.digest(), "little") / 2.0**64


def train_val_split(
    sentences: Sequence[str], val_fraction: float = 0.1, seed: int = 0
) -> tuple[list[str], list[str]]:
  """Deterministic split that keeps every copy of a sentence on one side.

  A sentence goes to validation iff ``blake2b(text, salt=seed)`` read as a
  number in [0, 1) is below ``val_fraction``. So duplicates cannot leak from
  train into validation, the split does not depend on the order or the number
  of sentences, and the validation share is ``val_fraction`` only on average
  (binomially distributed over distinct sentences). Both sides keep the input
  order.

  Args:
    sentences: the corpus.
    val_fraction: expected share of distinct sentences in validation, in [0, 1).
    seed: changes which sentences are held out (a hash salt; any int64).

  Returns:
    ``(train, val)``.

  Raises:
    ValueError: if ``val_fraction > 0`` but one side comes out empty.
  """
  if not 0.0 <= val_fraction < 1.0:
    raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
  if isinstance(sentences, str):
    raise TypeError("sentences must be a sequence of str, not one str")
  train, val = [], []
  for s in sentences:
    (val if _unit_hash(s, seed) < val_fraction else train).append(s)
  if val_fraction > 0 and sentences and (not train or not val):
    raise ValueError(
        f"train_val_split of {len(sentences)} sentences with val_fraction={val_fraction} gave"
        f" {len(train)} train and {len(val)} validation sentences; use more sentences or another fraction")
  return train, val
