"""Tests for the sentence sources: builtin corpus, text files, load_sentences, train_val_split (TFDS: tfds_test.py)."""

import collections
import subprocess
import sys

import pytest

from jaxequiv import alphabet
from jaxequiv.lm import corpus
from jaxequiv.lm import grammar


def test_builtin_corpus_is_valid_english_and_deterministic():
  s = corpus.builtin_sentences()
  chars = sum(map(len, s))
  print(f"builtin corpus: {len(s)} sentences, {chars} characters; e.g. {s[:2]}")
  assert len(s) >= 500 and chars >= 50_000
  assert alphabet.validate_sentences(s) == s
  assert len(set(s)) == len(s), "exact repeats are dropped"
  for x in s:
    words = x[:-1].split(" ")
    assert len(words) >= corpus.MIN_WORDS and x[0].isupper(), x
    assert sum(c.isalpha() for c in x) >= corpus.MIN_LETTER_FRACTION * (len(x) - len(words)), x
  # Deterministic: recomputed from scratch it is the same list, and callers cannot mutate the cache.
  s.append("Junk.")
  corpus._builtin.cache_clear()  # pylint: disable=protected-access
  again = corpus.builtin_sentences()
  assert again == s[:-1]


def test_prose_filter_drops_code_tables_headings_and_version_notes():
  text = """The "frob" statement
********************

The frob statement frobs things, e.g. widgets. It is very rarely needed.
Use "os.path.join" for paths.  Changed in version 3.7: It also frobs gadgets now.

   frob_stmt ::= "frob" expression
   x = frob(y)

+------+------+
| a    | b    |
+------+------+

* First item of a list goes here.
It returns "None"; a value of "x[0]" is kept nowhere.
This sentence is introduced by code and ends with
"""
  assert corpus.prose_sentences(text) == [
      "The frob statement frobs things for example widgets.",
      "It is very rarely needed.",
      "It also frobs gadgets now.",
      "First item of a list goes here.",
  ]


def test_text_file_sentences(tmp_path):
  path = tmp_path / "t.txt"
  path.write_text("Café au lait, s'il vous plaît!\nWhat?  Don't\npanic.\n", encoding="utf-8")
  assert corpus.text_file_sentences(path) == ["Cafe au lait sil vous plait.", "What.", "Dont panic."]
  assert corpus.load_sentences(str(path)) == ["Cafe au lait sil vous plait.", "What.", "Dont panic."]


def test_import_is_light():
  code = ("import sys, jaxequiv, jaxequiv.lm.corpus, jaxequiv.lm.data, jaxequiv.lm.grammar;"
          " assert 'tensorflow_datasets' not in sys.modules, 'tfds imported eagerly'")
  subprocess.run([sys.executable, "-c", code], check=True)


# --- load_sentences ---


def test_load_sentences_specs_and_max_len():
  builtin = corpus.load_sentences("builtin", max_len=64)
  assert max(map(len, builtin)) <= 64 and alphabet.validate_sentences(builtin) == builtin
  dropped = corpus.load_sentences("builtin", max_len=64, too_long="drop")
  assert dropped == [s for s in corpus.builtin_sentences() if len(s) <= 64]
  with pytest.raises(ValueError, match="more than the limit of 64"):
    corpus.load_sentences("builtin", max_len=64, too_long="error")
  synth = corpus.load_sentences("synthetic", num_synthetic=300, seed=5)
  assert synth == grammar.sample_sentences(grammar.default_grammar(), 300, 5)
  assert synth != corpus.load_sentences("synthetic", num_synthetic=300, seed=6)


@pytest.mark.parametrize("spec", ["bultin", "no/such/file.txt", "tfds:", ""])
def test_load_sentences_unknown_spec_lists_valid_forms(spec):
  with pytest.raises(ValueError, match="builtin.*synthetic.*tfds:<name>") as e:
    corpus.load_sentences(spec)
  if spec:
    assert repr(spec) in str(e.value) or "names no dataset" in str(e.value)


# --- train_val_split ---


def test_train_val_split_is_deterministic_and_keeps_duplicates_together():
  sentences = grammar.sample_sentences(grammar.default_grammar(), 5000, seed=0)
  counts = collections.Counter(sentences)
  assert max(counts.values()) > 1  # the synthetic corpus has repeats
  train, val = corpus.train_val_split(sentences, 0.1, seed=0)
  assert (train, val) == corpus.train_val_split(sentences, 0.1, seed=0)
  assert not set(train) & set(val), "a sentence is on both sides"
  assert sorted(train + val) == sorted(sentences)
  assert [s for s in sentences if s in set(val)] == val  # input order kept
  share = len(set(val)) / len(counts)
  print(f"validation share of distinct sentences: {share:.4f} (expected 0.1, tolerance 0.02)")
  assert abs(share - 0.1) < 0.02
  # The side of a sentence depends on its text and the seed only.
  train2, val2 = corpus.train_val_split(list(reversed(sentences)), 0.1, seed=0)
  assert set(val2) == set(val)
  assert set(corpus.train_val_split(sentences, 0.1, seed=1)[1]) != set(val)


def test_train_val_split_edge_cases():
  assert corpus.train_val_split(["A b.", "C d."], 0.0) == (["A b.", "C d."], [])
  with pytest.raises(ValueError, match="gave 1 train and 0 validation"):
    corpus.train_val_split(["A b."], 0.1)
  with pytest.raises(ValueError, match="val_fraction"):
    corpus.train_val_split(["A b."], 1.0)


# --- bad files and specs name the culprit ---


@pytest.mark.parametrize("content,pattern", [
    (b"Hello there.\x00\x01\x02 binary", r"is not a text file: it holds a NUL byte at offset 12"),
    ("Caf\u00e9 au lait.".encode("latin-1"), r"is not utf-8 text: byte 0xe9 at offset 3"),
])
def test_binary_and_latin1_files_name_the_file(tmp_path, content, pattern):
  path = tmp_path / "bad.txt"
  path.write_bytes(content)
  for load in (corpus.text_file_sentences, corpus.load_sentences):
    with pytest.raises(ValueError, match=pattern) as e:
      load(str(path))
    assert str(path) in str(e.value) and "\n" not in str(e.value)


def test_latin1_file_reads_with_its_encoding(tmp_path):
  path = tmp_path / "latin.txt"
  path.write_bytes("Caf\u00e9 au lait.".encode("latin-1"))
  assert corpus.text_file_sentences(path, encoding="latin-1") == ["Cafe au lait."]


def test_parse_spec_reads_no_data(tmp_path):
  path = tmp_path / "t.txt"
  path.write_text("Hi there.")
  assert corpus.parse_spec("builtin") == ("builtin", "builtin", None)
  assert corpus.parse_spec("tfds:tiny_shakespeare") == ("tfds", "tiny_shakespeare", "train")
  assert corpus.parse_spec("tfds:lm1b/bytes:validation[:10%]") == ("tfds", "lm1b/bytes", "validation[:10%]")
  assert corpus.parse_spec(str(path)) == ("file", str(path), None)
  for bad in ("tfds:/x", "tfds:lm1b/", "nope.txt"):
    with pytest.raises(ValueError, match="Valid forms"):
      corpus.parse_spec(bad)
