"""One MLP class for every role: generator, discriminator, classifier, energy.

Parameters are a plain list of ``{"w": [in, out], "b": [out]}`` layers, so a
reparametrisation (``roles.reparam``) is a pure map over the list. Only the
widths and the loss a network sits in distinguish a "generator" from a
"discriminator" or a "classifier".
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp

Layers = list[dict[str, jax.Array]]

ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "relu": jax.nn.relu,
    "tanh": jnp.tanh,
    "sigmoid": jax.nn.sigmoid,
    "gelu": jax.nn.gelu,
    "leaky_relu": lambda x: jax.nn.leaky_relu(x, 0.2),
}


def _check_activation(activation: str) -> None:
  if activation not in ACTIVATIONS:
    raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")


def init_mlp(key: jax.Array, sizes: Sequence[int], scale: float = 1.0) -> Layers:
  """LeCun-normal weights and zero biases for an MLP with layer sizes ``sizes``.

  Args:
    key: PRNG key.
    sizes: ``[d_in, h_1, ..., d_out]``, at least two positive ints.
    scale: multiplies the weights' standard deviation ``1/sqrt(fan_in)``.

  Returns:
    A list of ``len(sizes) - 1`` layers ``{"w": [d_i, d_{i+1}], "b": [d_{i+1}]}`` (float32).

  Examples:
    >>> import jax
    >>> from jaxequiv.roles import mlp
    >>> [l["w"].shape for l in mlp.init_mlp(jax.random.key(0), [2, 8, 1])]
    [(2, 8), (8, 1)]
  """
  sizes = list(sizes)
  if len(sizes) < 2 or any(int(s) < 1 for s in sizes):
    raise ValueError(f"sizes must be at least two positive ints, got {sizes}")
  keys = jax.random.split(key, len(sizes) - 1)
  return [{"w": jax.random.normal(k, (a, b), jnp.float32) * (scale / a**0.5), "b": jnp.zeros((b,), jnp.float32)}
          for k, a, b in zip(keys, sizes[:-1], sizes[1:])]


def mlp_apply(layers: Layers, x_BxD: jax.Array, activation: str = "relu") -> jax.Array:
  r"""``h_{l+1} = act(h_l W_l + b_l)`` for hidden layers; the last layer is linear.

  Args:
    layers: parameters from ``init_mlp``.
    x_BxD: inputs ``[B, d_in]``.
    activation: a name in ``ACTIVATIONS``.

  Returns:
    Outputs ``[B, d_out]``.

  Examples:
    >>> import jax, jax.numpy as jnp
    >>> from jaxequiv.roles import mlp
    >>> layers = mlp.init_mlp(jax.random.key(0), [3, 5, 2])
    >>> mlp.mlp_apply(layers, jnp.ones((4, 3)), "tanh").shape
    (4, 2)
  """
  _check_activation(activation)
  if x_BxD.ndim != 2 or x_BxD.shape[1] != layers[0]["w"].shape[0]:
    raise ValueError(f"x must have shape [B, {layers[0]['w'].shape[0]}], got {x_BxD.shape}")
  act = ACTIVATIONS[activation]
  h = x_BxD
  for layer in layers[:-1]:
    h = act(h @ layer["w"] + layer["b"])
  return h @ layers[-1]["w"] + layers[-1]["b"]
