r"""Class labels as strings: a trie over K labels and exact conversions both ways.

A *label* is a sentence over the 64-symbol alphabet (``jaxequiv.alphabet``): a
non-empty string whose only ``'.'`` is its last character, e.g. ``"maple tree."``.
The set of labels is therefore prefix-free and the K labels are the leaves of a
character trie (``LabelTrie``). Label k, of length L_k, is the path
``root = n_0 -> n_1 -> .. -> n_{L_k}`` (its leaf).

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
labels is the ``leakage``. Masking each step to the trie and renormalising
(``constrained_logprobs``) turns the model into a proper distribution over the K
labels, which ``greedy_decode`` and ``beam_decode`` search with fixed shapes
(``lax`` loops of Lmax steps; the step function may carry state, e.g. a KV cache).

Every function takes the ``LabelTrie`` as an ordinary argument. Its fields are
numpy arrays, so it works both closed over (constants) and passed to a jitted
function (traced int32 arrays; shapes stay static).

Example:
  >>> trie = label_trie(["cat.", "car.", "dog."])
  >>> print(trie_text(trie))
  >>> logp_BxKxL = path_char_logprobs(trie, jnp.log(jnp.array([[.5, .3, .2]])))
  >>> batch = label_model_inputs(trie, seq_len=8)   # teacher-forcing rows [K, T]
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxequiv import alphabet
from jaxequiv.batches import LMBatch, lm_batch

V = alphabet.NUM_CLASSES  # 64 characters.
_MIN = float(np.finfo(np.float32).min)  # Ranks valid -inf scores above invalid ones.


class LabelTrie(NamedTuple):
  """The character trie of K labels. Nodes are numbered in BFS order (root 0).

  Within a level, nodes are ordered by parent, then by character id, so
  ``parent[n] < n``. Class k is label k of the list given to ``label_trie``.
  All fields are int32 numpy arrays (a pytree ``jax.jit`` accepts).
  """

  parent: np.ndarray         # [N] parent node; -1 for the root.
  char: np.ndarray           # [N] character id on the edge into the node; -1 for the root.
  depth: np.ndarray          # [N] characters from the root.
  child: np.ndarray          # [N, 64] child node reached by each character; -1 if none.
  leaf_class: np.ndarray     # [N] class whose label ends at the node (a leaf); -1 otherwise.
  label_nodes: np.ndarray    # [K, Lmax+1] node after t characters of label k (t = 0..L_k); the leaf repeats after.
  label_chars: np.ndarray    # [K, Lmax] character ids of label k; 0 past its end.
  label_lengths: np.ndarray  # [K] L_k, characters in label k (including its '.').
  entry_node: np.ndarray     # [S] with entry_class: the pairs "label k passes through node n", sorted by
  entry_class: np.ndarray    # [S] (node, class); S = sum_k (L_k + 1). The sparse [N, K] descendant matrix.

  @property
  def num_nodes(self) -> int:
    return self.parent.shape[0]

  @property
  def num_classes(self) -> int:
    return self.label_lengths.shape[0]

  @property
  def max_len(self) -> int:
    """Lmax, the longest label's length: decoding takes at most this many steps."""
    return self.label_chars.shape[1]

  @property
  def label_mask(self) -> np.ndarray:
    """``[K, Lmax]`` bool: True at the real characters of each label."""
    return np.arange(self.max_len)[None, :] < np.asarray(self.label_lengths)[:, None]

  @property
  def labels(self) -> tuple[str, ...]:
    """The K label strings (concrete tries only)."""
    chars, lengths = np.asarray(self.label_chars), np.asarray(self.label_lengths)
    return tuple(alphabet.decode(chars[k, :lengths[k]]) for k in range(len(lengths)))


def _check_label(label, k: int) -> np.ndarray:
  where = f"label {k}"
  if not isinstance(label, str):
    raise TypeError(f"{where}: expected str, got {type(label).__name__} ({label!r})")
  if not label:
    raise ValueError(f"{where} is empty; a label is a sentence ending with its only '.', e.g. 'cat.'")
  ids = alphabet.encode(label, where=where)
  periods = np.flatnonzero(ids == alphabet.PERIOD)
  if periods.size == 0 or periods[-1] != len(label) - 1:
    raise ValueError(
        f"{where} does not end with '.': last character {label[-1]!r} at position {len(label) - 1}."
        f" Text: {label!r}. normalize_label() maps class names to labels.")
  if periods.size > 1:
    raise ValueError(
        f"{where} has a '.' at position {int(periods[0])} before its end; '.' ends a label, so it may"
        f" appear only last (this keeps the label set prefix-free). Text: {label!r}.")
  return ids


def label_trie(labels: Sequence[str]) -> LabelTrie:
  """Builds the character trie of K labels; class k is ``labels[k]``.

  Args:
    labels: K >= 1 distinct strings over the alphabet, each ending with its only
      ``'.'`` (use ``normalize_label`` for dataset class names).

  Returns:
    ``LabelTrie`` with N nodes (1 + the number of distinct non-empty prefixes).

  Raises:
    ValueError: naming the label index, and the character and its position, for
      empty labels, characters outside the alphabet, a missing final ``'.'`` or
      an early ``'.'``; naming both indices for duplicates.

  Example:
    >>> trie = label_trie(["cat.", "car.", "dog."])
    >>> trie.num_nodes, trie.num_classes, trie.max_len
    (11, 3, 4)
  """
  if isinstance(labels, str):
    raise TypeError("labels must be a sequence of str, not one str")
  labels = list(labels)
  if not labels:
    raise ValueError("labels is empty; need at least one label")
  ids = [_check_label(s, k) for k, s in enumerate(labels)]
  first = {}
  for k, s in enumerate(labels):
    if s in first:
      raise ValueError(f"labels {first[s]} and {k} are both {s!r}; labels must be distinct")
    first[s] = k
  num_k = len(labels)
  lengths = np.array([len(s) for s in labels], np.int32)
  lmax = int(lengths.max())
  label_chars = np.zeros((num_k, lmax), np.int32)
  for k, x in enumerate(ids):
    label_chars[k, :len(x)] = x
  label_nodes = np.zeros((num_k, lmax + 1), np.int32)
  parent, char, depth, leaf_class, edges = [-1], [-1], [0], [-1], []
  frontier = [(0, list(range(num_k)))]
  d = 0
  while frontier:
    nxt = []
    for node, ks in frontier:
      groups: dict[int, list[int]] = {}
      for k in ks:
        if lengths[k] > d:
          groups.setdefault(int(label_chars[k, d]), []).append(k)
        else:  # Label k ends here; prefix-freeness makes it the node's only label.
          leaf_class[node] = k
          label_nodes[k, d:] = node
      for c in sorted(groups):
        nid = len(parent)
        parent.append(node)
        char.append(c)
        depth.append(d + 1)
        leaf_class.append(-1)
        edges.append((node, c, nid))
        for k in groups[c]:
          label_nodes[k, d + 1] = nid
        nxt.append((nid, groups[c]))
    frontier = nxt
    d += 1
  child = np.full((len(parent), V), -1, np.int32)
  for node, c, nid in edges:
    child[node, c] = nid
  on_path = np.arange(lmax + 1)[None, :] <= lengths[:, None]
  entry_node = label_nodes[on_path]
  entry_class = np.broadcast_to(np.arange(num_k, dtype=np.int32)[:, None], on_path.shape)[on_path]
  order = np.lexsort((entry_class, entry_node))
  i32 = lambda x: np.asarray(x, np.int32)
  return LabelTrie(i32(parent), i32(char), i32(depth), child, i32(leaf_class), label_nodes, label_chars, lengths,
                   i32(entry_node[order]), i32(entry_class[order]))


def descendant_classes(trie: LabelTrie) -> np.ndarray:
  """``[N, K]`` bool: True where class k's label passes through node n (numpy, for inspection)."""
  out = np.zeros((trie.num_nodes, trie.num_classes), bool)
  out[np.asarray(trie.entry_node), np.asarray(trie.entry_class)] = True
  return out


def node_prefixes(trie: LabelTrie) -> list[str]:
  """The string spelled from the root to each node (``""`` for the root)."""
  out = [""]
  for n in range(1, trie.num_nodes):
    out.append(out[int(trie.parent[n])] + alphabet.ALPHABET[int(trie.char[n])])
  return out


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

  Example:
    >>> lp = char_conditionals(label_trie(["ab.", "b."]), jnp.log(jnp.array([[.25, .75]])))
    >>> float(jnp.exp(lp[0, 0, 1]))   # p('b' | root) = 0.75
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

  Example:
    >>> trie = label_trie(["cat.", "car.", "dog."])
    >>> lp = path_char_logprobs(trie, jnp.log(jnp.array([[.5, .3, .2]])))
    >>> jnp.exp(lp[0, 0])   # p(c)=.8, p(a|c)=1, p(t|ca)=.5/.8, p(.|cat)=1
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


def advance(trie: LabelTrie, node_B: jax.Array, char_B: jax.Array) -> jax.Array:
  """The node reached from ``node_B`` by ``char_B``; -1 where the character leaves the trie."""
  return jnp.asarray(trie.child)[node_B, char_B]


def constrained_logprobs(trie: LabelTrie, node_B: jax.Array, logits_Bx64: jax.Array) -> jax.Array:
  r"""Next-character log-probs restricted to the trie: masked, then renormalised.

  .. math:: \log q(c \mid n) = x_c - \log \sum_{c' : \mathrm{child}(n, c') \ne -1} e^{x_{c'}}

  for characters with a child at node n, -inf for the others (and everywhere
  at leaves). The product of q along a label's path, over all K labels, sums
  to 1: a proper distribution over labels, so decoding never leaves the set.

  Args:
    trie: the labels' trie.
    node_B: int current nodes ``[B]`` (0 = root, before any character).
    logits_Bx64: the model's next-character logits ``[B, 64]``.

  Returns:
    ``[B, 64]`` float32 log-probabilities.
  """
  allowed_Bx64 = jnp.asarray(trie.child)[node_B] >= 0
  x = jnp.where(allowed_Bx64, jnp.asarray(logits_Bx64, jnp.float32), -jnp.inf)
  x = jnp.where(jnp.any(allowed_Bx64, axis=-1, keepdims=True), x, 0.0)  # Leaves: no NaN.
  return jnp.where(allowed_Bx64, jax.nn.log_softmax(x, axis=-1), -jnp.inf)


StepFn = Callable[..., Any]  # step_fn(tokens_BxT, position) -> logits_Bx64, or with state (see greedy_decode).


class Decoded(NamedTuple):
  """Decoding result. W is the beam size (1 for greedy); beams are sorted best first."""

  classes: jax.Array        # [B] int32 decoded class (the best beam).
  logprobs: jax.Array       # [B] float32 its log-probability under the trie-constrained model.
  beam_classes: jax.Array   # [B, W] int32 class of each beam; -1 for beams that hold no label (W > K).
  beam_logprobs: jax.Array  # [B, W] float32 their log-probabilities; -inf for empty beams.


def _rank_key(score, valid):
  """Sort key: valid hypotheses (even of probability 0) above invalid ones; NaN lowest valid."""
  score = jnp.where(jnp.isnan(score), _MIN, jnp.maximum(score, _MIN))
  return jnp.where(valid, score, -jnp.inf)


def _init_tokens(rows: int, seq_len: int) -> jax.Array:
  return jnp.full((rows, seq_len), alphabet.PAD, jnp.int32).at[:, 0].set(alphabet.BOS)


def _stateful(step_fn: StepFn, init_state):
  """``(step(state, tokens, position) -> (logits, state), state)``; a stateless step_fn carries ``()``."""
  if init_state is None:
    return (lambda state, tokens, position: (step_fn(tokens, position), state)), ()
  return step_fn, init_state


def _check_decode_args(trie: LabelTrie, seq_len: int | None) -> int:
  seq_len = trie.max_len if seq_len is None else seq_len
  if seq_len < trie.max_len:
    raise ValueError(f"seq_len={seq_len} is shorter than the longest label ({trie.max_len} characters)")
  return seq_len


def _check_logits(logits, rows: int) -> None:
  if logits.shape != (rows, V):
    raise ValueError(f"step_fn returned logits of shape {logits.shape}; expected {(rows, V)}")


def greedy_decode(
    trie: LabelTrie, step_fn: StepFn, batch_size: int, seq_len: int | None = None, *, init_state: Any = None
) -> Decoded:
  """Greedy trie-constrained decoding: at each step, the most probable allowed character.

  Runs exactly Lmax steps in a ``lax.fori_loop`` with fixed shapes; a row that
  reached a leaf keeps it (``step_fn`` is still called on it; its logits are
  ignored). The result is always one of the K labels.

  Args:
    trie: the labels' trie.
    step_fn: ``step_fn(tokens_BxT, position) -> logits_Bx64``. ``tokens`` holds
      ``[BOS, c_0, .., c_{t-1}, PAD, ..]`` (int32, T = ``seq_len``) and
      ``position`` = t (a traced int32 scalar) is the slot of the last token
      seen, ``tokens[:, t]``; return the next-character logits there. For a
      causal model: ``lambda tok, t: apply_fn(params, tok)[:, t]`` (recomputes
      the prefix each step: O(Lmax^2), fine for short labels). Row b is input b.
      With ``init_state``, the step carries state instead:
      ``step_fn(state, tokens_BxT, position) -> (logits_Bx64, state)``, e.g. a
      KV cache: ``lambda c, tok, t: decoding.decode_step(params, c, tok[:, t], t, cfg)``.
    batch_size: B.
    seq_len: T >= Lmax (default Lmax) token slots passed to ``step_fn``.
    init_state: None (stateless ``step_fn``), or the initial state: a pytree
      whose leaves have leading dimension B (rows).

  Returns:
    ``Decoded`` with W = 1.

  Example:
    >>> out = jax.jit(lambda p: greedy_decode(trie, lambda tok, t: apply_fn(p, tok)[:, t], 4))(params)
  """
  seq_len = _check_decode_args(trie, seq_len)
  step, state0 = _stateful(step_fn, init_state)
  child = jnp.asarray(trie.child)
  slots_T = jnp.arange(seq_len)

  def body(t, carry):
    tokens, node, score, state = carry
    logits, state = step(state, tokens, t)
    _check_logits(logits, batch_size)
    lp_Bx64 = constrained_logprobs(trie, node, logits)
    allowed = child[node] >= 0
    c = jnp.argmax(_rank_key(lp_Bx64, allowed), axis=-1).astype(jnp.int32)
    live = jnp.any(allowed, axis=-1)  # Not yet at a leaf.
    score = jnp.where(live, score + jnp.take_along_axis(lp_Bx64, c[:, None], axis=-1)[:, 0], score)
    write = live[:, None] & (slots_T[None, :] == t + 1)
    tokens = jnp.where(write, c[:, None], tokens)
    node = jnp.where(live, child[node, c], node)
    return tokens, node, score, state

  init = (_init_tokens(batch_size, seq_len), jnp.zeros(batch_size, jnp.int32), jnp.zeros(batch_size, jnp.float32),
          state0)
  _, node, score, _ = jax.lax.fori_loop(0, trie.max_len, body, init)
  classes = jnp.asarray(trie.leaf_class)[node]
  return Decoded(classes, score, classes[:, None], score[:, None])


def beam_decode(
    trie: LabelTrie, step_fn: StepFn, batch_size: int, beam_size: int, seq_len: int | None = None, *,
    init_state: Any = None
) -> Decoded:
  """Beam search over the trie-constrained distribution; exact when ``beam_size >= K``.

  Each step extends every live beam by every allowed character (finished beams,
  at a leaf, carry over unchanged) and keeps the ``beam_size`` best by summed
  log-probability. Distinct beams hold disjoint sets of labels, so at most K
  candidates are ever valid: with ``beam_size >= K`` nothing is pruned and the
  beams end holding every label with its exact constrained log-probability.

  Args:
    trie: the labels' trie.
    step_fn: as in ``greedy_decode``, called on ``B * beam_size`` rows; row
      ``r`` belongs to input ``r // beam_size`` (so per-input features repeat
      with ``jnp.repeat(features, beam_size, axis=0)``).
    batch_size: B.
    beam_size: W >= 1 beams per input.
    seq_len: T >= Lmax (default Lmax).
    init_state: as in ``greedy_decode``, with leading dimension ``B * W``; after
      each step its rows are reordered to follow the surviving beams.

  Returns:
    ``Decoded``; ``beam_classes``/``beam_logprobs`` ``[B, W]`` sorted best first.
  """
  seq_len = _check_decode_args(trie, seq_len)
  if beam_size < 1:
    raise ValueError(f"beam_size must be >= 1, got {beam_size}")
  step, state0 = _stateful(step_fn, init_state)
  b, w = batch_size, beam_size
  child = jnp.asarray(trie.child)
  slots_T = jnp.arange(seq_len)
  first_64 = jnp.arange(V) == 0

  def body(t, carry):
    tokens_BxWxT, node_BxW, score_BxW, valid_BxW, state = carry
    logits, state = step(state, tokens_BxWxT.reshape(b * w, seq_len), t)
    _check_logits(logits, b * w)
    lp_BxWx64 = constrained_logprobs(trie, node_BxW.reshape(-1), logits).reshape(b, w, V)
    allowed_BxWx64 = child[node_BxW] >= 0
    done_BxW = ~jnp.any(allowed_BxWx64, axis=-1)
    extend = valid_BxW[..., None] & allowed_BxWx64
    stay = (valid_BxW & done_BxW)[..., None] & first_64  # A finished beam: one candidate, slot 0.
    cand_valid = (extend | stay).reshape(b, w * V)
    cand_score = jnp.where(extend, score_BxW[..., None] + lp_BxWx64,
                           jnp.where(stay, score_BxW[..., None], -jnp.inf)).reshape(b, w * V)
    _, idx_BxW = jax.lax.top_k(_rank_key(cand_score, cand_valid), w)
    parent_BxW, c_BxW = idx_BxW // V, (idx_BxW % V).astype(jnp.int32)
    valid = jnp.take_along_axis(cand_valid, idx_BxW, axis=-1)
    score = jnp.take_along_axis(cand_score, idx_BxW, axis=-1)
    pnode = jnp.take_along_axis(node_BxW, parent_BxW, axis=-1)
    pdone = jnp.take_along_axis(done_BxW, parent_BxW, axis=-1)
    grow = valid & ~pdone
    node = jnp.where(grow, child[pnode, c_BxW], jnp.where(valid, pnode, 0))
    tokens = jnp.take_along_axis(tokens_BxWxT, parent_BxW[..., None], axis=1)
    tokens = jnp.where(grow[..., None] & (slots_T == t + 1), c_BxW[..., None], tokens)
    rows = (parent_BxW + w * jnp.arange(b)[:, None]).reshape(-1)  # Parent's row in [B * W].
    state = jax.tree.map(lambda x: x[rows], state)
    return tokens, node, score, valid, state

  init = (
      _init_tokens(b * w, seq_len).reshape(b, w, seq_len),
      jnp.zeros((b, w), jnp.int32),
      jnp.where(jnp.arange(w) == 0, 0.0, -jnp.inf) * jnp.ones((b, 1), jnp.float32),
      jnp.broadcast_to(jnp.arange(w) == 0, (b, w)),
      state0,
  )
  _, node, score, valid, _ = jax.lax.fori_loop(0, trie.max_len, body, init)
  classes = jnp.where(valid, jnp.asarray(trie.leaf_class)[node], -1)
  score = jnp.where(valid, score, -jnp.inf)
  return Decoded(classes[:, 0], score[:, 0], classes, score)


# ---------------------------------------------------------------- class names

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

  >>> [normalize_label(s) for s in ["maple_tree", "aquarium_fish", "n01440764 tench"]]
  ['maple tree.', 'aquarium fish.', 'tench.']

  Raises:
    ValueError: if no letter or digit is left, naming the input.
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


# ---------------------------------------------------------------- drawing


def _compressed(trie: LabelTrie):
  """Radix view: (node, edge string, children) with chains of single-child nodes merged."""
  child = np.asarray(trie.child)
  kids = [list(child[n][child[n] >= 0]) for n in range(trie.num_nodes)]

  def walk(n: int, edge: str):
    while len(kids[n]) == 1:
      n = int(kids[n][0])
      edge += alphabet.ALPHABET[int(trie.char[n])]
    return n, edge, [walk(int(m), alphabet.ALPHABET[int(trie.char[m])]) for m in kids[n]]

  return (0, "", [walk(int(m), alphabet.ALPHABET[int(trie.char[m])]) for m in kids[0]])


def trie_text(trie: LabelTrie) -> str:
  """An ASCII drawing of the trie, with single-child chains merged; leaves show ``-> class``.

  >>> print(trie_text(label_trie(["cat.", "car.", "dog."])))
  (root)
  +-- 'ca'
  |   +-- 'r.'  -> 1
  |   +-- 't.'  -> 0
  +-- 'dog.'  -> 2
  """
  lines = ["(root)"]

  def draw(item, indent: str):
    for i, (n, edge, kids) in enumerate(item[2]):
      last = i == len(item[2]) - 1
      leaf = f"  -> {int(trie.leaf_class[n])}" if trie.leaf_class[n] >= 0 else ""
      lines.append(f"{indent}+-- {edge!r}{leaf}")
      draw((n, edge, kids), indent + ("    " if last else "|   "))

  draw(_compressed(trie), "")
  return "\n".join(lines)


def trie_figure(trie: LabelTrie, *, figsize: tuple[float, float] | None = None, title: str | None = None):
  """Draws the trie left to right (x = characters from the root) as a matplotlib Figure.

  Chains of single-child nodes are drawn as one edge labelled with their
  characters; each leaf is annotated with its class index. Readable up to a
  hundred or so labels. Uses ``matplotlib.figure.Figure`` (no pyplot state):
  save it with ``fig.savefig``, or in a notebook run ``%matplotlib inline`` once
  and then ``display(fig)`` (checked with nbclient: without that magic a bare
  Figure shows only as text, even after ``import matplotlib.pyplot``).
  """
  from matplotlib.figure import Figure  # pylint: disable=import-outside-toplevel

  root = _compressed(trie)
  pos: dict[int, tuple[float, float]] = {}
  edges = []
  rank = [0]

  def place(item) -> float:
    n, edge, kids = item
    if not kids:
      y = -float(rank[0])
      rank[0] += 1
    else:
      y = float(np.mean([place(k) for k in kids]))
    pos[n] = (float(trie.depth[n]), y)
    for k in kids:
      edges.append((n, k[0], k[1]))
    return y

  place(root)
  k = trie.num_classes
  if figsize is None:
    figsize = (min(2.0 + 0.35 * trie.max_len, 30.0), min(1.0 + 0.32 * k, 60.0))
  fig = Figure(figsize=figsize)
  ax = fig.add_subplot()
  for a, bnode, text in edges:
    (x0, y0), (x1, y1) = pos[a], pos[bnode]
    ax.plot([x0, x0 + 0.3, x1], [y0, y1, y1], color="0.6", lw=1, zorder=1)
    ax.text((x0 + 0.3 + x1) / 2, y1 + 0.08, text, ha="center", va="bottom", family="monospace", fontsize=9)
  xs, ys = zip(*pos.values())
  ax.scatter(xs, ys, s=12, color="C0", zorder=2)
  for n, (x, y) in pos.items():
    if trie.leaf_class[n] >= 0:
      ax.text(x + 0.2, y, f"{int(trie.leaf_class[n])}", va="center", fontsize=8, color="C3")
  ax.set_xlabel("characters from the root")
  ax.set_yticks([])
  for side in ("left", "right", "top"):
    ax.spines[side].set_visible(False)
  ax.set_xlim(-0.5, trie.max_len + 1.0)
  ax.set_ylim(-k + 0.5, 0.8)
  ax.set_title(title or f"label trie: {k} labels, {trie.num_nodes} nodes")
  fig.tight_layout()
  return fig
