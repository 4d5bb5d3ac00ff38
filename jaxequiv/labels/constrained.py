r"""Trie-constrained decoding: a character model restricted to the K labels.

Masking each step to the trie and renormalising (``constrained_logprobs``) turns
a character model into a proper distribution over the K labels, which
``greedy_decode`` and ``beam_decode`` search with fixed shapes (``lax`` loops of
Lmax steps; the step function may carry state, e.g. a KV cache).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxequiv import alphabet
from jaxequiv.labels.trie import V, LabelTrie

_MIN = float(np.finfo(np.float32).min)  # Ranks valid -inf scores above invalid ones.

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

  Examples:
    >>> import jax, jaxequiv
    >>> from jaxequiv.labels import greedy_decode, label_trie
    >>> trie = label_trie(["cat.", "car.", "dog."])
    >>> cfg = jaxequiv.ModelConfig(num_layers=1, width=16, num_heads=2, seq_len=8)
    >>> params, apply_fn = jaxequiv.init(jax.random.key(0), cfg), jaxequiv.make_apply(cfg)
    >>> out = jax.jit(lambda p: greedy_decode(trie, lambda tok, t: apply_fn(p, tok)[:, t], 4, 8))(params)
    >>> out.classes.shape, bool((out.classes >= 0).all())   # 4 rows, each decoded to one of the 3 labels
    ((4,), True)
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
