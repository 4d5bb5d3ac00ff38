r"""A synthetic corpus from a small probabilistic grammar with an exactly known entropy rate.

A ``Grammar`` is a probabilistic finite-state machine over words. In state s it
either emits a word w and moves to state s' (probability ``p(w | s)``), or stops
(probability ``p(stop | s)``). A sentence is the emitted words joined by single
spaces plus a final ``'.'``, e.g. ``"The red cat sees a dog."``.

The map from derivations to sentences is one-to-one because (checked by
``check_grammar``): words are non-empty and contain neither space nor period, so
a sentence determines its word sequence; and in each state every word appears in
at most one rule, so the word sequence determines the path of states. Hence
``p(sentence)`` is the product of its rule probabilities and the entropy of the
sentence distribution equals the entropy of the path, which is exact linear
algebra on the machine:

.. math:: H(S) = \sum_s v_s H_s,\qquad
   E[\mathrm{len}(S)] = \sum_s v_s \sum_w p(w \mid s)\,(|w| + 1),

where ``v = e_start (I - Q)^{-1}`` are the expected visits to each state (Q holds
the state-to-state probabilities) and ``H_s`` is the entropy of state s's rule
distribution. Every word contributes ``|w| + 1`` characters: itself and the space
after it, or the final period after the last word.

The ``default_grammar()`` is acyclic: sentences of 2-8 words and 9-45 characters
(mean 23.072), 114072 distinct sentences, entropy 9.0520 nats per sentence and
entropy rate 0.39234 nats per character. They fit a context of 64 with room to spare.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from typing import NamedTuple

import numpy as np

from jaxequiv import alphabet

# A rule is (word, probability, next_state); word None (next_state None) stops the sentence.
Rule = tuple  # tuple[str | None, float, str | None]


class Grammar(NamedTuple):
  """A probabilistic finite-state word grammar.

  Attributes:
    start: name of the start state.
    rules: state name -> its rules ``(word, probability, next_state)``. A rule
      with ``word=None`` (and ``next_state=None``) ends the sentence. The
      probabilities of a state's rules sum to 1.
  """

  start: str
  rules: Mapping[str, Sequence[Rule]]


def _weighted(words: dict[str, float], nxt: str) -> list[Rule]:
  return [(w, p, nxt) for w, p in words.items()]


def default_grammar() -> Grammar:
  """A small English-like grammar: ``[Det [Adj] Noun | Name] Verb [Object] [Adverb].``

  >>> sample_sentences(default_grammar(), 3, seed=0)
  ['Every red bird sings today.', 'The bird sleeps today.', 'The fox finds the dog.']
  """
  adjectives = {"red": 0.2, "big": 0.2, "small": 0.2, "old": 0.2, "happy": 0.2}
  nouns = {"cat": 0.3, "dog": 0.3, "bird": 0.2, "fox": 0.2}
  scale = lambda d, f: {k: v * f for k, v in d.items()}  # noqa: E731
  rules = {
      "subject": _weighted({"The": 0.3, "A": 0.2, "My": 0.1, "Every": 0.1}, "subject_adj")
      + _weighted({"Tom": 0.15, "Anna": 0.15}, "verb"),
      "subject_adj": _weighted(scale(adjectives, 0.5), "subject_noun") + _weighted(scale(nouns, 0.5), "verb"),
      "subject_noun": _weighted(nouns, "verb"),
      "verb": _weighted({"sees": 0.2, "likes": 0.15, "chases": 0.15, "finds": 0.1}, "object_det")
      + _weighted({"sleeps": 0.15, "runs": 0.15, "sings": 0.1}, "manner"),
      "object_det": _weighted({"the": 0.5, "a": 0.3, "my": 0.2}, "object_adj"),
      "object_adj": _weighted(scale(adjectives, 0.4), "object_noun") + _weighted(scale(nouns, 0.6), "when"),
      "object_noun": _weighted(nouns, "when"),
      "when": [(None, 0.6, None), ("today", 0.2, "end"), ("again", 0.1, "end"), ("here", 0.1, "end")],
      "manner": [(None, 0.4, None), ("quickly", 0.2, "end"), ("slowly", 0.2, "end"), ("today", 0.2, "end")],
      "end": [(None, 1.0, None)],
  }
  return Grammar("subject", rules)


def check_grammar(grammar: Grammar) -> None:
  """Raises ValueError unless the grammar is well formed and unambiguous.

  Checks: the start and every next state exist; probabilities are positive and
  sum to 1 (within 1e-9) per state; words are non-empty strings over the
  alphabet without space or period; no word appears twice in one state (so
  sentences parse uniquely); at most one stop rule per state and none in the
  start state (a sentence has at least one word); every path can stop (``I - Q`` is invertible with non-negative visits).
  """
  if grammar.start not in grammar.rules:
    raise ValueError(f"start state {grammar.start!r} has no rules; states: {sorted(grammar.rules)}")
  if any(r[0] is None for r in grammar.rules[grammar.start]):
    raise ValueError(f"start state {grammar.start!r} has a stop rule; a sentence needs at least one word")
  for state, rules in grammar.rules.items():
    if not rules:
      raise ValueError(f"state {state!r} has no rules")
    seen = set()
    for i, rule in enumerate(rules):
      if len(rule) != 3:
        raise ValueError(f"state {state!r} rule {i} is {rule!r}; expected (word, probability, next_state)")
      word, p, nxt = rule
      if not (isinstance(p, (int, float)) and p > 0):
        raise ValueError(f"state {state!r} rule {i} ({word!r}) has probability {p!r}; must be > 0")
      if word is None:
        if nxt is not None:
          raise ValueError(f"state {state!r} rule {i}: a stop rule (word None) must have next_state None, got {nxt!r}")
      else:
        if not isinstance(word, str) or not word or " " in word or "." in word:
          raise ValueError(f"state {state!r} rule {i}: word {word!r} must be a non-empty str without space or '.'")
        alphabet.encode(word, where=f"state {state!r} word {word!r}")
        if nxt not in grammar.rules:
          raise ValueError(f"state {state!r} rule {i} ({word!r}) goes to unknown state {nxt!r}")
      if word in seen:
        raise ValueError(
            f"state {state!r} has two rules for {'stop' if word is None else repr(word)}; the sentence"
            " would not determine its derivation")
      seen.add(word)
    total = math.fsum(r[1] for r in rules)
    if abs(total - 1.0) > 1e-9:
      raise ValueError(f"state {state!r}: probabilities sum to {total!r}, not 1")
  visits = expected_visits(grammar)
  if not np.all(np.isfinite(visits)) or np.any(visits < -1e-9):
    raise ValueError("the grammar does not stop with probability 1 (I - Q is singular or visits are negative)")


def _states(grammar: Grammar) -> list[str]:
  return sorted(grammar.rules)


def expected_visits(grammar: Grammar) -> np.ndarray:
  """Expected number of visits to each state (in ``sorted(grammar.rules)`` order) per sentence."""
  states = _states(grammar)
  index = {s: i for i, s in enumerate(states)}
  q = np.zeros((len(states), len(states)))
  for s, rules in grammar.rules.items():
    for word, p, nxt in rules:
      if word is not None:
        q[index[s], index[nxt]] += p
  start = np.zeros(len(states))
  start[index[grammar.start]] = 1.0
  try:
    return np.linalg.solve((np.eye(len(states)) - q).T, start)
  except np.linalg.LinAlgError:
    return np.full(len(states), np.inf)


def _per_state(grammar: Grammar, f) -> float:
  visits = expected_visits(grammar)
  return float(math.fsum(v * f(grammar.rules[s]) for v, s in zip(visits, _states(grammar))))


def sentence_entropy(grammar: Grammar) -> float:
  r"""Exact entropy of the sentence distribution, in nats per sentence: :math:`\sum_s v_s H_s`."""
  check_grammar(grammar)
  return _per_state(grammar, lambda rules: -math.fsum(p * math.log(p) for _, p, _ in rules))


def mean_sentence_length(grammar: Grammar) -> float:
  """Exact expected characters per sentence, the final ``'.'`` included."""
  check_grammar(grammar)
  return _per_state(grammar, lambda rules: math.fsum(p * (len(w) + 1) for w, p, _ in rules if w is not None))


def entropy_rate(grammar: Grammar) -> float:
  r"""The per-character loss floor ``E[H(sentence)] / E[len(sentence)]`` in nats per character.

  A model's loss averaged over all characters of M sampled sentences is
  :math:`\sum_i -\log q(s_i) / \sum_i |s_i|` (each sentence's NLL is the sum of
  its characters' NLLs, the final period included, because sentences are
  prefix-free). Dividing numerator and denominator by M, both are sample means,
  so by the law of large numbers the ratio tends to
  :math:`E[-\log q(S)] / E[|S|] \ge H(S) / E[|S|]` (Gibbs' inequality), with
  equality iff q = p. So the floor is the ratio of expectations, not the mean of
  per-sentence ratios :math:`E[-\log p(S) / |S|]`, which would weight short
  sentences' characters more than a character-averaged loss does.

  >>> round(entropy_rate(default_grammar()), 4)
  0.3923
  """
  return sentence_entropy(grammar) / mean_sentence_length(grammar)


def max_sentence_length(grammar: Grammar) -> float:
  """Longest sentence in characters (``inf`` if the grammar has a cycle)."""
  check_grammar(grammar)
  memo: dict[str, float] = {}
  active: set[str] = set()

  def longest(state: str) -> float:
    if state in memo:
      return memo[state]
    if state in active:
      return math.inf
    active.add(state)
    best = max((len(w) + 1 + longest(n)) if w is not None else 0 for w, _, n in grammar.rules[state])
    active.discard(state)
    memo[state] = best
    return best

  return longest(grammar.start)


def sentence_log_prob(grammar: Grammar, sentence: str) -> float:
  """Exact ``log p(sentence)`` (natural log); ``-inf`` if the grammar cannot produce it."""
  if not isinstance(sentence, str) or not sentence.endswith(".") or sentence == ".":
    return -math.inf  # every sentence of a grammar has at least one word
  state, logp = grammar.start, 0.0
  for word in sentence[:-1].split(" "):
    rule = next((r for r in grammar.rules[state] if r[0] == word), None)
    if rule is None:
      return -math.inf
    logp += math.log(rule[1])
    state = rule[2]
  stop = next((r for r in grammar.rules[state] if r[0] is None), None)
  return logp + math.log(stop[1]) if stop is not None else -math.inf


def enumerate_sentences(grammar: Grammar, max_words: int = 32) -> Iterator[tuple[str, float]]:
  """Every sentence of at most ``max_words`` words with its probability (depth-first order).

  For an acyclic grammar with enough ``max_words`` the probabilities sum to 1.
  """
  check_grammar(grammar)

  def walk(state, words, p):
    for w, q, nxt in grammar.rules[state]:
      if w is None:
        yield " ".join(words) + ".", p * q
      elif len(words) < max_words:
        yield from walk(nxt, words + [w], p * q)

  yield from walk(grammar.start, [], 1.0)


def sample_sentences(grammar: Grammar, n: int, seed: int = 0, *, max_words: int = 10_000) -> list[str]:
  """Samples ``n`` sentences, all in parallel, with ``np.random.default_rng(seed)``.

  Deterministic: the same grammar, n and seed give the same list.

  Args:
    grammar: a well-formed grammar (see ``check_grammar``).
    n: number of sentences.
    seed: the numpy Generator's seed.
    max_words: raise if a sentence is still going after this many words.

  Returns:
    ``n`` sentences, each valid for ``alphabet.validate_sentences``.
  """
  check_grammar(grammar)
  if n < 0:
    raise ValueError(f"n must be >= 0, got {n}")
  states = _states(grammar)
  index = {s: i for i, s in enumerate(states)}
  words, next_state, cum, offsets = [], [], [], [0]
  for s in states:
    for w, p, nxt in grammar.rules[s]:
      words.append(w)
      next_state.append(-1 if w is None else index[nxt])
    probs = np.array([r[1] for r in grammar.rules[s]], np.float64)
    cum.append(np.cumsum(probs) / probs.sum())
    offsets.append(offsets[-1] + len(probs))
  next_state = np.asarray(next_state)
  rng = np.random.default_rng(seed)
  cur = np.full(n, index[grammar.start])
  chosen = []  # per step: rule index per sentence (-1 once stopped)
  for _ in range(max_words + 1):
    alive = cur >= 0
    if not alive.any():
      break
    u = rng.random(n)
    rule = np.full(n, -1)
    for si in np.unique(cur[alive]):
      m = cur == si
      k = np.minimum(np.searchsorted(cum[si], u[m], side="right"), len(cum[si]) - 1)
      rule[m] = offsets[si] + k
    chosen.append(rule)
    cur = np.where(alive, next_state[np.maximum(rule, 0)], -1)
  else:
    raise ValueError(f"a sentence ran past max_words={max_words} words")
  steps = np.stack(chosen, axis=1) if chosen else np.zeros((n, 0), int)
  out = []
  for row in steps.tolist():
    out.append(" ".join(words[r] for r in row if r >= 0 and words[r] is not None) + ".")
  return out
