"""A small causal transformer over characters, built with Flax.

``init(key, config)`` returns one parameter pytree and ``apply(params, tokens,
config)`` maps tokens ``[R, T]`` (class ids, ``BOS`` and ``PAD``) to logits
``[R, T, 64]``. Position t sees tokens 0..t only, and only those of its own
segment: every ``BOS`` starts a segment, so a packed row holds several
sentences that never see each other, each with positions from 0
(``segments``). ``make_apply(config)`` gives the two-argument
``apply_fn(params, tokens)`` the losses take.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxequiv import alphabet
from jaxequiv.types import ApplyFn, Params

ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "relu": jax.nn.relu,
    "tanh": jnp.tanh,
    "gelu": jax.nn.gelu,
}
DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}
ATTENTION = ("auto", "einsum", "xla", "cudnn")


@dataclasses.dataclass(frozen=True)
class ModelConfig:
  """Transformer hyper-parameters. Hashable, so it can be a static argument.

  Attributes:
    num_layers: transformer blocks.
    width: model width D; must be divisible by ``num_heads``.
    num_heads: attention heads.
    seq_len: context length T (positions 0..T-1).
    activation: ``"relu"``, ``"tanh"`` or ``"gelu"`` in the MLP.
    dtype: compute dtype, ``"float32"`` or ``"bfloat16"``; params stay float32.
    mlp_ratio: MLP hidden width is ``mlp_ratio * width``.
    attention: ``"einsum"`` (explicit softmax attention), ``"xla"`` or
      ``"cudnn"`` (``jax.nn.dot_product_attention``; cuDNN's fused kernel on
      GPU), or ``"auto"``: the fastest measured on the backend.
  """

  num_layers: int = 2
  width: int = 64
  num_heads: int = 4
  seq_len: int = 64
  activation: str = "gelu"
  dtype: str = "float32"
  mlp_ratio: int = 4
  attention: str = "auto"

  def __post_init__(self):
    if self.attention not in ATTENTION:
      raise ValueError(f"attention must be one of {ATTENTION}, got {self.attention!r}")
    if self.activation not in ACTIVATIONS:
      raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {self.activation!r}")
    if self.dtype not in DTYPES:
      raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got {self.dtype!r}")
    if self.width % self.num_heads:
      raise ValueError(f"width {self.width} is not divisible by num_heads {self.num_heads}")
    for name in ("num_layers", "width", "num_heads", "seq_len", "mlp_ratio"):
      if getattr(self, name) < 1:
        raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")

  @property
  def compute_dtype(self):
    return DTYPES[self.dtype]


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


def attention_mask(t: int, s: int, q_offset: int = 0, segment_ids_BxT: jax.Array | None = None) -> jax.Array:
  """Boolean ``[B or 1, 1, T, S]``: query t (at t + q_offset) sees keys <= it in its own segment."""
  allowed = (jnp.arange(t)[:, None] + q_offset) >= jnp.arange(s)[None, :]
  allowed = allowed[None, None]
  if segment_ids_BxT is not None:
    allowed = allowed & (segment_ids_BxT[:, None, :, None] == segment_ids_BxT[:, None, None, :])
  return allowed


def causal_attention(q_BxTxHxK, k_BxSxHxK, v_BxSxHxK, q_offset=0, segment_ids_BxT=None, impl="einsum"):
  """Softmax attention where query t (at absolute position t + q_offset) sees keys <= it.

  With ``segment_ids_BxT`` (self-attention, T == S) a query also sees only
  keys of its own segment. ``impl`` is ``"einsum"`` (explicit einsums, the
  softmax in float32) or ``"xla"``/``"cudnn"`` (``jax.nn.dot_product_attention``).
  """
  t, s = q_BxTxHxK.shape[1], k_BxSxHxK.shape[1]
  mask = attention_mask(t, s, q_offset, segment_ids_BxT)
  if impl in ("xla", "cudnn"):
    return jax.nn.dot_product_attention(q_BxTxHxK, k_BxSxHxK, v_BxSxHxK, mask=mask, implementation=impl)
  scale = q_BxTxHxK.shape[-1] ** -0.5
  scores_BxHxTxS = jnp.einsum("bthk,bshk->bhts", q_BxTxHxK * scale, k_BxSxHxK)
  scores_BxHxTxS = jnp.where(mask, scores_BxHxTxS.astype(jnp.float32), -1e30)
  probs_BxHxTxS = jax.nn.softmax(scores_BxHxTxS, axis=-1).astype(v_BxSxHxK.dtype)
  return jnp.einsum("bhts,bshk->bthk", probs_BxHxTxS, v_BxSxHxK)


def split_qkv(qkv_BxTx3xHxK: jax.Array, qv_bias_2xHxK: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
  """Queries, keys, values from the bias-free ``qkv`` projection plus the query and value biases.

  There is no key bias: softmax ignores a shift shared by all keys, so its true
  gradient is exactly zero (a float gradient of rounding noise, nothing else).
  """
  bias = qv_bias_2xHxK.astype(qkv_BxTx3xHxK.dtype)
  return qkv_BxTx3xHxK[:, :, 0] + bias[0], qkv_BxTx3xHxK[:, :, 1], qkv_BxTx3xHxK[:, :, 2] + bias[1]


def _resolve_impl(impl: str) -> str:
  if impl != "auto":
    return impl
  return "einsum" if jax.default_backend() == "cpu" else "xla"


class Block(nn.Module):
  config: ModelConfig

  @nn.compact
  def __call__(self, x_BxTxD, segment_ids_BxT=None):
    cfg = self.config
    dt = cfg.compute_dtype
    h = cfg.num_heads
    k = cfg.width // h
    y = nn.LayerNorm(dtype=dt, name="ln_attn")(x_BxTxD)
    qkv = nn.DenseGeneral((3, h, k), use_bias=False, dtype=dt, name="qkv")(y)
    qv_bias = self.param("qv_bias", nn.initializers.zeros, (2, h, k))
    q, kk, v = split_qkv(qkv, qv_bias)
    att_BxTxHxK = causal_attention(q, kk, v, segment_ids_BxT=segment_ids_BxT, impl=_resolve_impl(cfg.attention))
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
  """

  config: ModelConfig

  @nn.compact
  def __call__(self, tokens_BxT):
    cfg = self.config
    dt = cfg.compute_dtype
    segment_ids_BxT, positions_BxT = segments(tokens_BxT)
    embed = nn.Embed(alphabet.INPUT_VOCAB, cfg.width, dtype=dt, name="embed")
    pos_TxD = self.param("pos_embed", nn.initializers.normal(0.02), (cfg.seq_len, cfg.width))
    x_BxTxD = embed(tokens_BxT) + jnp.take(pos_TxD, positions_BxT, axis=0).astype(dt)
    x_BxTxD = self.perturb("embeddings", x_BxTxD)
    for i in range(cfg.num_layers):
      x_BxTxD = Block(cfg, name=f"block_{i}")(x_BxTxD, segment_ids_BxT)
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
