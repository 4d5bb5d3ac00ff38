r"""Exact conversions between a K-way distribution and next-character distributions on the label trie.

**K-way -> characters** (``char_conditionals``, ``path_char_logprobs``). A K-way
distribution p(k) defines a distribution over next characters at every trie
node n: with the node's mass :math:`M(n) = \sum_{k \text{ below } n} p(k)`,

.. math:: p(c \mid n) = M(\mathrm{child}(n, c)) / M(n),

and the product of the conditionals along label k's path telescopes to
:math:`M(\mathrm{leaf}_k) / M(\mathrm{root}) = p(k)`. So the class cross-entropy
is exactly the sum of the per-character cross-entropies. Computed in log space
with one segment-logsumexp over the K paths.

**Characters -> K-way** (``label_logprobs``, ``leakage``). A character model
scores label k by teacher forcing: :math:`\log p(k) = \sum_t \log p(c_{k,t}
\mid c_{k,<t})` (rank classification, as in T5). Mass on strings that are not
labels is the ``leakage``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxequiv.batches import LMBatch, lm_batch
from jaxequiv.labels.trie import V, LabelTrie


def _label_mask(trie: LabelTrie) -> jax.Array:
  """``trie.label_mask`` that also works on traced tries."""
  return jnp.arange(trie.max_len)[None, :] < jnp.asarray(trie.label_lengths)[:, None]


def _check_class_logits(trie: LabelTrie, x) -> jax.Array:
  x = jnp.asarray(x)
  if x.ndim != 2 or x.shape[1] != trie.num_classes:
    raise ValueError(f"class logits must have shape [B, K={trie.num_classes}], got {x.shape}")
  return x.astype(jnp.float32)


def node_log_mass(trie: LabelTrie, class_logits_BxK: jax.Array) -> jax.Array:
  r"""Log of each node's mass: :math:`\log \sum_{k \text{ below } n} e^{x_k}`, ``[B, N]``.

  One segment-logsumexp over the (node, class) entries, with a per-node maximum, so
  a node whose classes are all far below the batch maximum still gets a finite
  value. For log-probabilities, the root's mass is 0 and leaf_k's is ``x_k``.
  """
  x_BxK = _check_class_logits(trie, class_logits_BxK)
  n = trie.num_nodes
  seg_S = jnp.asarray(trie.entry_node)
  segment = lambda f, v: f(v, seg_S, num_segments=n, indices_are_sorted=True)  # noqa: E731
  vals_SxB = x_BxK.T[jnp.asarray(trie.entry_class)]
  m_NxB = segment(jax.ops.segment_max, vals_SxB)
  m_NxB = jax.lax.stop_gradient(jnp.where(jnp.isfinite(m_NxB), m_NxB, 0.0))
  s_NxB = segment(jax.ops.segment_sum, jnp.exp(vals_SxB - m_NxB[seg_S]))
  return (jnp.log(s_NxB) + m_NxB).T


def char_conditionals(trie: LabelTrie, class_logits_BxK: jax.Array) -> jax.Array:
  r"""Each node's distribution over next characters induced by a K-way distribution.

  .. math:: \log p(c \mid n) = \log M(\mathrm{child}(n, c)) - \log M(n),
     \quad M(n) = \sum_{k \text{ below } n} p(k)

  Args:
    trie: the labels' trie.
    class_logits_BxK: K-way log-probabilities, or unnormalised logits (the
      conditionals do not change under a per-row shift).

  Returns:
    ``node_logprobs_BxNx64`` float32: -inf for characters that leave the trie,
    and at nodes of zero mass; each row over characters sums to 1 otherwise.
    Leaves have no children: all -inf. Memory is ``B * N * 64`` floats (1000
    ImageNet-size labels: N ~ 13k nodes); ``path_char_logprobs`` gives just the
    ``[B, K, Lmax]`` entries a loss needs.

  Examples:
    >>> import jax.numpy as jnp
    >>> from jaxequiv.labels import char_conditionals, label_trie
    >>> lp = char_conditionals(label_trie(["ab.", "b."]), jnp.log(jnp.array([[.25, .75]])))
    >>> round(float(jnp.exp(lp[0, 0, 1])), 6)   # p('b' | root) = 0.75
    0.75
  """
  lm_BxN = node_log_mass(trie, class_logits_BxK)
  child_Nx64 = jnp.asarray(trie.child)
  has_Nx64 = child_Nx64 >= 0
  out_BxNx64 = lm_BxN[:, jnp.where(has_Nx64, child_Nx64, 0)] - lm_BxN[:, :, None]
  ok_BxNx64 = has_Nx64[None] & jnp.isfinite(lm_BxN)[:, :, None]
  return jnp.where(ok_BxNx64, out_BxNx64, -jnp.inf)


def path_char_logprobs(trie: LabelTrie, class_logits_BxK: jax.Array) -> jax.Array:
  r"""Per-character log conditionals along each label's path, ``[B, K, Lmax]``.

  Entry ``[b, k, t]`` is :math:`\log p(c_{k,t} \mid c_{k,<t})` under the
  K-way distribution ``softmax(class_logits[b])`` (see ``char_conditionals``);
  0 past label k's end. Summing over t gives ``log_softmax(class_logits)``
  exactly in real arithmetic (the sum telescopes), so the class cross-entropy
  ``-log p(y)`` equals the summed per-character cross-entropies of label y.
  Rows of ``-inf`` logits give NaN; pass finite logits.

  Examples:
    >>> import jax.numpy as jnp, numpy as np
    >>> from jaxequiv.labels import label_trie, path_char_logprobs
    >>> trie = label_trie(["cat.", "car.", "dog."])
    >>> lp = path_char_logprobs(trie, jnp.log(jnp.array([[.5, .3, .2]])))
    >>> np.round(np.exp(lp[0, 0]), 4)   # p(c)=.8, p(a|c)=1, p(t|ca)=.5/.8, p(.|cat)=1
    array([0.8  , 1.   , 0.625, 1.   ], dtype=float32)
  """
  lm_BxN = node_log_mass(trie, class_logits_BxK)
  nodes_KxL1 = jnp.asarray(trie.label_nodes)
  step_BxKxL = lm_BxN[:, nodes_KxL1[:, 1:]] - lm_BxN[:, nodes_KxL1[:, :-1]]
  return jnp.where(_label_mask(trie)[None], step_BxKxL, 0.0)


def label_model_inputs(trie: LabelTrie, seq_len: int | None = None) -> LMBatch:
  """Teacher-forcing rows for all K labels, in class order: ``LMBatch`` of ``[K, T]``.

  Row k is ``inputs = [BOS, c_0, .., c_{L-2}, PAD, ..]``, ``targets = [c_0, ..,
  c_{L-1}, 0, ..]``, ``mask`` True at the L real predictions (as
  ``jaxequiv.lm_batch``). Run the model once on ``inputs`` (for B inputs, tile
  to ``[B*K, T]``) and pass the logits to ``label_logprobs``.

  Args:
    trie: the labels' trie.
    seq_len: T >= Lmax; defaults to Lmax.
  """
  seq_len = trie.max_len if seq_len is None else seq_len
  if seq_len < trie.max_len:
    k = int(np.argmax(trie.label_lengths))
    raise ValueError(
        f"seq_len={seq_len} is shorter than label {k} ({trie.labels[k]!r}, {trie.max_len} characters)")
  return lm_batch(trie.labels, seq_len)


def label_logprobs(trie: LabelTrie, char_logits_BxKxTx64: jax.Array, constrained: bool = False) -> jax.Array:
  r"""Rank classification: each label's log-probability under a character model.

  .. math:: \log p(k) = \sum_{t < L_k} \log p(c_{k,t} \mid c_{k,<t})

  Args:
    trie: the labels' trie.
    char_logits_BxKxTx64: the model's next-character logits (or log-probs; a
      log-softmax is applied) on the teacher-forcing rows of
      ``label_model_inputs(trie, T)``, for B inputs: ``[B, K, T, 64]``, T >= Lmax.
    constrained: if True, each step is first restricted to characters that stay
      in the trie and renormalised (``constrained_logprobs``): the result is then
      the distribution ``greedy_decode``/``beam_decode`` search, and it sums to 1
      over the K labels.

  Returns:
    ``[B, K]`` float32 log-probabilities. Unconstrained, ``leakage`` gives the
    mass on strings that are not labels.
  """
  x = jnp.asarray(char_logits_BxKxTx64)
  if x.ndim != 4 or x.shape[1] != trie.num_classes or x.shape[2] < trie.max_len or x.shape[3] != V:
    raise ValueError(
        f"char logits must have shape [B, K={trie.num_classes}, T>={trie.max_len}, {V}], got {x.shape}")
  x = x[:, :, :trie.max_len].astype(jnp.float32)
  mask_KxL = _label_mask(trie)
  if constrained:
    prefix_KxL = jnp.asarray(trie.label_nodes)[:, :-1]
    allowed_KxLx64 = (jnp.asarray(trie.child)[prefix_KxL] >= 0) | ~mask_KxL[:, :, None]  # No NaN past the end.
    x = jnp.where(allowed_KxLx64[None], x, -jnp.inf)
  lp = jax.nn.log_softmax(x, axis=-1)
  tok_BxKxL = jnp.take_along_axis(lp, jnp.asarray(trie.label_chars)[None, :, :, None], axis=-1)[..., 0]
  return jnp.sum(jnp.where(mask_KxL[None], tok_BxKxL, 0.0), axis=-1)


def leakage(label_logprobs_BxK: jax.Array) -> jax.Array:
  r"""Mass a character model puts on strings that are not labels: :math:`1 - \sum_k p(k)`, ``[B]``.

  Computed as ``-expm1(logsumexp(label_logprobs))`` (accurate near 0).
  """
  return -jnp.expm1(jax.nn.logsumexp(jnp.asarray(label_logprobs_BxK, jnp.float32), axis=-1))
