"""Tests for the synthetic grammar: exact entropy, lengths, sampling, and validation."""

import math

import numpy as np
import pytest

from jaxequiv import alphabet
from jaxequiv.lm import grammar

G = grammar.default_grammar()


@pytest.fixture(scope="module")
def enumerated():
  return list(grammar.enumerate_sentences(G))


def test_default_grammar_is_unambiguous_and_sums_to_one(enumerated):
  sentences = [s for s, _ in enumerated]
  assert len(set(sentences)) == len(sentences), "two derivations give the same sentence"
  total = math.fsum(p for _, p in enumerated)
  print(f"{len(sentences)} sentences, total probability 1 + {total - 1:.3g}")
  assert abs(total - 1.0) < 1e-12
  alphabet.validate_sentences(sentences)
  # Each enumerated probability is what parsing the sentence gives.
  for s, p in enumerated[:: max(1, len(enumerated) // 500)]:
    assert math.isclose(math.exp(grammar.sentence_log_prob(G, s)), p, rel_tol=1e-12)


def test_exact_entropy_and_length_match_enumeration(enumerated):
  h_enum = -math.fsum(p * math.log(p) for _, p in enumerated)
  len_enum = math.fsum(p * len(s) for s, p in enumerated)
  h, length = grammar.sentence_entropy(G), grammar.mean_sentence_length(G)
  print(f"H = {h:.12f} (enumeration {h_enum:.12f}); E[len] = {length:.12f} (enumeration {len_enum:.12f})")
  assert math.isclose(h, h_enum, rel_tol=1e-10)
  assert math.isclose(length, len_enum, rel_tol=1e-10)
  assert grammar.entropy_rate(G) == h / length
  assert grammar.max_sentence_length(G) == max(len(s) for s, _ in enumerated) == 45
  assert 20 <= length <= 40


def test_entropy_rate_matches_monte_carlo():
  sentences = grammar.sample_sentences(G, 20000, seed=1)
  nll = -np.array([grammar.sentence_log_prob(G, s) for s in sentences])
  lengths = np.array([len(s) for s in sentences], np.float64)
  estimate = nll.sum() / lengths.sum()
  exact = grammar.entropy_rate(G)
  # Delta-method standard error of the ratio of means.
  resid = nll - estimate * lengths
  se = resid.std(ddof=1) / math.sqrt(len(nll)) / lengths.mean()
  rel = abs(estimate - exact) / exact
  print(f"Monte Carlo {estimate:.5f} vs exact {exact:.5f} nats/char: relative error {rel:.2e}"
        f" (tolerance 1e-2), {abs(estimate - exact) / se:.2f} standard errors")
  assert rel < 1e-2
  assert abs(estimate - exact) < 5 * se


def test_samples_are_valid_deterministic_and_in_the_language():
  a = grammar.sample_sentences(G, 500, seed=3)
  assert a == grammar.sample_sentences(G, 500, seed=3)
  assert a != grammar.sample_sentences(G, 500, seed=4)
  assert alphabet.validate_sentences(a) == a
  assert all(np.isfinite(grammar.sentence_log_prob(G, s)) for s in a)
  assert max(len(s) for s in a) <= grammar.max_sentence_length(G)
  assert grammar.sample_sentences(G, 0, seed=0) == []


def test_sample_frequencies_follow_probabilities():
  tiny = grammar.Grammar("s", {"s": [("A", 0.7, "e"), ("B", 0.3, "e")], "e": [(None, 1.0, None)]})
  s = grammar.sample_sentences(tiny, 10000, seed=0)
  share = s.count("A.") / len(s)
  print(f"share of 'A.' = {share:.4f} (p = 0.7, tolerance 0.02)")
  assert abs(share - 0.7) < 0.02


def test_tiny_cyclic_grammar_exact_values():
  # "a" then k-1 more "a"s with probability 0.5 each: k ~ Geometric(1/2) on 1, 2, ...
  tiny = grammar.Grammar("s", {"s": [("a", 1.0, "loop")], "loop": [("a", 0.5, "loop"), (None, 0.5, None)]})
  # H = sum_k 2^-k * k ln 2 = 2 ln 2; a sentence of k words has 2k characters, E[len] = 4.
  assert math.isclose(grammar.sentence_entropy(tiny), 2 * math.log(2), rel_tol=1e-12)
  assert math.isclose(grammar.mean_sentence_length(tiny), 4.0, rel_tol=1e-12)
  assert math.isclose(grammar.entropy_rate(tiny), math.log(2) / 2, rel_tol=1e-12)
  assert grammar.max_sentence_length(tiny) == math.inf
  enum = list(grammar.enumerate_sentences(tiny, max_words=40))
  total = math.fsum(p for _, p in enum)
  print(f"truncated enumeration (40 words) sums to 1 - {1 - total:.3g}")
  assert abs(total - 1.0) < 1e-11
  assert math.isclose(-math.fsum(p * math.log(p) for _, p in enum), 2 * math.log(2), rel_tol=1e-9)
  assert grammar.sentence_log_prob(tiny, "a a a.") == pytest.approx(3 * math.log(0.5))  # a, a, a, stop
  assert grammar.sentence_log_prob(tiny, "a b.") == -math.inf
  assert grammar.sentence_log_prob(tiny, ".") == -math.inf


@pytest.mark.parametrize(
    "rules, match",
    [
        ({"s": [("a", 0.5, "e"), ("a", 0.5, "e")], "e": [(None, 1.0, None)]}, "two rules for 'a'"),
        ({"s": [("a", 0.5, "e")], "e": [(None, 1.0, None)]}, "sum to"),
        ({"s": [("a", 1.0, "nowhere")]}, "unknown state 'nowhere'"),
        ({"s": [("a b", 1.0, "e")], "e": [(None, 1.0, None)]}, "without space"),
        ({"s": [("a,", 1.0, "e")], "e": [(None, 1.0, None)]}, "not in the 64-symbol alphabet"),
        ({"s": [("a", 1.0, "s")]}, "does not stop"),
        ({"s": [(None, 1.0, None)]}, "at least one word"),
        ({"t": [(None, 1.0, None)]}, "start state 's' has no rules"),
    ],
)
def test_check_grammar_names_the_problem(rules, match):
  with pytest.raises(ValueError, match=match):
    grammar.check_grammar(grammar.Grammar("s", rules))
