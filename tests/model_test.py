import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxequiv
from jaxequiv import alphabet, bitwise, model

CFG = model.ModelConfig(num_layers=2, width=32, num_heads=4, seq_len=12)


def _tokens(seed=0, r=3, t=12):
  return jax.random.randint(jax.random.key(seed), (r, t), 0, alphabet.INPUT_VOCAB)


@pytest.mark.parametrize("activation", ["relu", "tanh", "gelu"])
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_logits_shape_dtype_and_finite(activation, dtype):
  cfg = model.ModelConfig(num_layers=1, width=32, num_heads=2, seq_len=12, activation=activation, dtype=dtype)
  params = model.init(jax.random.key(0), cfg)
  assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(params)), "params stay float32"
  logits = jax.jit(model.make_apply(cfg))(params, _tokens())
  assert logits.shape == (3, 12, 64) and logits.dtype == jnp.float32
  assert bool(jnp.all(jnp.isfinite(logits)))


def test_shorter_rows_than_context_are_allowed():
  params = model.init(jax.random.key(0), CFG)
  assert model.apply(params, _tokens(t=5), CFG).shape == (3, 5, 64)


def _embedding_grads(params, tokens, t, cfg=CFG):
  """d sum(logits[:, t]) / d input embeddings [B, T, D], probed with flax's ``perturb``."""
  net = model.Transformer(cfg)
  perturbations = net.init(jax.random.key(0), tokens)["perturbations"]

  def f(perturbations):
    return net.apply({"params": params, "perturbations": perturbations}, tokens)[:, t].sum()

  return jax.jit(jax.grad(f))(perturbations)["embeddings"]


@pytest.mark.parametrize("t", [0, 5, 11])
def test_causality_through_gradients(t):
  """d logits[:, t] / d input[:, s] is zero exactly for s > t, and nonzero for s <= t."""
  params = model.init(jax.random.key(1), CFG)
  tokens = _tokens(2).at[:, 0].set(alphabet.BOS).at[:, 1:].set(_tokens(2)[:, 1:] % 64)  # one segment per row
  per_pos = np.asarray(jnp.abs(_embedding_grads(params, tokens, t)).sum(axis=(0, 2)))
  print(f"t={t}: per-position |grad| {per_pos}")
  assert np.all(bitwise.bits(per_pos[t + 1:]) == 0), per_pos
  assert np.all(per_pos[: t + 1] > 0), per_pos


def test_segments_do_not_see_each_other():
  """In a packed row, logits of segment 2 have exactly zero gradient w.r.t. segment 1's embeddings, and vice versa."""
  params = model.init(jax.random.key(1), CFG)
  row = [alphabet.BOS, 7, 8, 9, alphabet.BOS, 3, 4, 5, 6, alphabet.BOS, 1, alphabet.PAD]
  tokens = jnp.array([row], jnp.int32)
  g = np.asarray(jnp.abs(_embedding_grads(params, tokens, 7)).sum(axis=(0, 2)))  # a query in segment 2 (4..8)
  print("per-position |grad| of logits[7]:", g)
  assert np.all(bitwise.bits(g[:4]) == 0) and np.all(bitwise.bits(g[8:]) == 0), g
  assert np.all(g[4:8] > 0), g


def test_packed_row_logits_equal_one_sentence_rows():
  """Segments restart positions and attend only to themselves: a packed row's logits equal each sentence's own row.

  Tolerance 1e-5 absolute (float32; the two programs differ in shape, so their sums may round differently).
  """
  params = model.init(jax.random.key(3), CFG)
  a, b = [alphabet.BOS, 7, 8, 9], [alphabet.BOS, 3, 4, 5, 6, 1]
  packed = jnp.array([a + b + [alphabet.PAD] * 2], jnp.int32)
  single = jnp.array([a + [alphabet.PAD] * 8, b + [alphabet.PAD] * 6], jnp.int32)
  apply = jax.jit(model.make_apply(CFG))
  lp, ls = apply(params, packed), apply(params, single)
  err = max(float(jnp.abs(lp[0, :4] - ls[0, :4]).max()), float(jnp.abs(lp[0, 4:10] - ls[1, :6]).max()))
  print(f"max |packed - single| = {err:.3g} (tolerance 1e-5)")
  assert err < 1e-5
  # Negative control: without the BOS that starts segment 2, its logits see segment 1 and differ.
  joined = packed.at[0, 4].set(alphabet.PAD)
  assert float(jnp.abs(apply(params, joined)[0, 5:10] - ls[1, 1:6]).max()) > 1e-3


def test_segments_and_positions():
  seg, pos = model.segments(jnp.array([[alphabet.BOS, 1, 2, alphabet.BOS, 4, alphabet.PAD], [5, 6, alphabet.BOS, 1, 2, 3]]))
  assert seg.tolist() == [[1, 1, 1, 2, 2, 2], [0, 0, 1, 1, 1, 1]]
  assert pos.tolist() == [[0, 1, 2, 0, 1, 2], [0, 1, 0, 1, 2, 3]]


def test_no_key_bias_and_no_test_hook():
  """The key bias is gone (its true gradient is exactly zero); q and v keep theirs."""
  params = model.init(jax.random.key(0), CFG)
  assert set(params["block_0"]["qkv"]) == {"kernel"}
  assert params["block_0"]["qv_bias"].shape == (2, CFG.num_heads, CFG.width // CFG.num_heads)
  with pytest.raises(TypeError):
    model.Transformer(CFG).apply({"params": params}, _tokens(), jnp.zeros((3, 12, CFG.width)))


@pytest.mark.parametrize("dtype,tol", [("float32", 1e-5), ("bfloat16", 5e-2)])
def test_attention_implementations_agree(dtype, tol):
  """einsum vs jax.nn.dot_product_attention (xla): same maths; tolerance 1e-5 (f32) / 5e-2 (bf16) absolute on logits."""
  cfgs = {impl: model.ModelConfig(num_layers=2, width=32, num_heads=4, seq_len=12, dtype=dtype, attention=impl)
          for impl in ("einsum", "xla")}
  params = model.init(jax.random.key(0), cfgs["einsum"])
  tokens = jnp.array([[alphabet.BOS, 7, 8, 9, alphabet.BOS, 3, 4, 5, 6, 1, alphabet.PAD, alphabet.PAD]] * 2, jnp.int32)
  out = {impl: jax.jit(model.make_apply(c))(params, tokens) for impl, c in cfgs.items()}
  err = float(jnp.abs(out["einsum"] - out["xla"]).max())
  print(f"{dtype}: max |einsum - xla| = {err:.3g} (tolerance {tol})")
  assert err < tol


def test_init_is_deterministic_and_seed_dependent():
  a, b = model.init(jax.random.key(7), CFG), model.init(jax.random.key(7), CFG)
  bitwise.assert_bitwise_equal(a, b)
  c = model.init(jax.random.key(8), CFG)
  assert not bitwise.compare_bits(a, c).equal


def test_config_errors_name_the_field():
  with pytest.raises(ValueError, match="activation must be one of"):
    model.ModelConfig(activation="swish")
  with pytest.raises(ValueError, match="dtype must be one of"):
    model.ModelConfig(dtype="float16")
  with pytest.raises(ValueError, match="width 30 is not divisible by num_heads 4"):
    model.ModelConfig(width=30, num_heads=4)
  with pytest.raises(ValueError, match="attention must be one of"):
    model.ModelConfig(attention="flash")


def test_token_shape_and_dtype_errors():
  params = model.init(jax.random.key(0), CFG)
  with pytest.raises(ValueError, match=r"shape \[R, T\], got shape \(12,\)"):
    model.apply(params, jnp.zeros(12, jnp.int32), CFG)
  with pytest.raises(ValueError, match="must be integers, got dtype float32"):
    model.apply(params, jnp.zeros((2, 12), jnp.float32), CFG)
  with pytest.raises(ValueError, match="T=13 positions, more than the model's seq_len=12"):
    model.apply(params, jnp.zeros((2, 13), jnp.int32), CFG)


def test_top_level_exports():
  for name in ["init", "lm_nll", "classification_xent", "prefix_examples", "pack", "unpacked", "encode", "decode",
               "normalize", "ModelConfig", "make_apply", "lm_batch", "canonical_order"]:
    assert callable(getattr(jaxequiv, name)), name


def test_attention_registry_and_the_auto_rule():
  assert model.ATTENTION == ("auto", *model.ATTENTION_IMPLS) == ("auto", "einsum", "xla", "cudnn")
  assert [model.resolve_attention("auto", b) for b in ("cpu", "gpu", "tpu")] == ["einsum", "xla", "xla"]
  assert model.resolve_attention("cudnn", "cpu") == "cudnn"
  want = "einsum" if jax.default_backend() == "cpu" else "xla"
  assert model.resolve_attention("auto") == want


def test_masks():
  seg = jnp.array([[1, 1, 2, 2]])
  m = model.attention_mask(4, seg)[0, 0]
  assert m.astype(int).tolist() == [[1, 0, 0, 0], [1, 1, 0, 0], [0, 0, 1, 0], [0, 0, 1, 1]]
  # cache_mask at position 3 with the segment started at slot 2 is attention_mask's row 3 (slots > 3 unseen).
  c = model.cache_mask(6, 3, jnp.array([2, 0]))
  assert c.shape == (2, 1, 1, 6)
  assert c[:, 0, 0].astype(int).tolist() == [[0, 0, 1, 1, 0, 0], [1, 1, 1, 1, 0, 0]]


def test_decode_mode_takes_one_position():
  params = model.init(jax.random.key(0), CFG)
  cache = {}
  with pytest.raises(ValueError, match=r"decode=True takes tokens \[B, 1\] and a position, got shape \(3, 2\)"):
    model.Transformer(CFG, decode=True).apply({"params": params, "cache": cache}, _tokens(t=2), position=0,
                                              mutable=["cache"])
