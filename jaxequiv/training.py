r"""One training stack for every model in the package: state, optimizer, the pure train step.

The LM and classification runs (``jaxequiv.lm.train``) and the image heads
(``jaxequiv.labels.heads``) all train with these functions:

* ``TrainState(step, params, opt_state)``: everything a step changes (a pytree);
* ``OptimizerConfig`` / ``make_optimizer``: AdamW with linear warm-up and
  cosine decay, after optional global-norm clipping;
* ``make_train_step(loss_fn, optimizer)``: the pure
  ``train_step(state, batch) -> (state, {"loss", "grad_norm"})`` for any
  ``loss_fn(params, batch)`` and any batch pytree;
* ``jit_train_step``: ``jax.jit`` of it with the state's buffers donated, so a
  step updates params and optimizer state in place instead of holding two copies;
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

import dataclasses
import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax


class NonFiniteLossError(RuntimeError):
  """Training produced a non-finite loss or gradient norm. One-line message naming the step."""


class TrainState(NamedTuple):
  """Everything a step changes. A pytree, so ``jax.jit`` and checkpoints take it."""

  step: jax.Array   # int32 scalar: steps taken.
  params: Any       # model parameters (float32).
  opt_state: Any    # optax state.


@dataclasses.dataclass(frozen=True)
class OptimizerConfig:
  """AdamW with warm-up + cosine decay and clipping. Frozen and hashable.

  Attributes:
    steps: the schedule's length (total optimizer steps).
    learning_rate: peak learning rate, reached after ``warmup_steps``.
    warmup_steps: linear warm-up from 0 (at most ``steps - 1`` are used).
    end_lr_fraction: the cosine ends at ``end_lr_fraction * learning_rate``
      (1.0: constant after warm-up).
    weight_decay: decoupled weight decay on matrices (ndim >= 2) only.
    clip_norm: clip gradients to this global L2 norm (None or 0: no clipping).
    b1, b2, eps: Adam moments.
  """

  steps: int = 1000
  learning_rate: float = 3e-3
  warmup_steps: int = 100
  end_lr_fraction: float = 0.1
  weight_decay: float = 0.01
  clip_norm: float | None = 1.0
  b1: float = 0.9
  b2: float = 0.99
  eps: float = 1e-8

  def __post_init__(self):
    validate_optimizer_settings(self)

  @classmethod
  def of(cls, settings: Any) -> OptimizerConfig:
    """The optimizer fields of any object that has them (e.g. ``jaxequiv.lm.train.TrainConfig``)."""
    return cls(**{f.name: getattr(settings, f.name) for f in dataclasses.fields(cls)})


def validate_optimizer_settings(s: Any) -> None:
  """One-line ``ValueError`` naming the first optimizer field out of range (and its accepted range)."""
  def finite(name):
    v = getattr(s, name)
    if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v):
      raise ValueError(f"{name} must be a finite number, got {v!r}")
    return v

  if not isinstance(s.steps, numbers.Integral) or s.steps < 1:
    raise ValueError(f"steps must be an int >= 1, got {s.steps!r}")
  if finite("learning_rate") < 0:
    raise ValueError(f"learning_rate must be >= 0, got {s.learning_rate}")
  if not isinstance(s.warmup_steps, numbers.Integral) or s.warmup_steps < 0:
    raise ValueError(f"warmup_steps must be an int >= 0, got {s.warmup_steps!r}")
  if not 0.0 <= finite("end_lr_fraction") <= 1.0:
    raise ValueError(f"end_lr_fraction must be in [0, 1], got {s.end_lr_fraction}")
  if finite("weight_decay") < 0:
    raise ValueError(f"weight_decay must be >= 0, got {s.weight_decay}")
  if s.clip_norm is not None and (finite("clip_norm") < 0):
    raise ValueError(f"clip_norm must be >= 0 (0 or None: no clipping), got {s.clip_norm}")
  for name in ("b1", "b2"):
    if not 0.0 <= finite(name) < 1.0:
      raise ValueError(f"{name} must be in [0, 1), got {getattr(s, name)}")
  if finite("eps") <= 0:
    raise ValueError(f"eps must be > 0, got {s.eps}")


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


def make_train_step(loss_fn: Callable[[Any, Any], jax.Array], optimizer: optax.GradientTransformation):
  """The pure ``train_step(state, batch) -> (state, metrics)``; jit it with ``jit_train_step``.

  Args:
    loss_fn: ``loss(params, batch) -> scalar``; ``batch`` is any pytree.
    optimizer: e.g. ``make_optimizer(cfg)``.

  Returns:
    ``train_step``; metrics are ``{"loss", "grad_norm"}`` (the norm before clipping).
  """

  def train_step(state: TrainState, batch: Any) -> tuple[TrainState, dict[str, jax.Array]]:
    loss, grads = jax.value_and_grad(loss_fn)(state.params, batch)
    updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    metrics = {"loss": loss, "grad_norm": optax.tree.norm(grads)}
    return TrainState(state.step + 1, params, opt_state), metrics

  return train_step


def jit_train_step(train_step: Callable, *, donate: bool = True, **jit_kwargs) -> Callable:
  """``jax.jit(train_step)`` with the state's buffers donated (``donate_argnums=0``).

  After ``state, m = step(state, batch)`` the old state's arrays are deleted:
  keep only the returned state. ``jit_kwargs`` go to ``jax.jit`` (e.g.
  ``out_shardings`` for data parallelism).
  """
  return jax.jit(train_step, donate_argnums=0 if donate else (), **jit_kwargs)


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
