"""Neural processes trained on fresh GP draws until the test NLL stops improving, seeds vmapped.

Every step draws ``batch`` new GP tasks from its own key (``cnp.sample_tasks``
inside the jitted step), so no task is seen twice. Every ``eval_every`` steps
each seed's NLL per target point is measured on one fixed held-out set of GP
draws; training stops when the seeds' mean has not improved by ``min_delta``
for ``patience`` evaluations, or at ``max_steps``, and the record says which.
The floor is the exact GP posterior on the same held-out draws (``cnp.gp_nll``).

Models: ``"cnp"`` (``taxonomy.cnp``, mean-pooled summary) and ``"acnp"``
(``taxonomy.attentive``, attention over the context).
"""

from __future__ import annotations

import dataclasses
import functools
import sys
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxequiv import training
from jaxequiv.taxonomy import attentive, cnp

MODELS = {"cnp": (cnp.init, cnp.nll), "acnp": (attentive.init, attentive.nll)}


@dataclasses.dataclass(frozen=True)
class NPConfig:
  """One neural-process run. Defaults: the reference CNP's widths (encoder 4 x 128, decoder 128, 128, 2), Adam 1e-4,
  batch 64 tasks of at most 10 context points; at most 2 x 10^5 steps."""
  model: str = "cnp"
  width: int = 128
  enc_hidden: int = 3
  batch: int = 64
  num_ctx: int = 10
  num_tgt: int = 20
  lr: float = 1e-4
  max_steps: int = 200_000
  eval_every: int = 1000
  patience: int = 10
  min_delta: float = 0.002
  test_tasks: int = 1024
  seeds: int = 3
  seed: int = 0

  def __post_init__(self):
    if self.model not in MODELS:
      raise ValueError(f"model must be one of {sorted(MODELS)}, got {self.model!r}")
    for name in ("width", "batch", "num_ctx", "num_tgt", "max_steps", "eval_every", "patience", "test_tasks", "seeds"):
      if getattr(self, name) < 1:
        raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
    if self.num_ctx < 3:
      raise ValueError(f"num_ctx must be >= 3 (tasks keep 3..num_ctx context points), got {self.num_ctx}")


def _chunk_keys(data_keys_S: jax.Array, first: int, k: int) -> jax.Array:
  """Raw keys ``[k, S, 2]`` for steps ``first .. first + k - 1`` of each seed's data stream."""
  per_step = lambda i: jax.vmap(lambda key: jax.random.key_data(jax.random.fold_in(key, i)))(data_keys_S)  # noqa: E731
  return jax.vmap(per_step)(first + jnp.arange(k))


def train(cfg: NPConfig, log: Any = sys.stderr) -> dict[str, Any]:
  """Trains ``cfg.seeds`` runs at once; returns the curve, the stopping reason and the final params ``[S, ...]``."""
  init_fn, nll_fn = MODELS[cfg.model]
  keys_S = jax.random.split(jax.random.key(cfg.seed), cfg.seeds)
  params_S = jax.vmap(functools.partial(init_fn, width=cfg.width, enc_hidden=cfg.enc_hidden))(keys_S)
  data_keys_S = jax.vmap(lambda k: jax.random.fold_in(k, 1))(keys_S)   # each seed's tasks, apart from its init

  def loss(params, raw_key):
    return nll_fn(params, cnp.sample_tasks(jax.random.wrap_key_data(raw_key), cfg.batch, cfg.num_ctx, cfg.num_tgt))

  opt = optax.adam(cfg.lr)
  state = training.init_train_state(params_S, opt)
  run = functools.cache(lambda k: training.jit_train_step(
      training.vmap_train_step(training.make_train_step(loss, opt), state), steps_per_call=k))
  chunk_keys = jax.jit(_chunk_keys, static_argnums=2)
  test = cnp.sample_tasks(jax.random.key(10_000 + cfg.seed), cfg.test_tasks, cfg.num_ctx, cfg.num_tgt)
  evaluate = jax.jit(jax.vmap(nll_fn, in_axes=(0, None)))
  steps, test_nll, train_nll = [0], [np.asarray(evaluate(params_S, test))], [np.full(cfg.seeds, np.nan)]
  best, since, t0, reason = float(np.mean(test_nll[0])), 0, time.perf_counter(), "max_steps"
  while steps[-1] < cfg.max_steps:
    k = min(cfg.eval_every, cfg.max_steps - steps[-1])
    state, metrics = run(k)(state, chunk_keys(data_keys_S, steps[-1], k))
    steps.append(steps[-1] + k)
    test_nll.append(np.asarray(evaluate(state.params, test)))
    train_nll.append(np.mean(np.asarray(metrics["loss"]), axis=0))
    if not np.all(np.isfinite(test_nll[-1])):
      reason = "non-finite"
      break
    mean = float(np.mean(test_nll[-1]))
    best, since = (mean, 0) if mean < best - cfg.min_delta else (best, since + 1)
    if log is not None:
      print(f"{cfg.model} step {steps[-1]}: test NLL {mean:.4f} (best {best:.4f}, {since} evals without"
            f" improvement), {time.perf_counter() - t0:.0f} s", file=log, flush=True)
    if since >= cfg.patience:
      reason = "plateau"
      break
  seconds = time.perf_counter() - t0
  return {"config": dataclasses.asdict(cfg), "steps": steps, "test_nll_SxE": np.stack(test_nll, 1).tolist(),
          "train_nll_SxE": np.stack(train_nll, 1).tolist(), "stopped": reason, "final_step": steps[-1],
          "final_test_nll": np.asarray(test_nll[-1]).tolist(), "gp_posterior_nll": cnp.gp_nll(test),
          "gp_prior_nll": prior_nll(test), "train_seconds": seconds,
          "ms_per_step_per_seed": 1e3 * seconds / max(steps[-1], 1) / cfg.seeds,
          "params": state.params, "test": test}


def prior_nll(batch: cnp.CNPBatch, amplitude: float = 1.0, noise: float = 0.1) -> float:
  """Mean NLL per target point under the GP prior ``N(0, amplitude^2 + noise^2)``: a model that ignores the context."""
  var = amplitude**2 + noise**2
  y = np.asarray(batch.y_tgt_BxT, np.float64)
  return float(np.mean(0.5 * np.log(2 * np.pi * var) + 0.5 * np.square(y) / var))
