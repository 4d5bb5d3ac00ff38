r"""One training stack for every model in the package: state, optimizer, the pure train step.

The LM and classification runs (``jaxequiv.lm.train``), the image heads
(``jaxequiv.labels``), the taxonomy and roles experiments and ``jaxequiv.verify``
all train with these functions:

* ``TrainState(step, params, opt_state)``: everything a step changes (a pytree);
* ``OptimizerConfig`` / ``make_optimizer``: AdamW with linear warm-up and
  cosine decay, after optional global-norm clipping;
* ``make_train_step(loss_fn, optimizer, has_aux=False)``: the pure
  ``train_step(state, batch) -> (state, {"loss", "grad_norm"[, "aux"]})`` for
  any ``loss_fn(params, batch)`` and any batch pytree (keys included);
* ``jit_train_step(step, steps_per_call=K)``: the one driver of every pure
  ``step(state, batch) -> (state, metrics)`` in the package (this one, a GAN's
  two-player step, JEM's SGLD step, a ``jax.vmap`` of one over seeds):
  ``jax.jit`` with the state's buffers donated, so a step updates params and
  optimizer state in place instead of holding two copies; K > 1 steps per
  dispatch in one ``lax.scan``;
* ``vmap_train_step``: a step over many seeds at once (counters shared);
* ``check_finite``: the loop's guard; a non-finite loss or gradient norm
  raises ``NonFiniteLossError`` naming the step.

.. math:: \theta_{k+1} = \theta_k - \eta_k\,\mathrm{AdamW}\bigl(\mathrm{clip}(\nabla_\theta L(\theta_k; B_k))\bigr)

Examples:
  >>> import jax, jax.numpy as jnp
  >>> from jaxequiv import training
  >>> loss_fn = lambda p, b: jnp.mean((p["w"] * b - 1.0) ** 2)
  >>> opt = training.make_optimizer(training.OptimizerConfig(steps=10, learning_rate=0.1, warmup_steps=0))
  >>> state = training.init_train_state({"w": jnp.zeros(3)}, opt)
  >>> step = training.jit_train_step(training.make_train_step(loss_fn, opt))
  >>> state, metrics = step(state, jnp.ones(3))
  >>> int(state.step), float(metrics["loss"])
  (1, 1.0)
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxequiv.configs import OptimizerConfig  # defined there, importable without JAX


class NonFiniteLossError(RuntimeError):
  """Training produced a non-finite loss or gradient norm. One-line message naming the step."""


class TrainState(NamedTuple):
  """Everything a step changes. A pytree, so ``jax.jit`` and checkpoints take it."""

  step: jax.Array   # int32 scalar: steps taken.
  params: Any       # model parameters (float32).
  opt_state: Any    # optax state.


def make_schedule(cfg: Any) -> optax.Schedule:
  """Linear warm-up to ``learning_rate``, then cosine decay to ``end_lr_fraction`` of it at ``steps``."""
  return optax.warmup_cosine_decay_schedule(
      init_value=0.0, peak_value=cfg.learning_rate, warmup_steps=min(cfg.warmup_steps, cfg.steps - 1),
      decay_steps=cfg.steps, end_value=cfg.learning_rate * cfg.end_lr_fraction)


def _decay_mask(params):
  return jax.tree.map(lambda p: p.ndim >= 2, params)


def make_optimizer(cfg: Any) -> optax.GradientTransformation:
  r"""AdamW with the warm-up + cosine schedule, after global-norm gradient clipping.

  ``optax.chain(clip_by_global_norm(clip_norm), adamw(schedule, b1, b2, eps,
  weight_decay, mask=ndim >= 2))``: biases and LayerNorm scales are not decayed.

  Args:
    cfg: an ``OptimizerConfig``, or any object with its fields.

  Returns:
    The optax transformation.
  """
  adamw = optax.adamw(make_schedule(cfg), b1=cfg.b1, b2=cfg.b2, eps=cfg.eps,
                      weight_decay=cfg.weight_decay, mask=_decay_mask)
  if cfg.clip_norm:
    return optax.chain(optax.clip_by_global_norm(cfg.clip_norm), adamw)
  return adamw


def init_train_state(params: Any, optimizer: optax.GradientTransformation) -> TrainState:
  """``TrainState`` at step 0 for ``params``."""
  return TrainState(jnp.zeros((), jnp.int32), params, optimizer.init(params))


def make_train_step(loss_fn: Callable[..., Any], optimizer: optax.GradientTransformation, *,
                    has_aux: bool = False) -> Callable[[TrainState, Any], tuple[TrainState, dict[str, Any]]]:
  r"""The pure ``train_step(state, batch) -> (state, metrics)``; jit it with ``jit_train_step``.

  One step: :math:`g = \nabla_\theta L(\theta; B)`, ``updates, opt_state =
  optimizer.update(g, opt_state, params)``, :math:`\theta \leftarrow \theta + \text{updates}`.
  Randomness is data: pass a key as (part of) ``batch`` (``jax.random.split(key, K)``
  for K steps), so the step stays pure. A step with more state than one model
  (a GAN's two players, JEM's SGLD buffer) is a custom pure step that calls one
  ``train_step`` per model, e.g. ``jaxequiv.roles.gan.train_step``.

  Args:
    loss_fn: ``loss(params, batch) -> scalar``, or ``-> (scalar, aux)`` with
      ``has_aux``; ``batch`` is any pytree (keys included).
    optimizer: e.g. ``make_optimizer(cfg)`` or any optax transformation.
    has_aux: ``loss_fn`` also returns a pytree of extra outputs (at the params
      before the update), returned as ``metrics["aux"]``.

  Returns:
    ``train_step``; metrics are ``{"loss", "grad_norm"}`` (the norm before
    clipping), plus ``"aux"`` with ``has_aux``.

  Examples:
    >>> import jax.numpy as jnp, optax
    >>> loss_fn = lambda p, b: (jnp.sum((p - b) ** 2), {"p0": p[0]})
    >>> opt = optax.sgd(0.25)
    >>> step = make_train_step(loss_fn, opt, has_aux=True)
    >>> state, m = step(init_train_state(jnp.zeros(2), opt), jnp.ones(2))
    >>> state.params.tolist(), float(m["loss"]), float(m["aux"]["p0"])
    ([0.5, 0.5], 2.0, 0.0)
  """

  def train_step(state: TrainState, batch: Any) -> tuple[TrainState, dict[str, Any]]:
    out, grads = jax.value_and_grad(loss_fn, has_aux=has_aux)(state.params, batch)
    updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    loss, aux = out if has_aux else (out, None)
    metrics = {"loss": loss, "grad_norm": optax.tree.norm(grads)}
    if has_aux:
      metrics["aux"] = aux
    return TrainState(state.step + 1, params, opt_state), metrics

  return train_step


def vmap_train_step(train_step: Callable[[Any, Any], tuple[Any, Any]], state: Any) -> Callable[[Any, Any], tuple[Any, Any]]:
  """``jax.vmap(train_step)`` over many runs (seeds) at once, for ``jit_train_step``.

  Every non-scalar leaf of ``state`` and of the batch carries the runs on its
  leading axis; scalar leaves (the step count, Adam's ``count``: the same for
  every run) stay unbatched. Build ``state`` as
  ``init_train_state(params_S, optimizer)`` from vmapped params. Sharing the
  counts matters for bits, not only memory: it is what ``jax.vmap`` of a whole
  run gives, and a per-run count makes XLA evaluate Adam's bias correction
  ``1 - b**count`` as a vector, which rounds differently from the scalar on CPU
  (measured: 1,947 of 11,392 final reductio params differed after 5 steps).

  Args:
    train_step: pure ``(state, batch) -> (state, metrics)`` of one run.
    state: the batched state (only its structure and leaf ranks are used).

  Returns:
    ``step(state_S, batch_S) -> (state_S, metrics_S)``.

  Examples:
    >>> import jax.numpy as jnp, optax
    >>> opt = optax.adam(0.1)
    >>> state = init_train_state(jnp.zeros((3, 2)), opt)  # 3 runs of 2 params
    >>> step = vmap_train_step(make_train_step(lambda p, b: jnp.sum((p - b) ** 2), opt), state)
    >>> state, m = jit_train_step(step)(state, jnp.ones((3, 2)))
    >>> state.params.shape, state.step.shape, m["loss"].shape
    ((3, 2), (), (3,))
  """
  axes = jax.tree.map(lambda x: None if jnp.ndim(x) == 0 else 0, state)
  return jax.vmap(train_step, in_axes=(axes, 0), out_axes=(axes, 0))


def _leading_axis_error(batch: Any, k: int) -> str | None:
  for path, leaf in jax.tree_util.tree_leaves_with_path(batch):
    shape = jnp.shape(leaf)
    if not shape or shape[0] != k:
      return (f"steps_per_call={k} needs every batch leaf to have a leading axis of {k} (one slice per step),"
              f" but batch{jax.tree_util.keystr(path)} has shape {tuple(shape)}")
  return None


def jit_train_step(train_step: Callable[[Any, Any], tuple[Any, Any]], *, donate: bool = True,
                   steps_per_call: int = 1, **jit_kwargs) -> Callable[[Any, Any], tuple[Any, Any]]:
  r"""THE driver: ``jax.jit`` of any pure ``train_step(state, batch) -> (state, metrics)``, state donated.

  With ``steps_per_call = K > 1`` one dispatch runs K steps in a ``lax.scan``:

  .. math:: (s_{k+1}, m_k) = \mathrm{step}(s_k, B_k),\quad k = 0..K-1;
     \quad \mathrm{call}(s_0, B_{0:K}) = (s_K, m_{0:K})

  where ``B_{0:K}`` is the batch pytree with a leading K axis on every leaf
  (e.g. K split keys, K index rows) and the metrics come back stacked along K.
  A step that needs no batch (full-batch training closed over by the loss)
  takes ``batch=None``, and then K is the scan length. K steps per dispatch
  cut Python and dispatch overhead for small models; for the same batches the
  final state is the same as K single dispatches (``tests/training_test.py``
  compares the raw bits).

  After ``state, m = step(state, batch)`` the old state's arrays are deleted
  (donated: updated in place): keep only the returned state, and do not pass
  arrays you still need (copy them, ``jax.tree.map(jnp.copy, params)``, or
  use ``donate=False``).

  Args:
    train_step: pure ``(state, batch) -> (state, metrics)``, e.g.
      ``make_train_step(loss_fn, optimizer)``, or ``vmap_train_step`` of one
      (many seeds at once).
    donate: donate the state's buffers (``donate_argnums=0``).
    steps_per_call: K, the steps run per call (``lax.scan``) when > 1.
    **jit_kwargs: passed to ``jax.jit`` (e.g. ``out_shardings=(rep, rep)`` for
      data parallelism, see ``jaxequiv.lm.parallel``).

  Returns:
    The jitted ``call(state, batch) -> (state, metrics)``.

  Raises:
    ValueError: ``steps_per_call < 1``, or (when called) a batch leaf without
      the leading K axis.

  Examples:
    >>> import jax.numpy as jnp, optax
    >>> opt = optax.sgd(0.5)
    >>> step = make_train_step(lambda p, b: jnp.sum((p - b) ** 2), opt)
    >>> run4 = jit_train_step(step, steps_per_call=4)
    >>> state, m = run4(init_train_state(jnp.zeros(2), opt), jnp.ones((4, 2)))
    >>> state.params.tolist(), m["loss"].shape, int(state.step)
    ([1.0, 1.0], (4,), 4)
  """
  if isinstance(steps_per_call, bool) or not isinstance(steps_per_call, numbers.Integral) or steps_per_call < 1:
    raise ValueError(f"steps_per_call must be an int >= 1, got {steps_per_call!r}")
  k = int(steps_per_call)
  if k == 1:
    fn = train_step
  else:
    def fn(state, batch):
      if not jax.tree.leaves(batch):
        return jax.lax.scan(train_step, state, batch, length=k)
      error = _leading_axis_error(batch, k)
      if error:
        raise ValueError(error)
      return jax.lax.scan(train_step, state, batch)
  return jax.jit(fn, donate_argnums=0 if donate else (), **jit_kwargs)


def check_finite(first_step: int, metrics: Sequence[Mapping[str, Any]]) -> None:
  """Raises ``NonFiniteLossError`` naming the first step whose loss or gradient norm is not finite.

  Args:
    first_step: the step number (1-based: steps taken after it) of ``metrics[0]``.
    metrics: host values, one mapping per consecutive step.
  """
  for i, m in enumerate(metrics):
    for name in ("loss", "grad_norm"):
      if name in m and not math.isfinite(float(m[name])):
        raise NonFiniteLossError(f"{name} became {float(m[name])} at step {first_step + i}; training stopped")
