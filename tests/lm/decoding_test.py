"""KV-cached decoding (model.Transformer with decode=True) against model.apply on the full rows."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxequiv import alphabet, bitwise, model
from jaxequiv.lm import decoding

# float32: the cached path runs the same layers with one query instead of T, so XLA:CPU's attention dots
# (the qkv projection is bitwise equal) sum in another order; measured max abs error ~1.5e-6 on logits ~3.
F32_TOL = 1e-5
# bfloat16: an f32 rounding difference inside a dot may flip one bf16 rounding (2**-8 relative), which later
# layers carry; bound relative to the largest logit. Measured on XLA:CPU: 0 (bitwise equal) for these inputs.
BF16_REL_TOL = 0.03


def _setup(activation="gelu", dtype="float32", seq_len=16, seed=0, attention="auto"):
  cfg = model.ModelConfig(num_layers=2, width=32, num_heads=4, seq_len=seq_len, activation=activation, dtype=dtype,
                          attention=attention)
  params = model.init(jax.random.key(seed), cfg)
  tokens = jax.random.randint(jax.random.key(seed + 1), (3, seq_len), 0, alphabet.INPUT_VOCAB)
  # Row 0: one sentence (BOS first, as sampling starts); row 1: two packed sentences; row 2: random tokens.
  tokens = tokens.at[:2, 0].set(alphabet.BOS).at[1, seq_len // 2].set(alphabet.BOS)
  return cfg, params, tokens


def _compare(want, got):
  return float(jnp.max(jnp.abs(want - got))), int(np.sum(bitwise.bits(want) != bitwise.bits(got)))


@pytest.mark.parametrize("activation,attention", [("relu", "einsum"), ("tanh", "xla"), ("gelu", "auto")])
def test_stepping_a_full_sequence_reproduces_apply_at_every_position(activation, attention):
  """Packed rows too: a BOS in decode mode starts a segment (positions restart, earlier slots are masked)."""
  cfg, params, tokens = _setup(activation, attention=attention)
  want = jax.jit(model.make_apply(cfg))(params, tokens)
  got = jax.jit(decoding.decode_all, static_argnums=2)(params, tokens, cfg)
  err, differ = _compare(want, got)
  print(f"{activation}/{attention}: max |cached - apply| = {err:.3g} (tolerance {F32_TOL}); "
        f"{differ}/{want.size} logits differ in bits")
  assert got.shape == want.shape == (3, cfg.seq_len, 64) and got.dtype == jnp.float32
  assert err <= F32_TOL
  assert float(jnp.max(jnp.abs(want))) > 0.1, "logits are not trivially small"


def test_without_the_segment_rule_a_packed_row_would_differ():
  """Negative control: the second sentence of row 1 decoded after an unmasked first one is far from apply's."""
  cfg, params, tokens = _setup(seq_len=8)
  want = model.apply(params, tokens, cfg)[1, 4:]
  joined = model.apply(params, tokens.at[1, 4].set(alphabet.PAD), cfg)[1, 4:]
  got = decoding.decode_all(params, tokens, cfg)[1, 4:]
  assert float(jnp.max(jnp.abs(want - got))) <= F32_TOL
  assert float(jnp.max(jnp.abs(want - joined))) > 1e-3


def test_decode_step_matches_apply_on_the_prefix():
  """At each position p, decode_step's logits equal model.apply on the prefix tokens[:, :p+1] at p."""
  cfg, params, tokens = _setup("tanh", seq_len=6)
  step = jax.jit(decoding.decode_step, static_argnums=4)
  apply = jax.jit(model.make_apply(cfg))
  cache = decoding.init_cache(cfg, 3)
  worst = 0.0
  for p in range(cfg.seq_len):
    logits_Bx64, cache = step(params, cache, tokens[:, p], p, cfg)
    want = apply(params, tokens[:, : p + 1])[:, p]
    worst = max(worst, float(jnp.max(jnp.abs(logits_Bx64 - want))))
  print(f"max |decode_step - apply(prefix)| = {worst:.3g} (tolerance {F32_TOL})")
  assert worst <= F32_TOL


@pytest.mark.parametrize("dtype,tol", [("float32", F32_TOL), ("bfloat16", BF16_REL_TOL)])
def test_cache_holds_the_models_own_keys_and_values(dtype, tol):
  """Block 0's cached k and v are apply's (up to the LayerNorm's reduction order; measured: float32 ~5e-7, some
  bits differ; bfloat16 bitwise equal here). Tolerance: F32_TOL absolute, BF16_REL_TOL relative to max |k|, |v|."""
  cfg, params, tokens = _setup(dtype=dtype, seq_len=8)

  @jax.jit
  def keys_and_values(params, tokens):
    _, inter = model.Transformer(cfg).apply({"params": params}, tokens, capture_intermediates=True,
                                            mutable=["intermediates"])
    qkv = inter["intermediates"]["block_0"]["qkv"]["__call__"][0]
    return model.split_qkv(qkv, params["block_0"]["qv_bias"])[1:]

  k_want, v_want = keys_and_values(params, tokens)
  step = jax.jit(decoding.decode_step, static_argnums=4)
  cache = decoding.init_cache(cfg, 3)
  for p in range(cfg.seq_len):
    _, cache = step(params, cache, tokens[:, p], p, cfg)
  assert cache["block_0"]["cached_key"].dtype == cfg.compute_dtype
  for name, want in (("cached_key", k_want), ("cached_value", v_want)):
    got = cache["block_0"][name]
    err, differ = _compare(want.astype(jnp.float32), got.astype(jnp.float32))
    scale = 1.0 if dtype == "float32" else float(jnp.max(jnp.abs(want.astype(jnp.float32))))
    print(f"{dtype} {name}: max |cache - apply's| = {err:.3g} ({differ}/{want.size} differ in bits; tolerance {tol})")
    assert err <= tol * scale
  _, positions_BxT = model.segments(tokens)  # The slot of each row's last BOS (0 if none): t - position at t.
  bitwise.assert_bitwise_equal(cache["segment_start"], (cfg.seq_len - 1 - positions_BxT[:, -1]).astype(jnp.int32))
  assert cache["segment_start"].tolist()[:2] == [0, 4]


def test_later_cache_entries_are_ignored():
  cfg, params, tokens = _setup(seq_len=8)
  step = jax.jit(decoding.decode_step, static_argnums=4)
  cache = decoding.init_cache(cfg, 3)
  assert cache["block_0"]["cached_key"].shape == (3, 8, 4, 8) and cache["segment_start"].shape == (3,)
  _, cache1 = step(params, cache, tokens[:, 0], 0, cfg)
  k1 = cache1["block_0"]["cached_key"]
  assert float(jnp.abs(k1[:, 0]).sum()) > 0 and float(jnp.abs(k1[:, 1:]).sum()) == 0
  # Garbage at positions > p must not change the logits at p.
  junk = dict(cache1)
  for i in range(cfg.num_layers):
    c = cache1[f"block_{i}"]
    junk[f"block_{i}"] = {"cached_key": c["cached_key"].at[:, 2:].set(1e3),
                          "cached_value": c["cached_value"].at[:, 2:].set(-1e3)}
  a, _ = step(params, cache1, tokens[:, 1], 1, cfg)
  b, _ = step(params, junk, tokens[:, 1], 1, cfg)
  bitwise.assert_bitwise_equal(a, b)


def test_bfloat16_cache_close_to_apply():
  cfg, params, tokens = _setup(dtype="bfloat16")
  assert decoding.init_cache(cfg, 2)["block_1"]["cached_value"].dtype == jnp.bfloat16
  want = jax.jit(model.make_apply(cfg))(params, tokens)
  got = jax.jit(decoding.decode_all, static_argnums=2)(params, tokens, cfg)
  err, differ = _compare(want, got)
  rel = bitwise.max_relative_error(want, got)
  print(f"bfloat16: max |cached - apply| = {err:.3g}, relative to max|logit| {rel:.3g} (tolerance {BF16_REL_TOL});"
        f" {differ}/{want.size} logits differ in bits")
  assert rel <= BF16_REL_TOL


def test_errors_name_the_culprit():
  cfg, params, tokens = _setup(seq_len=8)
  cache = decoding.init_cache(cfg, 3)
  with pytest.raises(ValueError, match=r"position 8 is outside the context \[0, 8\)"):
    decoding.decode_step(params, cache, tokens[:, 0], 8, cfg)
  want = r"cache\['block_0'\]\['cached_key'\] has shape \(3, 8, 4, 8\), expected \(2, 8, 4, 8\)"
  with pytest.raises(ValueError, match=want):
    decoding.decode_step(params, cache, tokens[:2, 0], 0, cfg)
  with pytest.raises(ValueError, match="integer array"):
    decoding.decode_step(params, cache, jnp.zeros(3), 0, cfg)
  with pytest.raises(ValueError, match="cache does not match config"):
    decoding.decode_step(params, {"block_0": cache["block_0"]}, tokens[:, 0], 0, cfg)
  other = model.ModelConfig(num_layers=2, width=32, num_heads=4, seq_len=16)
  with pytest.raises(ValueError, match=r"pos_embed'\] has shape \(8, 32\)"):
    decoding.decode_step(params, decoding.init_cache(other, 3), tokens[:, 0], 0, other)
  with pytest.raises(ValueError, match="batch_size must be >= 1"):
    decoding.init_cache(cfg, 0)


def test_training_and_cached_paths_call_the_one_registered_implementation(monkeypatch):
  """A kernel registered once in model.ATTENTION_IMPLS serves model.apply and decode_step alike."""
  cfg, params, tokens = _setup(seq_len=4, attention="einsum")
  calls = []

  def recording(q, k, v, mask):
    calls.append((q.shape[1], k.shape[1], mask.shape))
    return model.einsum_attention(q, k, v, mask)

  monkeypatch.setitem(model.ATTENTION_IMPLS, "einsum", recording)
  model.apply(params, tokens, cfg)
  print("model.apply's attention calls (T, S, mask shape):", calls)
  assert calls == [(4, 4, (3, 1, 4, 4))] * cfg.num_layers
  calls.clear()
  decoding.decode_step(params, decoding.init_cache(cfg, 3), tokens[:, 0], 0, cfg)
  print("decode_step's (cache shapes traced too):", calls)
  assert calls and set(calls) == {(1, 4, (3, 1, 1, 4))}
