"""KV-cached decoding: the transformer of ``model.py``, one position at a time.

``model.apply`` recomputes every position of a row; to extend a row by one
character it costs ``O(T)`` dense work. ``decode_step`` instead keeps each
layer's keys and values of the positions already seen in a cache ``[B, T, H, K]``
and computes only the new position:

.. math:: q_p, k_p, v_p = \\mathrm{qkv}(\\mathrm{LN}(x_p)), \\qquad
   \\mathrm{att}_p = \\sum_{s \\le p} \\mathrm{softmax}_s(q_p \\cdot k_s / \\sqrt{K})\\, v_s

It reads the *same* parameter tree as ``model.init`` (``params["block_0"]["qkv"]
["kernel"]`` etc.) and applies the same Flax layers (``nn.Embed``,
``nn.LayerNorm``, ``nn.DenseGeneral``, ``nn.Dense`` with the config's compute
dtype); attention is ``model.causal_attention``'s maths for one query
(``cached_attention``, laid out for the cache). Shapes and summation order
differ (one query instead of T), so XLA may round differently: cached logits match ``model.apply`` to
float32 rounding (about 1e-6), not bit for bit. ``tests/decode_test.py``
measures the error.

Examples:
  >>> import jax, jax.numpy as jnp, jaxequiv
  >>> from jaxequiv.lm.decoding import decode_step, init_cache
  >>> config = jaxequiv.ModelConfig(num_layers=1, width=16, num_heads=2, seq_len=8)
  >>> params = jaxequiv.init(jax.random.key(0), config)
  >>> cache = init_cache(config, batch_size=8)
  >>> tokens_B = jnp.full((8,), jaxequiv.BOS)
  >>> for p in range(config.seq_len):
  ...   logits_Bx64, cache = decode_step(params, cache, tokens_B, p, config)
  ...   tokens_B = jnp.argmax(logits_Bx64, -1)
  >>> logits_Bx64.shape
  (8, 64)
"""

from __future__ import annotations

from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxequiv import alphabet, model
from jaxequiv.model import ModelConfig
from jaxequiv.types import Params


class LayerCache(NamedTuple):
  """One layer's keys and values; entries at positions not yet decoded are zeros."""

  k_BxTxHxK: jax.Array
  v_BxTxHxK: jax.Array


Cache = tuple[LayerCache, ...]


def init_cache(config: ModelConfig, batch_size: int) -> Cache:
  """An empty cache: per layer, zero keys and values ``[B, T, H, K]`` in the compute dtype.

  Args:
    config: the model's config (T = ``seq_len``, H = ``num_heads``, K = ``width // num_heads``).
    batch_size: B, the rows decoded together.

  Returns:
    A tuple of ``num_layers`` ``LayerCache``.
  """
  if batch_size < 1:
    raise ValueError(f"batch_size must be >= 1, got {batch_size}")
  h = config.num_heads
  shape = (batch_size, config.seq_len, h, config.width // h)
  zeros = lambda: jnp.zeros(shape, config.compute_dtype)  # noqa: E731  (distinct buffers, so callers may donate)
  return tuple(LayerCache(zeros(), zeros()) for _ in range(config.num_layers))


def _check_params(params: Params, config: ModelConfig) -> None:
  missing = [f"block_{i}" for i in range(config.num_layers) if f"block_{i}" not in params]
  if missing or "pos_embed" not in params:
    raise ValueError(f"params do not match config {config}: missing {missing or ['pos_embed']}")
  if params["pos_embed"].shape != (config.seq_len, config.width):
    raise ValueError(
        f"params['pos_embed'] has shape {params['pos_embed'].shape}, config needs"
        f" ({config.seq_len}, {config.width})")


def _check_cache(cache: Cache, config: ModelConfig, batch_size: int) -> None:
  h = config.num_heads
  want = (batch_size, config.seq_len, h, config.width // h)
  if len(cache) != config.num_layers:
    raise ValueError(f"cache has {len(cache)} layers, config has num_layers={config.num_layers}")
  for i, layer in enumerate(cache):
    for name, x in zip(("k", "v"), layer):
      if x.shape != want:
        raise ValueError(f"cache layer {i} {name} has shape {x.shape}, expected {want} for tokens of batch {batch_size}")


def cached_attention(q_Bx1xHxK: jax.Array, k_BxTxHxK: jax.Array, v_BxTxHxK: jax.Array, position) -> jax.Array:
  """``model.causal_attention`` for one query at ``position`` over a cache ``[B, T, H, K]``.

  The same maths (query scaled by ``K**-0.5``, float32 scores, keys after
  ``position`` masked with -1e30, float32 softmax, probabilities cast to the
  values' dtype), written as broadcast multiply-and-sum over the cache's own
  layout: XLA's batched dot would first transpose the whole cache to
  ``[B, H, T, K]`` at every step, which made sampling about 1.5-2x slower at T=256.
  Products and sums are float32 (as XLA:CPU computes bf16 dots), rounded to
  the compute dtype where the einsums' outputs are.

  Returns:
    ``[B, 1, H, K]`` in the values' dtype.
  """
  t, k = k_BxTxHxK.shape[1], q_Bx1xHxK.shape[-1]
  f32 = jnp.float32
  q_Bx1xHxK = (q_Bx1xHxK * k ** -0.5).astype(f32)
  scores_BxTxH = jnp.sum(q_Bx1xHxK * k_BxTxHxK.astype(f32), axis=-1)
  # Like the einsum's output, round the scores to the compute dtype before the float32 softmax.
  scores_BxTxH = scores_BxTxH.astype(k_BxTxHxK.dtype).astype(f32)
  allowed_T = jnp.arange(t) <= position
  scores_BxTxH = jnp.where(allowed_T[None, :, None], scores_BxTxH, -1e30)
  probs_BxTxH = jax.nn.softmax(scores_BxTxH, axis=1).astype(v_BxTxHxK.dtype)
  att_BxHxK = jnp.sum(probs_BxTxH[..., None].astype(f32) * v_BxTxHxK.astype(f32), axis=1)
  return att_BxHxK[:, None].astype(v_BxTxHxK.dtype)


def _block_step(p: Params, layer: LayerCache, x_Bx1xD: jax.Array, position, config: ModelConfig):
  """``model.Block`` at one position, reading and extending the layer's cache."""
  dt = config.compute_dtype
  h = config.num_heads
  k = config.width // h
  y = nn.LayerNorm(dtype=dt).apply({"params": p["ln_attn"]}, x_Bx1xD)
  qkv = nn.DenseGeneral((3, h, k), use_bias=False, dtype=dt).apply({"params": p["qkv"]}, y)
  q_Bx1xHxK, k_Bx1xHxK, v_Bx1xHxK = model.split_qkv(qkv, p["qv_bias"])
  start = (0, position, 0, 0)
  layer = LayerCache(
      jax.lax.dynamic_update_slice(layer.k_BxTxHxK, k_Bx1xHxK.astype(layer.k_BxTxHxK.dtype), start),
      jax.lax.dynamic_update_slice(layer.v_BxTxHxK, v_Bx1xHxK.astype(layer.v_BxTxHxK.dtype), start))
  att_Bx1xHxK = cached_attention(q_Bx1xHxK, layer.k_BxTxHxK, layer.v_BxTxHxK, position)
  proj = nn.DenseGeneral(config.width, axis=(-2, -1), dtype=dt).apply({"params": p["proj"]}, att_Bx1xHxK)
  x_Bx1xD = x_Bx1xD + proj
  y = nn.LayerNorm(dtype=dt).apply({"params": p["ln_mlp"]}, x_Bx1xD)
  y = nn.Dense(config.mlp_ratio * config.width, dtype=dt).apply({"params": p["mlp_in"]}, y)
  y = model.ACTIVATIONS[config.activation](y)
  y = nn.Dense(config.width, dtype=dt).apply({"params": p["mlp_out"]}, y)
  return x_Bx1xD + y, layer


def decode_step(
    params: Params, cache: Cache, tokens_B: jax.Array, position, config: ModelConfig
) -> tuple[jax.Array, Cache]:
  """Logits at ``position`` for input tokens at ``position``, given the cache of positions < it.

  Row b's logits equal ``model.apply(params, row_b)[position]`` (to rounding),
  where ``row_b`` holds the tokens fed at positions ``0..position`` (BOS first).

  Args:
    params: ``model.init`` parameters for ``config``.
    cache: from ``init_cache`` or the previous ``decode_step``; holds keys and
      values of positions ``< position`` (later entries are ignored).
    tokens_B: integer input tokens ``[B]`` at ``position`` (class ids, BOS, PAD).
    position: int in ``[0, T)``, Python or traced scalar.
    config: the model's config.

  Returns:
    ``(logits_Bx64, cache)``: float32 logits, and the cache extended with ``position``.
  """
  tokens_B = jnp.asarray(tokens_B)
  if tokens_B.ndim != 1 or not jnp.issubdtype(tokens_B.dtype, jnp.integer):
    raise ValueError(f"tokens_B must be an integer array [B], got shape {tokens_B.shape} dtype {tokens_B.dtype}")
  if isinstance(position, int) and not 0 <= position < config.seq_len:
    raise ValueError(f"position {position} is outside the context [0, {config.seq_len})")
  _check_params(params, config)
  _check_cache(cache, config, tokens_B.shape[0])
  dt = config.compute_dtype
  tokens_Bx1 = tokens_B[:, None]
  x_Bx1xD = nn.Embed(alphabet.INPUT_VOCAB, config.width, dtype=dt).apply({"params": params["embed"]}, tokens_Bx1)
  pos_1xD = jax.lax.dynamic_slice_in_dim(params["pos_embed"], position, 1, axis=0)
  x_Bx1xD = x_Bx1xD + pos_1xD.astype(dt)
  new_cache = []
  for i, layer in enumerate(cache):
    x_Bx1xD, layer = _block_step(params[f"block_{i}"], layer, x_Bx1xD, position, config)
    new_cache.append(layer)
  x_Bx1xD = nn.LayerNorm(dtype=dt).apply({"params": params["ln_final"]}, x_Bx1xD)
  logits_Bx1xV = nn.Dense(alphabet.NUM_CLASSES, dtype=dt).apply({"params": params["head"]}, x_Bx1xD)
  return logits_Bx1xV[:, 0].astype(jnp.float32), tuple(new_cache)


def decode_all(params: Params, tokens_BxT: jax.Array, config: ModelConfig) -> jax.Array:
  """Logits ``[B, T, 64]`` by stepping ``decode_step`` over every position (a ``lax.scan``).

  The cached counterpart of ``model.apply``; used to test the cache.
  """
  model.check_tokens(tokens_BxT, config.seq_len)
  b, t = tokens_BxT.shape

  def body(cache, inputs):
    position, tokens_B = inputs
    logits_Bx64, cache = decode_step(params, cache, tokens_B, position, config)
    return cache, logits_Bx64

  _, logits_TxBxV = jax.lax.scan(body, init_cache(config, b), (jnp.arange(t), tokens_BxT.T))
  return logits_TxBxV.transpose(1, 0, 2)
