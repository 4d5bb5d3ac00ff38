r"""A "tangential" model is a "sigmoidal" one: tanh MLPs are sigmoid MLPs with rescaled parameters.

Since :math:`\tanh(z) = 2\sigma(2z) - 1`, write each tanh hidden layer as
:math:`h_l = 2 s_l - 1` with :math:`s_l = \sigma(2 z_l)`. Substituting into the
next pre-activation :math:`z_{l+1} = h_l W_{l+1} + b_{l+1}` gives

.. math:: z_{l+1} = s_l (2 W_{l+1}) + (b_{l+1} - \mathbf{1} W_{l+1}),

so the sigmoid network with

* first layer :math:`(2 W_1, 2 b_1)`,
* hidden layers :math:`(4 W_l, 2 (b_l - \mathbf{1} W_l))` for :math:`l \ge 2`,
* linear output layer :math:`(2 W_L, b_L - \mathbf{1} W_L)`

computes exactly the same function. The map is invertible (``sigmoid_to_tanh``).
"""

from __future__ import annotations

import jax.numpy as jnp

from jaxequiv.roles.mlp import Layers


def tanh_to_sigmoid(layers: Layers) -> Layers:
  """Parameters of the sigmoid MLP that computes the same function as the tanh MLP ``layers``.

  Args:
    layers: tanh MLP parameters (``roles.mlp`` layout), at least one layer.

  Returns:
    Sigmoid MLP parameters of the same shapes.

  Examples:
    >>> import jax, jax.numpy as jnp
    >>> from jaxequiv.roles import mlp, reparam
    >>> layers = mlp.init_mlp(jax.random.key(0), [2, 16, 16, 1])
    >>> x = jax.random.normal(jax.random.key(1), (8, 2))
    >>> a = mlp.mlp_apply(layers, x, "tanh")
    >>> b = mlp.mlp_apply(reparam.tanh_to_sigmoid(layers), x, "sigmoid")
    >>> bool(jnp.max(jnp.abs(a - b)) < 1e-5)
    True
  """
  if not layers:
    raise ValueError("layers must hold at least one layer")
  out = []
  for i, layer in enumerate(layers):
    w, b = layer["w"], layer["b"]
    w_scale = 2.0 if i == 0 else 4.0  # input layer sees x; later layers see s = (h + 1) / 2
    b_new = b if i == 0 else b - jnp.sum(w, axis=0)
    if i == len(layers) - 1:  # the linear output layer is not pre-scaled by 2
      w_scale, b_scale = w_scale / 2.0, 1.0
    else:
      b_scale = 2.0
    out.append({"w": w_scale * w, "b": b_scale * b_new})
  return out


def sigmoid_to_tanh(layers: Layers) -> Layers:
  """The inverse map: tanh MLP parameters computing the same function as a sigmoid MLP."""
  if not layers:
    raise ValueError("layers must hold at least one layer")
  out = []
  for i, layer in enumerate(layers):
    w, b = layer["w"], layer["b"]
    last = i == len(layers) - 1
    w_scale = (2.0 if i == 0 else 4.0) / (2.0 if last else 1.0)
    b_scale = 1.0 if last else 2.0
    w_old = w / w_scale
    b_old = b / b_scale
    if i > 0:
      b_old = b_old + jnp.sum(w_old, axis=0)
    out.append({"w": w_old, "b": b_old})
  return out
