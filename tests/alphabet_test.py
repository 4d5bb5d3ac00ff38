import re

import numpy as np
import pytest

from jaxequiv import alphabet


def test_alphabet_is_64_classes_in_documented_order():
  assert len(alphabet.ALPHABET) == 64 == alphabet.NUM_CLASSES
  assert alphabet.ALPHABET[:26] == "abcdefghijklmnopqrstuvwxyz"
  assert alphabet.ALPHABET[26:52] == "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
  assert alphabet.ALPHABET[52:62] == "0123456789"
  assert alphabet.ALPHABET[62:] == " ."
  assert (alphabet.BOS, alphabet.PAD, alphabet.INPUT_VOCAB) == (64, 65, 66)


def test_encode_decode_round_trip():
  s = "The 3 quick Foxes jumped."
  ids = alphabet.encode(s)
  assert ids.dtype == np.uint8 and ids.tolist() == [alphabet.ALPHABET.index(c) for c in s]
  assert alphabet.decode(ids) == s
  assert alphabet.decode([alphabet.BOS, *ids.tolist(), alphabet.PAD]) == s


@pytest.mark.parametrize("text,char,pos", [("ab!c.", "!", 2), ("héllo.", "é", 1), ("a\nb.", "\n", 1)])
def test_encode_names_character_and_position(text, char, pos):
  with pytest.raises(ValueError, match=re.escape(f"character {char!r}") + f".*position {pos}"):
    alphabet.encode(text)


def test_decode_rejects_non_class_ids():
  with pytest.raises(ValueError, match="id 70"):
    alphabet.decode([1, 70])


@pytest.mark.parametrize(
    "sentences,pattern",
    [
        (["ok.", "fine.", "bad?"], r"sentence 2: character '\?' .* position 3"),
        (["ok.", ""], r"sentence 1 is empty"),
        (["ok.", "no end"], r"sentence 1 does not end with '\.'.*position 5"),
        (["a.b."], r"sentence 0 has a period at position 1"),
    ],
)
def test_validate_names_sentence_character_and_position(sentences, pattern):
  with pytest.raises(ValueError, match=pattern):
    alphabet.validate_sentences(sentences)


def test_validate_rejects_a_bare_string():
  with pytest.raises(TypeError, match="not one str"):
    alphabet.validate_sentences("abc.")


def test_too_long_policies():
  s = ["short.", "this one is far too long for it."]
  with pytest.raises(ValueError, match=r"sentence 1 has 32 characters, more than the limit of 12"):
    alphabet.validate_sentences(s, max_len=12)
  assert alphabet.validate_sentences(s, max_len=12, too_long="drop") == ["short."]
  split = alphabet.validate_sentences(s, max_len=12, too_long="split")
  assert split[0] == "short."
  assert all(len(p) <= 12 and p.endswith(".") and p.count(".") == 1 for p in split)
  assert " ".join(p[:-1] for p in split[1:]) == s[1][:-1]
  hard = alphabet.validate_sentences(["x" * 30 + "."], max_len=8, too_long="split")
  assert "".join(p[:-1] for p in hard) == "x" * 30 and all(len(p) <= 8 for p in hard)


def test_normalize_policy():
  assert alphabet.normalize("Hello, world! Ça va?  Don't   panic.") == ["Hello world.", "Ca va.", "Dont panic."]
  assert alphabet.normalize("one; two\n\nthree...four") == ["one.", "two three.", "four."]
  assert alphabet.normalize("  ...  !!! ") == []
  out = alphabet.normalize("Straße 42 — naïve café: 3.14 € ✓")
  alphabet.validate_sentences(out)
  assert out == ["Strasse 42 naive cafe 3.", "14."]


@pytest.mark.parametrize("max_len,policy,pattern", [
    (1, "split", r"too_long='split' needs max_len >= 2"),
    (0, "drop", r"max_len must be None or an int >= 1, got 0"),
    (-3, "error", r"max_len must be None or an int >= 1, got -3"),
])
def test_too_long_rejects_limits_it_cannot_meet(max_len, policy, pattern):
  # max_len=1 with "split" used to loop forever: a piece holds one character and its '.'.
  with pytest.raises(ValueError, match=pattern):
    alphabet.validate_sentences(["ab cd."], max_len=max_len, too_long=policy)


def test_split_at_the_smallest_limit_terminates_and_keeps_the_text():
  pieces = alphabet.validate_sentences(["ab cd.", "."], max_len=2, too_long="split")
  assert pieces == ["a.", "b.", "c.", "d.", "."]
