"""A small causal transformer over characters, built with Flax.

``init(key, config)`` returns one parameter pytree and ``apply(params, tokens,
config)`` maps tokens ``[R, T]`` (class ids, ``BOS`` and ``PAD``) to logits
``[R, T, 64]``. Position t sees tokens 0..t only, and only those of its own
segment: every ``BOS`` starts a segment, so a packed row holds several
sentences that never see each other, each with positions from 0
(``segments``). ``make_apply(config)`` gives the two-argument
``apply_fn(params, tokens)`` the losses take.

The same ``Transformer`` with ``decode=True`` computes one position at a time
from a KV cache (flax's ``cache`` collection; ``jaxequiv.lm.decoding`` wraps it
for sampling). Attention implementations live in one registry,
``ATTENTION_IMPLS``, chosen by ``ModelConfig.attention`` for both paths.
``ModelConfig`` is defined in ``jaxequiv.configs`` (no JAX) and re-exported here.
"""

from __future__ import annotations

from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxequiv import alphabet
from jaxequiv.configs import ATTENTION, ModelConfig  # defined there, importable without JAX
from jaxequiv.types import ApplyFn, Params

ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "relu": jax.nn.relu,
    "tanh": jnp.tanh,
    "gelu": jax.nn.gelu,
}
DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


def segments(tokens_BxT: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Segment ids and per-segment positions, derived from the tokens alone.

  Every ``BOS`` starts a new segment (a packed row holds several sentences,
  each beginning with ``BOS``): ``segment_ids`` is the running count of BOS
  tokens and ``positions`` the distance to the last BOS at or before t (t
  itself before the first BOS). A row with one BOS at 0 gets positions 0..T-1.

  Examples:
    >>> import jax.numpy as jnp
    >>> from jaxequiv import model
    >>> seg, pos = model.segments(jnp.array([[64, 7, 64, 3, 5, 65]]))
    >>> print(seg.tolist(), pos.tolist())
    [[1, 1, 2, 2, 2, 2]] [[0, 1, 0, 1, 2, 3]]
  """
  is_bos = tokens_BxT == alphabet.BOS
  t_T = jnp.arange(tokens_BxT.shape[1], dtype=jnp.int32)
  segment_ids = jnp.cumsum(is_bos.astype(jnp.int32), axis=1)
  starts = jax.lax.cummax(jnp.where(is_bos, t_T, 0), axis=1)
  return segment_ids, t_T - starts


def attention_mask(t: int, segment_ids_BxT: jax.Array | None = None) -> jax.Array:
  """Boolean ``[B or 1, 1, T, T]``: query t sees keys s <= t (of its own segment, given ``segment_ids_BxT``)."""
  allowed = (jnp.arange(t)[:, None] >= jnp.arange(t)[None, :])[None, None]
  if segment_ids_BxT is not None:
    allowed = allowed & (segment_ids_BxT[:, None, :, None] == segment_ids_BxT[:, None, None, :])
  return allowed


def cache_mask(seq_len: int, position, segment_start_B: jax.Array | None = None) -> jax.Array:
  """Boolean ``[B or 1, 1, 1, S]`` for one query at ``position`` over a cache of S = ``seq_len`` slots.

  Slot s is seen iff ``segment_start_B[b] <= s <= position``: the row of
  ``attention_mask`` at ``position`` when ``segment_start_B`` is where the
  query's segment began (its last ``BOS``; 0 if none). Slots after
  ``position`` (not yet written) are never seen.
  """
  s_S = jnp.arange(seq_len)
  allowed_BxS = (s_S <= position)[None, :]
  if segment_start_B is not None:
    allowed_BxS = allowed_BxS & (s_S[None, :] >= segment_start_B[:, None])
  return allowed_BxS[:, None, None, :]


AttentionFn = Callable[[jax.Array, jax.Array, jax.Array, jax.Array], jax.Array]


def einsum_attention(q_BxTxHxK, k_BxSxHxK, v_BxSxHxK, mask_Bx1xTxS):
  r"""Masked softmax attention as two einsums, the softmax in float32.

  .. math:: \mathrm{att}_t = \sum_s \mathrm{softmax}_s\big(q_t \cdot k_s / \sqrt{K}
     \text{ if } \mathrm{mask}_{ts} \text{ else } -10^{30}\big)\, v_s

  Scores are computed in the inputs' dtype, then float32 for the softmax; the
  probabilities are cast back to the values' dtype. A masked key gets weight
  exactly 0 (``exp(-1e30 - max)`` underflows), so the query needs one key allowed.
  """
  scale = q_BxTxHxK.shape[-1] ** -0.5
  scores_BxHxTxS = jnp.einsum("bthk,bshk->bhts", q_BxTxHxK * scale, k_BxSxHxK)
  scores_BxHxTxS = jnp.where(mask_Bx1xTxS, scores_BxHxTxS.astype(jnp.float32), -1e30)
  probs_BxHxTxS = jax.nn.softmax(scores_BxHxTxS, axis=-1).astype(v_BxSxHxK.dtype)
  return jnp.einsum("bhts,bshk->bthk", probs_BxHxTxS, v_BxSxHxK)


def _dot_product_attention(implementation: str) -> AttentionFn:
  def attend(q_BxTxHxK, k_BxSxHxK, v_BxSxHxK, mask_Bx1xTxS):
    return jax.nn.dot_product_attention(q_BxTxHxK, k_BxSxHxK, v_BxSxHxK, mask=mask_Bx1xTxS,
                                        implementation=implementation)

  return attend


# The one registry of attention implementations, keyed by ``ModelConfig.attention``. Each maps
# ``(q [B, T, H, K], k [B, S, H, K], v [B, S, H, K], mask bool broadcastable to [B, 1, T, S])``
# to ``[B, T, H, K]``; the training path and the KV-cached path both call the configured one.
ATTENTION_IMPLS: dict[str, AttentionFn] = {
    "einsum": einsum_attention,
    "xla": _dot_product_attention("xla"),
    "cudnn": _dot_product_attention("cudnn"),
}


def resolve_attention(name: str, backend: str | None = None) -> str:
  """The implementation ``name`` stands for: itself, or for ``"auto"`` a fixed rule on the backend.

  ``"auto"`` is ``"einsum"`` on the CPU backend and ``"xla"`` on any other
  (``jax.default_backend()`` unless ``backend`` is given). This is a rule, not a
  measurement: no speed table backs it. ``"cudnn"`` (GPU only; half-precision
  or fp8 inputs, so not this model's float32) is never picked automatically.

  Examples:
    >>> from jaxequiv import model
    >>> model.resolve_attention("auto", "cpu"), model.resolve_attention("auto", "gpu"), model.resolve_attention("xla")
    ('einsum', 'xla', 'xla')
  """
  if name != "auto":
    return name
  return "einsum" if (backend or jax.default_backend()) == "cpu" else "xla"


def split_qkv(qkv_BxTx3xHxK: jax.Array, qv_bias_2xHxK: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
  """Queries, keys, values from the bias-free ``qkv`` projection plus the query and value biases.

  There is no key bias: softmax ignores a shift shared by all keys, so its true
  gradient is exactly zero (a float gradient of rounding noise, nothing else).
  """
  bias = qv_bias_2xHxK.astype(qkv_BxTx3xHxK.dtype)
  return qkv_BxTx3xHxK[:, :, 0] + bias[0], qkv_BxTx3xHxK[:, :, 1], qkv_BxTx3xHxK[:, :, 2] + bias[1]


class Block(nn.Module):
  """Pre-LayerNorm block: ``x + att(LN(x))``, then ``x + MLP(LN(x))``.

  ``decode=False``: ``x`` is ``[B, T, D]``; attention runs over its T positions
  under ``mask`` (default ``attention_mask(T)``, causal). ``decode=True`` (the
  KV cache, as in flax's lm1b example): ``x`` is ``[B, 1, D]``, the input at
  ``position``; its key and value are written at slot ``position`` of the
  ``cache`` collection's ``cached_key`` and ``cached_value`` ``[B, seq_len, H, K]``
  (compute dtype), and attention runs over all ``seq_len`` slots under ``mask``
  (default ``cache_mask(seq_len, position)``). Both use the implementation
  ``ATTENTION_IMPLS[resolve_attention(config.attention)]``.
  """

  config: ModelConfig
  decode: bool = False

  @nn.compact
  def __call__(self, x_BxTxD, mask=None, position=None):
    cfg = self.config
    dt = DTYPES[cfg.dtype]
    h = cfg.num_heads
    k = cfg.width // h
    y = nn.LayerNorm(dtype=dt, name="ln_attn")(x_BxTxD)
    qkv = nn.DenseGeneral((3, h, k), use_bias=False, dtype=dt, name="qkv")(y)
    qv_bias = self.param("qv_bias", nn.initializers.zeros, (2, h, k))
    q, kk, v = split_qkv(qkv, qv_bias)
    if self.decode:
      shape = (x_BxTxD.shape[0], cfg.seq_len, h, k)
      cached_k = self.variable("cache", "cached_key", jnp.zeros, shape, kk.dtype)
      cached_v = self.variable("cache", "cached_value", jnp.zeros, shape, v.dtype)
      cached_k.value = jax.lax.dynamic_update_slice(cached_k.value, kk, (0, position, 0, 0))
      cached_v.value = jax.lax.dynamic_update_slice(cached_v.value, v, (0, position, 0, 0))
      kk, v = cached_k.value, cached_v.value
      mask = cache_mask(cfg.seq_len, position) if mask is None else mask
    elif mask is None:
      mask = attention_mask(x_BxTxD.shape[1])
    att_BxTxHxK = ATTENTION_IMPLS[resolve_attention(cfg.attention)](q, kk, v, mask)
    x_BxTxD = x_BxTxD + nn.DenseGeneral(cfg.width, axis=(-2, -1), dtype=dt, name="proj")(att_BxTxHxK)
    y = nn.LayerNorm(dtype=dt, name="ln_mlp")(x_BxTxD)
    y = nn.Dense(cfg.mlp_ratio * cfg.width, dtype=dt, name="mlp_in")(y)
    y = ACTIVATIONS[cfg.activation](y)
    return x_BxTxD + nn.Dense(cfg.width, dtype=dt, name="mlp_out")(y)


class Transformer(nn.Module):
  """Decoder-only transformer: tokens ``[R, T]`` -> logits ``[R, T, 64]`` (float32).

  Rows may be packed: each ``BOS`` starts a segment that attends only to
  itself, with positions restarting at 0 (``segments``). The input embeddings
  pass through ``self.perturb("embeddings", ...)``, so gradients with respect to
  them can be probed with flax's ``perturbations`` collection.

  ``decode=True`` runs the same layers on one position: ``tokens`` ``[B, 1]``
  at slot ``position`` (int, maybe traced), reading and extending the
  ``cache`` collection (apply with ``mutable=["cache"]``; ``jaxequiv.lm.decoding.init_cache``
  makes an empty one). Besides each block's keys and values, the cache holds
  ``segment_start`` ``[B]``, the slot of each row's last ``BOS`` (0 before
  any), so positions and masks follow the segment rule exactly as in
  ``segments``. Every cache leaf has leading dimension B, so a beam search may
  reorder rows with ``x[rows]``.
  """

  config: ModelConfig
  decode: bool = False

  @nn.compact
  def __call__(self, tokens_BxT, *, position=None):
    cfg = self.config
    dt = DTYPES[cfg.dtype]
    if self.decode:
      if tokens_BxT.shape[1] != 1 or position is None:
        raise ValueError(f"decode=True takes tokens [B, 1] and a position, got shape {tokens_BxT.shape}, {position=}")
      start = self.variable("cache", "segment_start", jnp.zeros, tokens_BxT.shape[:1], jnp.int32)
      start.value = jnp.where(tokens_BxT[:, 0] == alphabet.BOS, position, start.value).astype(jnp.int32)
      positions_BxT = (position - start.value)[:, None]
      mask = cache_mask(cfg.seq_len, position, start.value)
    else:
      segment_ids_BxT, positions_BxT = segments(tokens_BxT)
      mask = attention_mask(tokens_BxT.shape[1], segment_ids_BxT)
    embed = nn.Embed(alphabet.INPUT_VOCAB, cfg.width, dtype=dt, name="embed")
    pos_TxD = self.param("pos_embed", nn.initializers.normal(0.02), (cfg.seq_len, cfg.width))
    x_BxTxD = embed(tokens_BxT) + jnp.take(pos_TxD, positions_BxT, axis=0).astype(dt)
    x_BxTxD = self.perturb("embeddings", x_BxTxD)
    for i in range(cfg.num_layers):
      x_BxTxD = Block(cfg, self.decode, name=f"block_{i}")(x_BxTxD, mask, position)
    x_BxTxD = nn.LayerNorm(dtype=dt, name="ln_final")(x_BxTxD)
    logits_BxTxV = nn.Dense(alphabet.NUM_CLASSES, dtype=dt, name="head")(x_BxTxD)
    return logits_BxTxV.astype(jnp.float32)


def init(key: jax.Array, config: ModelConfig) -> Params:
  """Initialises the transformer's parameters: one pytree of float32 arrays."""
  tokens = jnp.full((1, config.seq_len), alphabet.BOS, jnp.int32)
  return Transformer(config).init(key, tokens)["params"]


def check_tokens(tokens_RxT: jax.Array, seq_len: int | None = None) -> None:
  """Raises ValueError unless tokens is an integer ``[R, T]`` array with T <= seq_len."""
  shape, dtype = getattr(tokens_RxT, "shape", None), getattr(tokens_RxT, "dtype", None)
  if shape is None or len(shape) != 2:
    raise ValueError(f"tokens must have shape [R, T], got shape {shape}")
  if not jnp.issubdtype(dtype, jnp.integer):
    raise ValueError(f"tokens must be integers, got dtype {dtype} (shape {shape})")
  if seq_len is not None and shape[1] > seq_len:
    raise ValueError(f"tokens have T={shape[1]} positions, more than the model's seq_len={seq_len}")


def apply(params: Params, tokens_RxT: jax.Array, config: ModelConfig) -> jax.Array:
  """Logits ``[R, T, 64]`` (float32) for tokens ``[R, T]``; causal in T."""
  check_tokens(tokens_RxT, config.seq_len)
  return Transformer(config).apply({"params": params}, tokens_RxT)


def make_apply(config: ModelConfig) -> ApplyFn:
  """Returns ``apply_fn(params, tokens_RxT) -> logits_RxTx64`` for ``config``."""

  def apply_fn(params: Params, tokens_RxT: jax.Array) -> jax.Array:
    return apply(params, tokens_RxT, config)

  return apply_fn
