r"""Retrieval as generation (DSI, Tay et al., 2022): document ids are strings.

A search engine that maps a query to one of K documents is a K-way classifier
(DSI's *atomic ids*). Spell document k's id as a string (``doc_id_labels``:
``"0."``, ``"1."``, .., ``"17."``) and the K ids are the leaves of a
``jaxequiv.labels`` trie; a character decoder over ids (DSI's *string ids*)
and the atomic classifier are then exact conversions of one another:

* atomic -> decoder: ``labels.char_conditionals`` gives every trie node's
  next-character distribution (``atomic_to_decoder``);
* decoder -> atomic: teacher-forced, trie-constrained scores of the K ids
  (``decoder_to_atomic``) sum to 1 over the K documents.

Round trips return the input (to float32 rounding), and ranking documents by
either form gives the same Hits@k (``hits_at_k``); beam search with
``beam_size >= K`` is the exact ranking.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxequiv import labels


def doc_id_labels(num_docs: int) -> list[str]:
  """Decimal id strings ``"0."`` .. ``f"{K-1}."`` for K documents.

  Examples:
    >>> doc_id_labels(3)
    ['0.', '1.', '2.']
  """
  if not (isinstance(num_docs, int) and num_docs >= 1):
    raise ValueError(f"num_docs must be an int >= 1, got {num_docs!r}")
  return [f"{k}." for k in range(num_docs)]


def atomic_to_decoder(trie: labels.LabelTrie, doc_logits_BxK: jax.Array) -> jax.Array:
  """Per-node next-character log-probs ``[B, N, 64]`` of the id decoder equal to a K-way classifier."""
  return labels.char_conditionals(trie, doc_logits_BxK)


def path_logits(trie: labels.LabelTrie, node_logits_BxNx64: jax.Array) -> jax.Array:
  """Gathers a node-indexed decoder's logits along every id's path: ``[B, K, Lmax, 64]`` (teacher forcing)."""
  prefix_KxL = jnp.asarray(trie.label_nodes)[:, :-1]
  return node_logits_BxNx64[:, prefix_KxL]


def decoder_to_atomic(trie: labels.LabelTrie, node_logits_BxNx64: jax.Array) -> jax.Array:
  r"""K-way log-probs ``[B, K]`` of the trie-constrained id decoder: :math:`\sum_t \log q(c_{k,t} \mid c_{k,<t})`.

  Args:
    trie: the ids' trie.
    node_logits_BxNx64: the decoder's next-character logits at every trie node
      (for an autoregressive decoder, its logits after each node's prefix).
  """
  return labels.label_logprobs(trie, path_logits(trie, node_logits_BxNx64), constrained=True)


def hits_at_k(scores_BxK: jax.Array, targets_B: jax.Array, k: int) -> jax.Array:
  """Fraction of queries whose target is among the k highest scores (ties counted against the target)."""
  target_score = jnp.take_along_axis(scores_BxK, targets_B[:, None], axis=1)
  rank = jnp.sum(scores_BxK >= target_score, axis=1) - 1  # number of others at least as high
  return jnp.mean(rank < k)
