r"""A maxout MLP (Goodfellow et al., 2013): PacGAN's discriminator, in ``roles.mlp``'s parameter format.

A hidden maxout layer with ``pieces`` = P and width H is a linear map to ``H * P`` units followed by a maximum over each
unit's P pieces, :math:`h_j = \max_{p < P} (x W + b)_{jP + p}`; the last layer is linear. The parameters are the same
list of ``{"w", "b"}`` layers as ``roles.mlp`` (a hidden layer's ``w`` is ``[in, H * P]``), so ``roles.reparam``
and the optimisers treat both alike. PacGAN's official code uses blocks' ``LinearMaxout`` with 5 pieces and 200 units.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp

from jaxequiv.roles import mlp


def init_maxout(key: jax.Array, sizes: Sequence[int], pieces: int, scale: float = 1.0) -> mlp.Layers:
  """LeCun-normal maxout MLP with layer sizes ``[d_in, h_1, ..., d_out]`` and ``pieces`` per hidden unit.

  Examples:
    >>> import jax
    >>> from jaxequiv.roles import maxout
    >>> [l["w"].shape for l in maxout.init_maxout(jax.random.key(0), [4, 3, 3, 1], pieces=5)]
    [(4, 15), (3, 15), (3, 1)]
  """
  sizes = list(sizes)
  if pieces < 1 or len(sizes) < 2 or any(int(s) < 1 for s in sizes):
    raise ValueError(f"maxout needs pieces >= 1 and sizes of at least two positive ints, got {pieces}, {sizes}")
  keys = jax.random.split(key, len(sizes) - 1)
  outs = [h * pieces for h in sizes[1:-1]] + [sizes[-1]]
  return [mlp.init_mlp(k, [a, b], scale)[0] for k, a, b in zip(keys, sizes[:-1], outs)]


def maxout_apply(layers: mlp.Layers, x_BxD: jax.Array, pieces: int) -> jax.Array:
  r"""``h_{l+1} = max over pieces of (h_l W_l + b_l)`` for hidden layers; the last layer is linear.

  With ``pieces = 1`` this is a linear network (the identity activation).

  Examples:
    >>> import jax, jax.numpy as jnp
    >>> from jaxequiv.roles import maxout
    >>> layers = maxout.init_maxout(jax.random.key(0), [2, 8, 1], pieces=5)
    >>> maxout.maxout_apply(layers, jnp.ones((3, 2)), pieces=5).shape
    (3, 1)
  """
  if x_BxD.ndim != 2 or x_BxD.shape[1] != layers[0]["w"].shape[0]:
    raise ValueError(f"x must have shape [B, {layers[0]['w'].shape[0]}], got {x_BxD.shape}")
  h = x_BxD
  for layer in layers[:-1]:
    z = h @ layer["w"] + layer["b"]
    h = jnp.max(z.reshape(z.shape[0], -1, pieces), axis=-1)
  return h @ layers[-1]["w"] + layers[-1]["b"]
