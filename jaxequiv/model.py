"""A small causal transformer over characters, built with Flax.

``init(key, config)`` returns one parameter pytree and ``apply(params, tokens,
config)`` maps tokens ``[R, T]`` (class ids, ``BOS`` and ``PAD``) to logits
``[R, T, 64]``. Position t sees tokens 0..t only. ``make_apply(config)`` gives
the two-argument ``apply_fn(params, tokens)`` the losses take.
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
  """

  num_layers: int = 2
  width: int = 64
  num_heads: int = 4
  seq_len: int = 64
  activation: str = "gelu"
  dtype: str = "float32"
  mlp_ratio: int = 4

  def __post_init__(self):
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


def causal_attention(q_BxTxHxK, k_BxSxHxK, v_BxSxHxK, q_offset=0):
  """Softmax attention where query t (at absolute position t + q_offset) sees keys <= it."""
  t, s = q_BxTxHxK.shape[1], k_BxSxHxK.shape[1]
  scale = q_BxTxHxK.shape[-1] ** -0.5
  scores_BxHxTxS = jnp.einsum("bthk,bshk->bhts", q_BxTxHxK * scale, k_BxSxHxK)
  allowed_TxS = (jnp.arange(t)[:, None] + q_offset) >= jnp.arange(s)[None, :]
  scores_BxHxTxS = jnp.where(allowed_TxS, scores_BxHxTxS.astype(jnp.float32), -1e30)
  probs_BxHxTxS = jax.nn.softmax(scores_BxHxTxS, axis=-1).astype(v_BxSxHxK.dtype)
  return jnp.einsum("bhts,bshk->bthk", probs_BxHxTxS, v_BxSxHxK)


class Block(nn.Module):
  config: ModelConfig

  @nn.compact
  def __call__(self, x_BxTxD):
    cfg = self.config
    dt = cfg.compute_dtype
    h = cfg.num_heads
    k = cfg.width // h
    y = nn.LayerNorm(dtype=dt, name="ln_attn")(x_BxTxD)
    qkv = nn.DenseGeneral((3, h, k), dtype=dt, name="qkv")(y)
    q, kk, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]
    att_BxTxHxK = causal_attention(q, kk, v)
    x_BxTxD = x_BxTxD + nn.DenseGeneral(cfg.width, axis=(-2, -1), dtype=dt, name="proj")(att_BxTxHxK)
    y = nn.LayerNorm(dtype=dt, name="ln_mlp")(x_BxTxD)
    y = nn.Dense(cfg.mlp_ratio * cfg.width, dtype=dt, name="mlp_in")(y)
    y = ACTIVATIONS[cfg.activation](y)
    return x_BxTxD + nn.Dense(cfg.width, dtype=dt, name="mlp_out")(y)


class Transformer(nn.Module):
  """Decoder-only transformer: tokens ``[R, T]`` -> logits ``[R, T, 64]`` (float32)."""

  config: ModelConfig

  @nn.compact
  def __call__(self, tokens_BxT, embed_delta_BxTxD=None):
    """``embed_delta_BxTxD`` (optional) is added to the input embeddings, for gradient probes."""
    cfg = self.config
    dt = cfg.compute_dtype
    t = tokens_BxT.shape[1]
    embed = nn.Embed(alphabet.INPUT_VOCAB, cfg.width, dtype=dt, name="embed")
    pos_TxD = self.param("pos_embed", nn.initializers.normal(0.02), (cfg.seq_len, cfg.width))
    x_BxTxD = embed(tokens_BxT) + pos_TxD[:t].astype(dt)
    if embed_delta_BxTxD is not None:
      x_BxTxD = x_BxTxD + embed_delta_BxTxD.astype(dt)
    for i in range(cfg.num_layers):
      x_BxTxD = Block(cfg, name=f"block_{i}")(x_BxTxD)
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
