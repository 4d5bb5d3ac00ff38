"""tanh(x) = 2 sigmoid(2x) - 1: a tanh MLP equals a sigmoid MLP with rescaled weights and biases (jit, float32)."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from jaxequiv.roles import mlp, reparam

# float32 tolerance: |tanh_net - sigmoid_net| <= 1e-5 * (1 + max|out|) * depth. Rounding enters once per layer
# (a few ulp of the pre-activations, ~1e-7 relative) and is amplified by the weights; measured max is ~1e-6 here.
TOL = 1e-5


@functools.partial(jax.jit, static_argnums=2)
def _both(layers, x, act_pair=("tanh", "sigmoid")):
  return mlp.mlp_apply(layers, x, act_pair[0]), mlp.mlp_apply(reparam.tanh_to_sigmoid(layers), x, act_pair[1])


@settings(max_examples=20, deadline=None)
@given(depth=st.sampled_from([1, 3]), width=st.sampled_from([1, 32]), seed=st.integers(0, 2**16))
def test_tanh_mlp_equals_rescaled_sigmoid_mlp(depth, width, seed):
  k1, k2 = jax.random.split(jax.random.key(seed))
  layers = mlp.init_mlp(k1, [3] + [width] * (depth - 1) + [2], scale=1.5)
  layers = [{"w": l["w"], "b": l["b"] + 0.3} for l in layers]  # non-zero biases
  x = 2.0 * jax.random.normal(k2, (64, 3))
  a, b = _both(layers, x)
  err = float(jnp.max(jnp.abs(a - b)))
  bound = TOL * depth * (1.0 + float(jnp.max(jnp.abs(a))))
  print(f"depth {depth} width {width}: max |tanh - sigmoid| = {err:.2e} (bound {bound:.1e})")
  assert err <= bound


def test_round_trip_and_the_plain_swap_is_not_the_same_function():
  layers = mlp.init_mlp(jax.random.key(0), [4, 16, 16, 3])
  x = jax.random.normal(jax.random.key(1), (32, 4))
  back = reparam.sigmoid_to_tanh(reparam.tanh_to_sigmoid(layers))
  rt = max(float(jnp.max(jnp.abs(p - q))) for p, q in zip(jax.tree.leaves(back), jax.tree.leaves(layers)))
  print(f"round trip max param error {rt:.2e}")
  assert rt < 1e-6
  # Negative control: swapping the activation without rescaling changes the function.
  naive = jax.jit(lambda l, x: mlp.mlp_apply(l, x, "sigmoid"))(layers, x)
  tanh = jax.jit(lambda l, x: mlp.mlp_apply(l, x, "tanh"))(layers, x)
  assert float(jnp.max(jnp.abs(naive - tanh))) > 1e-2


def test_bad_input_names_the_culprit():
  with pytest.raises(ValueError, match="activation"):
    mlp.mlp_apply(mlp.init_mlp(jax.random.key(0), [2, 2]), jnp.ones((1, 2)), "swish")
  with pytest.raises(ValueError, match="layers"):
    reparam.tanh_to_sigmoid([])
  with pytest.raises(ValueError, match="x must have shape"):
    mlp.mlp_apply(mlp.init_mlp(jax.random.key(0), [2, 2]), jnp.ones((1, 3)))
