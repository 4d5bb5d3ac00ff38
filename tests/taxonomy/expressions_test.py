"""Grammar-constrained expression decoder: support = grammar strings up to length L; total probability 1."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxequiv import alphabet, labels
from jaxequiv.taxonomy import expressions as X


@pytest.mark.parametrize("max_len", [1, 4])   # 5 runs in checks_test
def test_decoder_support_is_the_grammar(max_len):
  support, grammar = X.decoder_support(max_len), X.grammar_strings(max_len)
  print(f"L={max_len}: {len(support)} strings")
  assert support == grammar


def _bigram_logits(strings, seed):
  """A fixed random model: logits depend on (position, previous character)."""
  table = 3 * jax.random.normal(jax.random.key(seed), (8, 65, 64))
  t = max(len(s) for s in strings)
  chars = np.zeros((len(strings), t), np.int32)
  for i, s in enumerate(strings):
    chars[i, :len(s)] = alphabet.encode(s)
  prev = np.concatenate([np.full((len(strings), 1), 64), chars[:, :-1]], 1)
  return table[np.arange(t)[None, :], prev], chars, np.array([len(s) for s in strings], np.int32)


@pytest.mark.parametrize("max_len,seed", [(6, 1)])
def test_total_probability_is_one(max_len, seed):
  strings = X.grammar_strings(max_len)
  logits, chars, lengths = _bigram_logits(strings, seed)
  lp = jax.jit(X.string_logprobs, static_argnums=3)(logits, chars, lengths, max_len)
  total = float(jnp.sum(jnp.exp(lp)))
  print(f"L={max_len}: {len(strings)} strings, total probability - 1 = {total - 1:.2e}")
  assert abs(total - 1) < 1e-5 * max_len   # float32 sums of ~10^3 terms
  sub = X.string_logprobs(logits[:-1], chars[:-1], lengths[:-1], max_len)   # negative: drop one string
  assert float(jnp.sum(jnp.exp(sub))) < 1 - 1e-6


def test_unique_by_value_and_trie_conversion():
  grid = np.linspace(-2, 2, 17)
  exprs = X.unique_by_value(sorted(X.grammar_strings(4), key=len), grid)
  assert "x." in exprs and "Sx." in exprs and "aSxx." in exprs
  assert ("axx." in exprs) != ("mx2." in exprs)   # x+x == x*2 on the grid: one spelling stays
  assert "s11." in exprs and "sxx." not in exprs  # both are 0; the first spelling stays
  assert "a11." not in exprs                      # 1+1 is "2."
  np.testing.assert_allclose(X.evaluate("amx2Sx.", grid), 2 * grid + np.sin(grid))
  trie = labels.label_trie(exprs)
  logits = jax.random.normal(jax.random.key(0), (3, len(exprs)))
  err = float(jnp.max(jnp.abs(jnp.sum(labels.path_char_logprobs(trie, logits), -1) - jax.nn.log_softmax(logits))))
  print(f"{len(exprs)} distinct expressions; K-way -> characters error {err:.2e}")
  assert err < 1e-5
  with pytest.raises(ValueError, match="trailing"):
    X.evaluate("xx.", grid)
