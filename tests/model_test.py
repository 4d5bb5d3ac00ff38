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


@pytest.mark.parametrize("t", [0, 5, 11])
def test_causality_through_gradients(t):
  """d logits[:, t] / d input[:, s] is zero exactly for s > t, and nonzero for s <= t."""
  params = model.init(jax.random.key(1), CFG)
  tokens = _tokens(2)
  net = model.Transformer(CFG)

  def f(delta):
    return net.apply({"params": params}, tokens, delta)[:, t].sum()

  g_BxTxD = jax.grad(f)(jnp.zeros((3, 12, CFG.width)))
  per_pos = np.asarray(jnp.abs(g_BxTxD).sum(axis=(0, 2)))
  assert np.all(bitwise.bits(per_pos[t + 1:]) == 0), per_pos
  assert np.all(per_pos[: t + 1] > 0), per_pos


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
