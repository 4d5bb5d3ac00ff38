"""KV-cached decoding: ``model.Transformer`` itself, one position at a time.

``model.apply`` recomputes every position of a row; to extend a row by one
character it costs ``O(T)`` dense work. ``decode_step`` runs the same module
with ``decode=True`` (flax's ``cache`` collection, as in flax's lm1b example):
each block writes the new position's key and value into its cache
``[B, T, H, K]`` and attends over the cache with the configured attention
implementation (``model.ATTENTION_IMPLS``) under ``model.cache_mask``:

.. math:: q_p, k_p, v_p = \\mathrm{qkv}(\\mathrm{LN}(x_p)), \\qquad
   \\mathrm{att}_p = \\sum_{\\mathrm{start} \\le s \\le p} \\mathrm{softmax}_s(q_p \\cdot k_s / \\sqrt{K})\\, v_s

There is no second copy of the block here: the parameters, layers and
attention are ``model``'s. Only the shapes differ (one query instead of T), so
XLA may round differently; ``tests/lm/decoding_test.py`` measures and bounds
the difference to ``model.apply`` (float32 and bfloat16).

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
  >>> logits_Bx64.shape, sorted(cache["block_0"]), cache["block_0"]["cached_key"].shape
  ((8, 64), ['cached_key', 'cached_value'], (8, 8, 2, 8))
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from jaxequiv import model
from jaxequiv.model import ModelConfig
from jaxequiv.types import Params

Cache = dict[str, Any]


def _cache_shapes(config: ModelConfig, batch_size: int) -> Cache:
  tokens_Bx1 = jax.ShapeDtypeStruct((batch_size, 1), jnp.int32)
  init = lambda tokens: model.Transformer(config, decode=True).init(jax.random.key(0), tokens, position=0)  # noqa: E731
  return jax.eval_shape(init, tokens_Bx1)["cache"]


def init_cache(config: ModelConfig, batch_size: int) -> Cache:
  """An empty cache for ``model.Transformer(config, decode=True)``: all zeros.

  Args:
    config: the model's config (T = ``seq_len``, H = ``num_heads``, K = ``width // num_heads``).
    batch_size: B, the rows decoded together.

  Returns:
    ``{"block_i": {"cached_key", "cached_value"} [B, T, H, K] in the compute
    dtype, "segment_start": [B] int32}``; every leaf has leading dimension B.
  """
  if batch_size < 1:
    raise ValueError(f"batch_size must be >= 1, got {batch_size}")
  return jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), _cache_shapes(config, batch_size))


def _check_params(params: Params, config: ModelConfig) -> None:
  missing = [f"block_{i}" for i in range(config.num_layers) if f"block_{i}" not in params]
  if missing or "pos_embed" not in params:
    raise ValueError(f"params do not match config {config}: missing {missing or ['pos_embed']}")
  if params["pos_embed"].shape != (config.seq_len, config.width):
    raise ValueError(
        f"params['pos_embed'] has shape {params['pos_embed'].shape}, config needs"
        f" ({config.seq_len}, {config.width})")


def _check_cache(cache: Cache, config: ModelConfig, batch_size: int) -> None:
  want = jax.tree_util.tree_flatten_with_path(_cache_shapes(config, batch_size))[0]
  got = jax.tree_util.tree_flatten_with_path(cache)[0]
  if [path for path, _ in got] != [path for path, _ in want]:
    raise ValueError(f"cache does not match config {config}: it has {len(got)} arrays, expected {len(want)}"
                     " (make it with init_cache(config, batch_size))")
  for (path, x), (_, s) in zip(got, want):
    if x.shape != s.shape:
      raise ValueError(f"cache{jax.tree_util.keystr(path)} has shape {x.shape}, expected {s.shape}"
                       f" for tokens of batch {batch_size}")


def decode_step(
    params: Params, cache: Cache, tokens_B: jax.Array, position, config: ModelConfig
) -> tuple[jax.Array, Cache]:
  """Logits at ``position`` for input tokens at ``position``, given the cache of positions < it.

  Row b's logits equal ``model.apply(params, row_b)[position]`` up to rounding
  (see the module docstring), where ``row_b`` holds the tokens fed at
  positions ``0..position``; a ``BOS`` starts a segment as in ``model.segments``.

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
  logits_Bx1xV, variables = model.Transformer(config, decode=True).apply(
      {"params": params, "cache": cache}, tokens_B[:, None], position=position, mutable=["cache"])
  return logits_Bx1xV[:, 0], variables["cache"]


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
