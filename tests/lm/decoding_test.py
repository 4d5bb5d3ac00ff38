"""The KV-cached decoder against the no-cache transformer (model.apply on the full prefix)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxequiv import alphabet, bitwise, model
from jaxequiv.lm import decoding

# float32: the cached path computes the same layers on [B, 1] instead of [B, T]
# rows, so XLA may sum in another order; measured max abs error ~1.5e-6.
F32_TOL = 1e-5
# bfloat16 (8-bit mantissa): error relative to the largest logit; measured ~0.01
# (2 bf16 ULPs of logits ~3.4).
BF16_REL_TOL = 0.03


def _setup(activation="gelu", dtype="float32", seq_len=16, seed=0):
  cfg = model.ModelConfig(num_layers=2, width=32, num_heads=4, seq_len=seq_len, activation=activation, dtype=dtype)
  params = model.init(jax.random.key(seed), cfg)
  tokens = jax.random.randint(jax.random.key(seed + 1), (3, seq_len), 0, alphabet.INPUT_VOCAB)
  return cfg, params, tokens


@pytest.mark.parametrize("activation", ["relu", "tanh", "gelu"])
def test_stepping_a_full_sequence_reproduces_apply_at_every_position(activation):
  cfg, params, tokens = _setup(activation)
  want = jax.jit(model.make_apply(cfg))(params, tokens)
  got = jax.jit(decoding.decode_all, static_argnums=2)(params, tokens, cfg)
  err = float(jnp.max(jnp.abs(want - got)))
  print(f"{activation}: max |cached - apply| over all positions = {err:.3g} (tolerance {F32_TOL})")
  assert got.shape == want.shape == (3, cfg.seq_len, 64) and got.dtype == jnp.float32
  assert err <= F32_TOL
  assert float(jnp.max(jnp.abs(want))) > 0.1, "logits are not trivially small"


@pytest.mark.parametrize("activation", ["tanh"])
def test_decode_step_matches_apply_on_the_prefix(activation):
  """At each position p, decode_step's logits equal model.apply on the prefix tokens[:, :p+1] at p."""
  cfg, params, tokens = _setup(activation, seq_len=6)
  step = jax.jit(decoding.decode_step, static_argnums=4)
  apply = jax.jit(model.make_apply(cfg))
  cache = decoding.init_cache(cfg, 3)
  worst = 0.0
  for p in range(cfg.seq_len):
    logits_Bx64, cache = step(params, cache, tokens[:, p], p, cfg)
    want = apply(params, tokens[:, : p + 1])[:, p]
    worst = max(worst, float(jnp.max(jnp.abs(logits_Bx64 - want))))
  print(f"{activation}: max |decode_step - apply(prefix)| = {worst:.3g} (tolerance {F32_TOL})")
  assert worst <= F32_TOL


@pytest.mark.parametrize("position", [0, 5, 7])
def test_cached_attention_is_causal_attention_for_one_query(position):
  q = jax.random.normal(jax.random.key(0), (2, 8, 3, 4))
  k = jax.random.normal(jax.random.key(1), (2, 8, 3, 4))
  v = jax.random.normal(jax.random.key(2), (2, 8, 3, 4))
  want = model.causal_attention(q, k, v)[:, position : position + 1]
  got = decoding.cached_attention(q[:, position : position + 1], k, v, position)
  err = float(jnp.max(jnp.abs(want - got)))
  print(f"position {position}: max |cached_attention - causal_attention| = {err:.3g} (tolerance {F32_TOL})")
  assert got.shape == (2, 1, 3, 4) and err <= F32_TOL


def test_cache_holds_keys_and_values_and_later_entries_are_ignored():
  cfg, params, tokens = _setup(seq_len=8)
  step = jax.jit(decoding.decode_step, static_argnums=4)
  cache = decoding.init_cache(cfg, 3)
  assert len(cache) == cfg.num_layers
  assert cache[0].k_BxTxHxK.shape == (3, 8, 4, 8) and cache[0].k_BxTxHxK.dtype == jnp.float32
  _, cache1 = step(params, cache, tokens[:, 0], 0, cfg)
  assert float(jnp.abs(cache1[0].k_BxTxHxK[:, 0]).sum()) > 0 and float(jnp.abs(cache1[0].k_BxTxHxK[:, 1:]).sum()) == 0
  # Garbage at positions > p must not change the logits at p.
  junk = tuple(decoding.LayerCache(c.k_BxTxHxK.at[:, 2:].set(1e3), c.v_BxTxHxK.at[:, 2:].set(-1e3)) for c in cache1)
  a, _ = step(params, cache1, tokens[:, 1], 1, cfg)
  b, _ = step(params, junk, tokens[:, 1], 1, cfg)
  bitwise.assert_bitwise_equal(a, b)


def test_bfloat16_cache_close_to_apply():
  cfg, params, tokens = _setup(dtype="bfloat16")
  assert decoding.init_cache(cfg, 2)[0].v_BxTxHxK.dtype == jnp.bfloat16
  want = jax.jit(model.make_apply(cfg))(params, tokens)
  got = jax.jit(decoding.decode_all, static_argnums=2)(params, tokens, cfg)
  err = float(jnp.max(jnp.abs(want - got)))
  rel = bitwise.max_relative_error(want, got)
  print(f"bfloat16: max |cached - apply| = {err:.3g}, relative to max|logit| {rel:.3g} (tolerance {BF16_REL_TOL})")
  assert rel <= BF16_REL_TOL


def test_errors_name_the_culprit():
  cfg, params, tokens = _setup(seq_len=8)
  cache = decoding.init_cache(cfg, 3)
  with pytest.raises(ValueError, match=r"position 8 is outside the context \[0, 8\)"):
    decoding.decode_step(params, cache, tokens[:, 0], 8, cfg)
  with pytest.raises(ValueError, match=r"cache layer 0 k has shape \(3, 8, 4, 8\), expected \(2, 8, 4, 8\)"):
    decoding.decode_step(params, cache, tokens[:2, 0], 0, cfg)
  with pytest.raises(ValueError, match="integer array"):
    decoding.decode_step(params, cache, jnp.zeros(3), 0, cfg)
  other = model.ModelConfig(num_layers=2, width=32, num_heads=4, seq_len=16)
  with pytest.raises(ValueError, match=r"pos_embed'\] has shape \(8, 32\)"):
    decoding.decode_step(params, decoding.init_cache(other, 3), tokens[:, 0], 0, other)
  with pytest.raises(ValueError, match="batch_size must be >= 1"):
    decoding.init_cache(cfg, 0)
