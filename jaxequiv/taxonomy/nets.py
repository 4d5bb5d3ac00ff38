"""Small pure networks and a generic optax training loop for the taxonomy experiments.

Parameters are plain pytrees (lists of ``{"w", "b"}`` dicts); every function is
pure and jit-able. Nothing here is specific to one task.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

Params = Any


def mlp_init(key: jax.Array, sizes: Sequence[int], scale: float = 1.0) -> list[dict[str, jax.Array]]:
  """He-initialised dense layers ``sizes[0] -> .. -> sizes[-1]`` (biases zero)."""
  if len(sizes) < 2:
    raise ValueError(f"sizes needs at least an input and an output size, got {list(sizes)}")
  keys = jax.random.split(key, len(sizes) - 1)
  return [{"w": scale * jax.random.normal(k, (a, b)) * np.sqrt(2.0 / a), "b": jnp.zeros((b,))}
          for k, a, b in zip(keys, sizes[:-1], sizes[1:])]


def mlp_apply(layers: Sequence[dict[str, jax.Array]], x: jax.Array, final_act: bool = False) -> jax.Array:
  """``relu`` MLP on the last axis; no activation after the last layer unless ``final_act``."""
  for i, layer in enumerate(layers):
    x = x @ layer["w"] + layer["b"]
    if i < len(layers) - 1 or final_act:
      x = jax.nn.relu(x)
  return x


def fit(loss_fn: Callable[[Params, Any], jax.Array], params: Params, batches: Callable[[int], Any], steps: int,
        learning_rate: float = 3e-3, weight_decay: float = 1e-4) -> tuple[Params, list[float]]:
  """Runs ``steps`` AdamW steps (cosine decay) of ``loss_fn(params, batch)``; returns params and the losses.

  Args:
    loss_fn: pure scalar loss.
    params: initial pytree.
    batches: ``batches(step) -> batch`` (numpy or jax arrays of fixed shapes).
    steps: number of updates.
    learning_rate: peak rate; cosine-decayed to 0.
    weight_decay: AdamW decoupled weight decay.
  """
  opt = optax.adamw(optax.cosine_decay_schedule(learning_rate, max(steps, 1)), weight_decay=weight_decay)

  @jax.jit
  def step(p, s, batch):
    loss, g = jax.value_and_grad(loss_fn)(p, batch)
    u, s = opt.update(g, s, p)
    return optax.apply_updates(p, u), s, loss

  state, losses = opt.init(params), []
  for i in range(steps):
    params, state, loss = step(params, state, batches(i))
    losses.append(loss)
  return params, [float(x) for x in jax.device_get(losses)]


def minibatches(rng: np.random.Generator, n: int, batch_size: int, *arrays: np.ndarray) -> Callable[[int], tuple]:
  """``batches(step)``: i.i.d. rows (with replacement) of ``arrays``, ``batch_size`` at a time."""
  idx = rng.integers(0, n, size=(1 << 16, batch_size))
  return lambda i: tuple(a[idx[i % len(idx)]] for a in arrays)
