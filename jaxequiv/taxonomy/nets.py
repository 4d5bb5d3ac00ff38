"""Small pure networks and the taxonomy experiments' training loops (on ``jaxequiv.training``'s driver).

Parameters are plain pytrees (lists of ``{"w", "b"}`` dicts); every function is
pure and jit-able. Nothing here is specific to one task. The string heads (character
decoders) are the core transformer, in ``taxonomy.decoder``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxequiv import training

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
        learning_rate: float = 3e-3, weight_decay: float = 1e-4, steps_per_call: int = 25) -> tuple[Params, list[float]]:
  """Runs ``steps`` AdamW steps (cosine decay) of ``loss_fn(params, batch)``; returns params and the losses.

  Args:
    loss_fn: pure scalar loss.
    params: initial pytree (not modified).
    batches: ``batches(step) -> batch`` (numpy or jax arrays of fixed shapes).
    steps: number of updates.
    learning_rate: peak rate; cosine-decayed to 0.
    weight_decay: AdamW decoupled weight decay.
    steps_per_call: steps per dispatch (``training.jit_train_step``'s scan); the same bits as one step per
      dispatch (measured on the taxonomy experiments), fewer round trips.
  """
  opt = optax.adamw(optax.cosine_decay_schedule(learning_rate, max(steps, 1)), weight_decay=weight_decay)
  step = training.make_train_step(loss_fn, opt)
  run = functools.cache(lambda k: training.jit_train_step(step, steps_per_call=k))  # steps_per_call and a rest
  state, losses = training.init_train_state(jax.tree.map(jnp.copy, params), opt), []  # copy: the state is donated
  if steps_per_call < 1:
    raise ValueError(f"steps_per_call must be >= 1, got {steps_per_call}")
  for i in range(0, steps, steps_per_call):
    chunk = [batches(j) for j in range(i, min(i + steps_per_call, steps))]
    stacked = chunk[0] if len(chunk) == 1 else jax.tree.map(lambda *xs: np.stack(xs), *chunk)
    state, metrics = run(len(chunk))(state, stacked)
    losses.append(jnp.reshape(metrics["loss"], (-1,)))
  return state.params, [float(x) for x in np.concatenate(jax.device_get(losses))] if losses else []


def minibatches(rng: np.random.Generator, n: int, batch_size: int, *arrays: np.ndarray) -> Callable[[int], tuple]:
  """``batches(step)``: i.i.d. rows (with replacement) of ``arrays``, ``batch_size`` at a time."""
  idx = rng.integers(0, n, size=(1 << 16, batch_size))
  return lambda i: tuple(a[idx[i % len(idx)]] for a in arrays)


def fit_early_stopping(loss_fn: Callable[[Params, Any], jax.Array], params: Params, train_batch: Any,
                       val_batch: Any, steps: int, every: int = 25, learning_rate: float = 3e-3,
                       weight_decay: float = 1e-4, seeds: bool = False) -> tuple[Params, Any, Any]:
  """Full-batch AdamW on ``train_batch``; returns the params with the lowest ``loss_fn`` on ``val_batch``.

  Validation is checked every ``every`` steps (and at step 0). Returns ``(params, best_step, best_val_loss)``.
  With ``seeds=True``, every leaf of ``params`` and of both batches carries S independent runs on its leading
  axis: they train at once (``training.vmap_train_step``; AdamW is elementwise, so each run is its own), each
  stopped at its own best, and ``best_step``, ``best_val_loss`` are ``[S]`` numpy arrays.
  """
  lift = (lambda t: t) if seeds else (lambda t: jax.tree.map(lambda x: jnp.asarray(x)[None], t))  # noqa: E731
  params_S, train_S, val_S = lift(params), lift(train_batch), lift(val_batch)
  opt = optax.adamw(learning_rate, weight_decay=weight_decay)
  state = training.init_train_state(jax.tree.map(jnp.copy, params_S), opt)  # copy: the state is donated
  run_chunk = training.jit_train_step(training.vmap_train_step(training.make_train_step(loss_fn, opt), state),
                                      steps_per_call=every)   # ``every`` full-batch steps per dispatch
  chunk = jax.tree.map(lambda x: jnp.broadcast_to(x, (every, *jnp.shape(x))), train_S)
  val = jax.jit(jax.vmap(loss_fn))
  best_p, best_v = params_S, np.asarray(val(params_S, val_S))
  best_step = np.zeros(best_v.shape, np.int64)
  for i in range(every, steps + 1, every):
    state, _ = run_chunk(state, chunk)
    v = np.asarray(val(state.params, val_S))
    better = v < best_v
    if better.any():   # new arrays from jnp.where: the next chunk donates the state
      best_p = jax.tree.map(lambda b, n: jnp.where(better.reshape(-1, *[1] * (n.ndim - 1)), n, b), best_p, state.params)
      best_step, best_v = np.where(better, i, best_step), np.where(better, v, best_v)
  if seeds:
    return best_p, best_step, best_v
  return jax.tree.map(lambda x: x[0], best_p), int(best_step[0]), float(best_v[0])


def class_nll(scores_BxK: jax.Array, y_B: np.ndarray) -> float:
  """Mean test NLL ``-log_softmax(scores)[y]`` in nats per example (log-probs that already sum to 1 pass unchanged).

  Examples:
    >>> import numpy as np
    >>> round(class_nll(np.log([[0.5, 0.5], [0.25, 0.75]]), np.array([0, 1])), 4)   # -(log .5 + log .75) / 2
    0.4904
  """
  lp = jax.nn.log_softmax(jnp.asarray(scores_BxK, jnp.float32), axis=-1)
  return float(-jnp.mean(jnp.take_along_axis(lp, jnp.asarray(y_B)[:, None], 1)))
