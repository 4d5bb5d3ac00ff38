r"""String heads that are the library's transformer: ``jaxequiv.model.Transformer`` conditioned by a prefix embedding.

A string head models :math:`p(c_1 .. c_L \mid h) = \prod_t p(c_t \mid c_{<t}, h)`
over a label set's strings (a ``jaxequiv.labels`` trie), given features
:math:`h \in \mathbb R^F` from any encoder. The decoder is the core causal
``Transformer`` (the LM's module, unchanged); the input enters as a **prefix
embedding**: :math:`h W + b` is reshaped to P vectors of width D and added to
the token embeddings of the first P positions, through the model's existing
``perturbations`` input (``Transformer`` passes its embeddings through
``self.perturb("embeddings", ...)``). Row k of the teacher-forcing batch is
``labels.label_model_inputs``'s row, with P - 1 ``PAD`` slots after its ``BOS``:

    ``[BOS, PAD x (P-1), c_1, .., c_{L-1}, PAD ..]`` -> targets ``c_1 .. c_L`` at positions P-1 .. P+L-2,

so position P-1+t predicts :math:`c_{t+1}` after reading the prefix and
:math:`c_1..c_t`. Training is the core ``losses.lm_nll`` on these rows
(``nll``). Readouts need the next-character logits after every trie node
(``node_logits``): the K label rows are run once per input and node n reads
the position after its prefix in one label that passes through it, so a
trie-constrained score (``retrieval.decoder_to_atomic``), E[y] by recursion
(``regression.expected_value_trie``) and greedy decoding all work from them.

Examples:
  >>> import jax, numpy as np
  >>> from jaxequiv import labels
  >>> from jaxequiv.taxonomy import decoder
  >>> head = decoder.string_head(labels.label_trie(["ab.", "b."]), width=16, num_layers=1, num_heads=2, prefix_len=2)
  >>> head.rows.inputs.tolist()   # BOS, one more prefix slot, then the label's characters
  [[64, 65, 0, 1], [64, 65, 1, 65]]
  >>> p = decoder.init(jax.random.key(0), 3, head)
  >>> decoder.node_logits(p, np.zeros((2, 3), np.float32), head).shape   # [B, N, 64]
  (2, 6, 64)
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxequiv import alphabet, labels, losses, model
from jaxequiv.batches import LMBatch
from jaxequiv.configs import ModelConfig

Params = Any


@dataclasses.dataclass(frozen=True)
class StringHead:
  """The static part of a string head: its transformer, its prefix length, and its label set's rows.

  Attributes:
    config: the core transformer's ``ModelConfig`` (``seq_len`` = P - 1 + Lmax).
    prefix_len: P, positions that carry the input's embedding (position 0 is ``BOS``).
    rows: teacher-forcing ``LMBatch`` ``[K, P - 1 + Lmax]`` of the K labels, in class order.
    node_label, node_pos: ``[N]``: inner node n is read at ``rows`` row ``node_label[n]``, position
      ``node_pos[n]``; -1 and 0 at leaves (a complete label has no next character).
  """

  config: ModelConfig
  prefix_len: int
  rows: LMBatch
  node_label: np.ndarray
  node_pos: np.ndarray

  def describe(self) -> str:
    """One line naming the architecture, for results records."""
    c = self.config
    return (f"the core causal transformer (jaxequiv.model.Transformer: {c.num_layers} layers, width {c.width},"
            f" {c.num_heads} heads, {c.activation}) reading a {self.prefix_len}-position prefix embedding of the"
            " features, trained with lm_nll")


def string_head(trie: labels.LabelTrie, width: int = 32, num_layers: int = 2, num_heads: int = 4,
                prefix_len: int = 1, activation: str = "gelu") -> StringHead:
  """A ``StringHead`` over ``trie``'s labels: teacher-forcing rows and where each node's logits are read."""
  if not (isinstance(prefix_len, int) and prefix_len >= 1):
    raise ValueError(f"prefix_len must be an int >= 1, got {prefix_len!r}")
  base = labels.label_model_inputs(trie)
  k, extra = base.inputs.shape[0], prefix_len - 1
  pad = lambda a, v: np.concatenate([a[:, :1], np.full((k, extra), v, a.dtype), a[:, 1:]], 1)  # noqa: E731
  rows = LMBatch(pad(base.inputs, alphabet.PAD),
                 np.concatenate([np.zeros((k, extra), base.targets.dtype), base.targets], 1),
                 np.concatenate([np.zeros((k, extra), bool), base.mask], 1))
  node_label = np.full(trie.child.shape[0], -1, np.int32)
  node_pos = np.zeros(trie.child.shape[0], np.int32)
  for c in range(k - 1, -1, -1):   # the first label through each inner node
    t = np.arange(trie.label_lengths[c])
    node_label[trie.label_nodes[c, t]] = c
    node_pos[trie.label_nodes[c, t]] = extra + t
  cfg = ModelConfig(num_layers=num_layers, width=width, num_heads=num_heads, seq_len=rows.inputs.shape[1],
                    activation=activation)
  return StringHead(cfg, prefix_len, rows, node_label, node_pos)


def init(key: jax.Array, feat: int, head: StringHead) -> Params:
  """``{"prefix": {"w" [F, P*D], "b"}, "transformer": model.init(...)}``; the projection is LeCun-normal."""
  k1, k2 = jax.random.split(key)
  d = head.prefix_len * head.config.width
  return {"prefix": {"w": jax.random.normal(k1, (feat, d)) / np.sqrt(feat), "b": jnp.zeros((d,))},
          "transformer": model.init(k2, head.config)}


def logits(params: Params, h_BxF: jax.Array, tokens_BxT: jax.Array, head: StringHead) -> jax.Array:
  """Next-character logits ``[B, T, 64]`` of rows ``tokens_BxT``, row b conditioned on ``h_BxF[b]``."""
  b, t = tokens_BxT.shape
  prefix_BxPxD = (h_BxF @ params["prefix"]["w"] + params["prefix"]["b"]).reshape(b, head.prefix_len, -1)
  embed_BxTxD = jnp.pad(prefix_BxPxD, ((0, 0), (0, t - head.prefix_len), (0, 0)))
  return model.Transformer(head.config).apply(
      {"params": params["transformer"], "perturbations": {"embeddings": embed_BxTxD}}, tokens_BxT)


def nll(params: Params, h_BxF: jax.Array, classes_B: jax.Array, head: StringHead) -> jax.Array:
  """Teacher-forced ``losses.lm_nll`` (nats per character) of each input's label string."""
  batch = LMBatch(*(jnp.asarray(a)[classes_B] for a in head.rows))
  return losses.lm_nll(params, batch, lambda p, tokens: logits(p, h_BxF, tokens, head))


def node_logits(params: Params, h_BxF: jax.Array, head: StringHead, batch_size: int = 32) -> jax.Array:
  """Next-character logits after every trie node's prefix, ``[B, N, 64]`` (all K label rows per input); 0 at leaves.

  Inputs are processed ``batch_size`` at a time (``jax.lax.map``), so memory is
  ``batch_size * K`` rows whatever B is.
  """
  tokens_KxT = jnp.asarray(head.rows.inputs)

  def one(h_F):
    h_KxF = jnp.broadcast_to(h_F, (tokens_KxT.shape[0], h_F.shape[0]))
    return logits(params, h_KxF, tokens_KxT, head)[head.node_label, head.node_pos]

  inner_Nx1 = jnp.asarray(head.node_label >= 0)[:, None]
  return jnp.where(inner_Nx1, jax.lax.map(one, h_BxF, batch_size=batch_size), 0.0)

