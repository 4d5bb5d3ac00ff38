"""DSI: the atomic-id classifier and the id decoder are exact conversions of one another through the trie."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxequiv import labels
from jaxequiv.taxonomy import retrieval as R

K = 23
TRIE = labels.label_trie(R.doc_id_labels(K))


@jax.jit
def _round_trips(doc_logits, node_logits):
  kway = jax.nn.log_softmax(doc_logits)
  back = R.decoder_to_atomic(TRIE, R.atomic_to_decoder(TRIE, doc_logits))
  scores = R.decoder_to_atomic(TRIE, node_logits)
  again = R.atomic_to_decoder(TRIE, scores)
  return kway, back, scores, again


def test_atomic_and_decoder_round_trip():
  doc_logits = 3 * jax.random.normal(jax.random.key(0), (6, K))
  node_logits = 3 * jax.random.normal(jax.random.key(1), (6, TRIE.num_nodes, 64))
  kway, back, scores, again = _round_trips(doc_logits, node_logits)
  err_a = float(jnp.max(jnp.abs(kway - back)))
  # The decoder's constrained conditionals at every internal node, recovered from its K-way form.
  allowed = jnp.asarray(TRIE.child) >= 0
  want = jax.nn.log_softmax(jnp.where(allowed[None], node_logits, -jnp.inf), axis=-1)
  internal = np.asarray(TRIE.leaf_class) < 0
  fin = allowed[None] & internal[None, :, None]
  err_d = float(jnp.max(jnp.where(fin, jnp.abs(want - again), 0.0)))
  print(f"atomic -> decoder -> atomic: {err_a:.2e}; decoder -> atomic -> decoder: {err_d:.2e}")
  assert err_a < 1e-5 and err_d < 1e-5
  assert float(jnp.max(jnp.abs(jax.nn.logsumexp(scores, -1)))) < 1e-5


def test_beam_search_ranking_is_the_atomic_ranking():
  doc_logits = 3 * jax.random.normal(jax.random.key(2), (5, K))
  node_lp = R.atomic_to_decoder(TRIE, doc_logits)

  def step(tokens, t):  # the decoder's logits after the prefix in tokens[:, 1:t+1]
    node = jnp.zeros(tokens.shape[0], jnp.int32)
    for i in range(1, TRIE.max_len + 1):
      nxt = labels.advance(TRIE, node, jnp.clip(tokens[:, i], 0, 63))
      node = jnp.where((i <= t) & (nxt >= 0), nxt, node)
    rows = jnp.arange(tokens.shape[0]) // K
    return jnp.where(jnp.isfinite(node_lp[rows, node]), node_lp[rows, node], -1e9)

  out = jax.jit(lambda: labels.beam_decode(TRIE, step, 5, K))()
  want = np.argsort(-np.asarray(doc_logits), axis=1, kind="stable")
  np.testing.assert_array_equal(np.asarray(out.beam_classes), want)
  for k in (1, 10):
    a = R.hits_at_k(doc_logits, jnp.arange(5), k)
    b = R.hits_at_k(out_scores := jnp.full((5, K), -jnp.inf).at[jnp.arange(5)[:, None], out.beam_classes].set(
        out.beam_logprobs), jnp.arange(5), k)
    assert float(a) == float(b)
    del out_scores


def test_hits_at_k_counts_ties_against_the_target():
  scores = jnp.array([[1.0, 1.0, 0.0], [0.0, 2.0, 1.0]])
  assert float(R.hits_at_k(scores, jnp.array([0, 2]), 1)) == 0.0
  assert float(R.hits_at_k(scores, jnp.array([0, 2]), 2)) == 1.0
  with pytest.raises(ValueError, match="num_docs"):
    R.doc_id_labels(0)
