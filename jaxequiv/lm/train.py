"""Training: the resumable loop over the shared training stack, with validation NLL, metrics and checkpoints.

The loop trains either objective on the same model:

* ``objective="lm"``: ``lm_nll`` on ``LMBatch`` rows of sentences;
* ``objective="classification"``: ``classification_xent`` on ``ClassificationBatch`` es of (context, next
  character) examples, either ``mode="paired"`` (every prefix of the same sentences, packed into rows: the LM's
  arithmetic, bit for bit) or ``mode="iid"`` (examples drawn independently, one row each).

A step is the pure ``train_step(state, batch) -> (state, metrics)`` of ``jaxequiv.training`` (the same one the image
heads use); ``train`` jits it with the state donated and adds a progress bar, periodic validation NLL, a JSONL metrics
log and checkpoints through ``jaxequiv.rundir`` and ``jaxequiv.checkpoint`` (checksummed, one writer at a time). Runs
are resumable bit for bit: a checkpoint holds the params, the optimizer state, the step, the number of predictions
seen, the unlogged part of the current metrics window and the settings the run was started with; the data iterator is
a deterministic function of (seed, step). A resume may change ``steps`` only: the learning-rate schedule keeps its
recorded length (``TrainConfig.schedule_steps``), so a run extended from 20 to 30 steps equals, bit for bit, a
30-step run with ``schedule_steps=20``. A non-finite loss or gradient norm stops the run with
``jaxequiv.training.NonFiniteLossError`` naming the step; no checkpoint is written after it. What a run directory
holds is read back by ``jaxequiv.lm.runs``; a whole run (data, split, mesh, this loop, evaluation, samples) is one
call of ``jaxequiv.lm.experiment.run``.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NamedTuple

import jax
import numpy as np

from jaxequiv import checkpoint
from jaxequiv import losses
from jaxequiv import model as model_lib
from jaxequiv import rundir
from jaxequiv import training
from jaxequiv.batches import ClassificationBatch, LMBatch
from jaxequiv.training import NonFiniteLossError, TrainState, make_schedule, make_train_step
from jaxequiv.lm import parallel
from jaxequiv.lm.configs import MODES, OBJECTIVES, TrainConfig, trajectory_settings  # JAX-free
from jaxequiv.lm.evaluate import evaluate_batches, make_eval_batches

Batch = LMBatch | ClassificationBatch
LossFn = Callable[[Any, Batch], jax.Array]
# TrainConfig fields that do not change the trajectory, so may differ on resume.
_RESUME_FREE_FIELDS = ("eval_every", "checkpoint_every", "log_every", "eval_batch_size", "max_to_keep")


class TrainResult(NamedTuple):
  state: TrainState
  history: list[dict]        # records as written to metrics.jsonl
  predictions_seen: int      # next-character predictions trained on so far
  completed: bool            # False if stopped early (max_steps_this_run, or stop)
  best: dict | None = None   # the lowest validation after step 0: {"step", "val_nats_per_char", "val_bits_per_char"}


def init_state(key: jax.Array, model_config: model_lib.ModelConfig, train_config: TrainConfig) -> TrainState:
  """Fresh parameters (``jaxequiv.init`` under ``jax.jit``) and optimizer state at step 0.

  Jitted because eager Flax init dispatches op by op (seconds on a busy CPU). XLA fuses the initialisers' scaling
  differently from eager execution, so the embeddings can differ from eager ``jaxequiv.init(key, cfg)`` in the last
  bit (~1e-7 relative); every ``train`` run uses this function, so runs agree.
  """
  # The optimizer state's initial values depend only on whether gradients are clipped.
  return _init_state(key, model_config, TrainConfig(clip_norm=train_config.clip_norm))


@functools.partial(jax.jit, static_argnums=(1, 2))
def _init_state(key, model_config, train_config):
  return training.init_train_state(model_lib.init(key, model_config), training.make_optimizer(train_config))


def make_loss_fn(objective: str, model_config: model_lib.ModelConfig) -> LossFn:
  """``loss(params, batch)`` for ``"lm"`` (``lm_nll``) or ``"classification"`` (``classification_xent``)."""
  apply_fn = model_lib.make_apply(model_config)
  if objective == "lm":
    return functools.partial(losses.lm_nll, apply_fn=apply_fn)
  if objective == "classification":
    return functools.partial(losses.classification_xent, apply_fn=apply_fn)
  raise ValueError(f"objective must be one of {OBJECTIVES}, got {objective!r}")


# ----------------------------------------------------------------------------- data


def num_predictions(batch: Batch) -> int:
  """Real next-character predictions in a batch (LM mask cells, or non-padding examples)."""
  if isinstance(batch, LMBatch):
    return int(np.sum(np.asarray(batch.mask)))
  return int(np.sum(np.asarray(batch.rows) != np.shape(batch.tokens)[0]))


def sentence_batches(sentences: Sequence[str], model_config: model_lib.ModelConfig,
                     train_config: TrainConfig) -> Callable[[int], Iterator[Batch]]:
  """``batches(start_step)``: the run's training batches from step ``start_step`` on.

  Uses ``jaxequiv.lm.data.lm_batches`` / ``classification_batches`` seeded by ``train_config.seed``; with the
  same seed the LM and paired classification streams hold the same sentences in the same (canonical) row order.
  Resuming starts the stream at ``start_step`` in O(1): a batch is a pure function of (seed, step), not of ``steps``.
  """
  from jaxequiv.lm import data  # pylint: disable=import-outside-toplevel

  sentences = list(sentences)
  rows = parallel.process_rows(train_config.batch_size) if jax.process_count() > 1 else None  # this process's rows

  def batches(start_step: int) -> Iterator[Batch]:
    if train_config.objective == "lm":
      return data.lm_batches(sentences, train_config.batch_size, model_config.seq_len, seed=train_config.seed,
                             start_step=start_step, rows=rows)
    return data.classification_batches(sentences, train_config.batch_size, model_config.seq_len,
                                       mode=train_config.mode, seed=train_config.seed, start_step=start_step,
                                       rows=rows)

  return batches


def config_dict(model_config: model_lib.ModelConfig, train_config: TrainConfig, **extra) -> dict:
  """The JSON of a run's settings: ``{"model": ..., "train": ..., **extra}``."""
  return {"model": dataclasses.asdict(model_config), "train": dataclasses.asdict(train_config), **extra}


# ----------------------------------------------------------------------------- the loop


@functools.lru_cache(maxsize=32)
def cached_apply_fn(model_config: model_lib.ModelConfig) -> model_lib.ApplyFn:
  """``make_apply(model_config)``, one object per config, so jitted users compile once."""
  return model_lib.make_apply(model_config)


def _jitted_train_step(model_config: model_lib.ModelConfig, train_config: TrainConfig):
  # Keyed by what defines the step, so runs differing only in bookkeeping (or in steps alone) share a compile.
  return _jit_step(model_config, train_config.objective, train_config.optimizer_config())


@functools.lru_cache(maxsize=32)
def _jit_step(model_config, objective, optimizer_config):
  return training.jit_train_step(
      make_train_step(make_loss_fn(objective, model_config), training.make_optimizer(optimizer_config)))


def step_seconds(model_config: model_lib.ModelConfig, train_config: TrainConfig, sentences: Sequence[str], *,
                 steps: int = 2) -> tuple[float, int]:
  """``(seconds, rows)`` of a step of ``train_config``'s objective and mode, on one device, from a fresh state.

  The mean wall time (batch building included) of ``steps`` steps after a first that compiles (cached: ``train``
  reuses it), and a batch's rows.
  """
  state = init_state(jax.random.key(train_config.seed), model_config, train_config)
  step, it = _jitted_train_step(model_config, train_config), sentence_batches(sentences, model_config, train_config)(0)
  for i in range(steps + 1):
    if i == 1:
      t0 = time.perf_counter()
    batch = next(it)
    state, metrics = step(state, batch)
    jax.block_until_ready(metrics)
  return (time.perf_counter() - t0) / steps, int(np.shape(batch[0])[0])  # inputs or tokens: [R, T]


class StopTraining(Exception):
  """Raise from a callback to stop the loop (like a kill: nothing more is saved)."""


def _parallel_record(mesh) -> dict:
  record = {"data_parallel": mesh is not None, "device_count": int(mesh.size) if mesh is not None else 1}
  return {**record, "process_count": jax.process_count()} if jax.process_count() > 1 else record


def _window_means(vals: Sequence[dict]) -> dict[str, float]:
  # float32 means of the float32 per-step values, whether they came from the device or a checkpoint.
  return {k: float(np.mean(np.asarray([v[k] for v in vals], np.float32))) for k in ("loss", "grad_norm")}


def train(
    model_config: model_lib.ModelConfig,
    train_config: TrainConfig,
    batches: Callable[[int], Iterator[Batch]],
    *,
    val_sentences: Sequence[str] | None = None,
    out_dir: str | None = None,
    resume: bool = True,
    max_steps_this_run: int | None = None,
    callbacks: Sequence[Callable[[int, TrainState, dict], None]] = (),
    progress: bool = True,
    mesh: jax.sharding.Mesh | None = None,
    extra_config: dict | None = None,
    log: rundir.Log | None = rundir.say,
    stop: Callable[[], bool] | None = None,
) -> TrainResult:
  """Trains ``model_config`` with ``train_config`` on ``batches``; resumable bit for bit.

  Args:
    model_config: the transformer (``dtype="bfloat16"`` for bf16 compute, f32 params).
    train_config: optimisation settings; ``objective`` picks the loss.
    batches: ``batches(start_step)`` yields the batches for steps ``start_step, start_step + 1, ...``; must be
      deterministic (see ``sentence_batches``).
    val_sentences: validation sentences; NLL in nats and bits per character is recorded (and logged) every
      ``eval_every`` steps and at the end. The lowest after step 0 is the run's ``best``: with ``out_dir`` a
      checkpoint of its step is saved and never pruned by ``max_to_keep``, and every checkpoint's meta names it
      (``jaxequiv.lm.runs.best``).
    out_dir: run directory (``jaxequiv.checkpoint`` layout: ``config.json``, ``metrics.jsonl``, ``checkpoints/``),
      locked against a second writer for the whole call; None keeps everything in memory.
    resume: if ``out_dir`` holds a checkpoint, continue from the newest good one (damaged ones are reported and
      skipped); the settings recorded in it must match (bookkeeping fields excepted), but ``steps`` may differ
      (not below the step reached): the schedule's length is ``schedule_steps`` (``log`` says the steps changed).
      If False and one exists, raise.
    max_steps_this_run: stop after this many steps of this call without a final checkpoint (simulates being
      killed); None runs to ``train_config.steps``.
    callbacks: ``cb(step, state, record)`` after every step, its validation and checkpoint (record: step,
      predictions_seen, loss, grad_norm, and val_nats_per_char / val_bits_per_char on validation steps).
      ``state`` is donated to the next step: copy what you keep. Raising ``StopTraining`` (or anything) stops the
      run at once, like a kill.
    progress: show a tqdm progress bar.
    mesh: a ``jaxequiv.lm.parallel.make_mesh()`` mesh for data parallelism, or None. The flag and the device
      count are recorded; resuming with others works but is not bitwise equal to an uninterrupted run (``log``
      says so).
    extra_config: more JSON for ``config.json`` and the checkpoints' recorded settings (e.g. the data spec;
      compared on resume too).
    log: one-line notices (each validation, damaged checkpoints skipped, topology changes, steps changed).
    stop: polled after every step (its validation done); when True the run saves a checkpoint of that step (with
      ``out_dir``) and returns early: how ``jaxequiv.lm.experiment.run`` ends a run on SIGINT or SIGTERM.

  Returns:
    ``TrainResult(state, history, predictions_seen, completed, best)``.

  Raises:
    jaxequiv.rundir.LockedError: another writer holds ``out_dir``.
    jaxequiv.rundir.ConfigMismatchError: resuming with other settings (names the fields), or ``steps`` below the
      step reached.
    jaxequiv.rundir.RunDirError: checkpoints exist and ``resume`` is False, or none is good.
    jaxequiv.training.NonFiniteLossError: the loss or gradient norm became non-finite (names the step and the
      last good checkpoint).
  """
  # With several processes (jaxequiv.lm.parallel), process 0 holds the lock and writes; the others wait for it.
  lock = rundir.RunLock(out_dir) if out_dir is not None and jax.process_index() == 0 else None
  try:
    return _train(model_config, train_config, batches, val_sentences=val_sentences, out_dir=out_dir, resume=resume,
                  max_steps_this_run=max_steps_this_run, callbacks=callbacks, progress=progress, mesh=mesh,
                  extra_config=extra_config, log=log, stop=stop)
  finally:
    if lock is not None:
      lock.close()


def _resume(out_dir, state, current, log, writer=True):
  """(state, predictions_seen, history, window, step, best) restored from the newest good checkpoint.

  The recorded settings must match but ``train.steps`` (not below the step reached; ``log`` says it changed).
  """
  steps = current["train"]["steps"]

  def like(meta):  # the recorded settings are compared before any array is read (an edited config.json)
    recorded = dict(meta.get("config", {}))
    diffs = rundir.config_differences(*(trajectory_settings({k: v for k, v in c.items() if k != "parallel"})
                                        for c in (recorded, current)), ignore=_RESUME_FREE_FIELDS)
    if diffs:
      raise rundir.ConfigMismatchError(f"cannot resume {out_dir!r}: settings differ from those recorded in its"
                                       f" checkpoint at step {meta.get('step')}: " + "; ".join(diffs))
    if meta.get("step", 0) > steps:
      raise rundir.ConfigMismatchError(f"cannot resume {out_dir!r}: train.steps {steps} is below step"
                                       f" {meta.get('step')} that it already reached")
    return {"params": state.params, "opt_state": state.opt_state}

  restored = checkpoint.restore(out_dir, like, log=log, quarantine=writer)
  s, meta, recorded = restored.step, restored.meta, dict(restored.meta.get("config", {}))
  if recorded.get("parallel", _parallel_record(None)) != current["parallel"] and log is not None:
    was, now = recorded.get("parallel", _parallel_record(None)), current["parallel"]
    log(f"resuming {out_dir} at step {s} with data_parallel={now['data_parallel']} on {now['device_count']}"
        f" device(s); it was trained with data_parallel={was['data_parallel']} on {was['device_count']}:"
        " the result will not be bitwise equal to an uninterrupted run")
  was = recorded.get("train", {}).get("steps")
  if was != steps and log is not None:
    length = current["train"]["schedule_steps"]
    log(f"{'extending' if steps > was else 'shortening'} {out_dir} from {was} to {steps} steps; the learning-rate"
        f" schedule keeps its length {length}" + (" and holds its final value after it" if steps > length else ""))
  step_arr = jax.device_put(np.int32(s), state.step.sharding)
  state = TrainState(step_arr, restored.items["params"], restored.items["opt_state"])
  window = [{"loss": np.float32(a), "grad_norm": np.float32(b)} for a, b in meta.get("window", [])]
  history = rundir.read_metrics(out_dir, s, log=log)
  return state, int(meta.get("predictions_seen", 0)), history, window, s, meta.get("best")


def _train(model_config, train_config, batches, *, val_sentences, out_dir, resume, max_steps_this_run, callbacks,
           progress, mesh, extra_config, log, stop) -> TrainResult:
  from tqdm import tqdm  # pylint: disable=import-outside-toplevel

  tcfg = train_config
  state = init_state(jax.random.key(tcfg.seed), model_config, tcfg)
  predictions_seen, history, window, last_saved, best = 0, [], [], None, None
  current = {**config_dict(model_config, tcfg.resolved(), **(extra_config or {})), "parallel": _parallel_record(mesh)}
  if mesh is not None:
    state = parallel.replicate(state, mesh)

  writer = jax.process_index() == 0
  if out_dir is not None:
    if writer:
      rundir.remove_partial_writes(out_dir)  # we hold the lock: any .tmp-* is a killed writer's
    parallel.sync_processes("jaxequiv: run directory cleaned")
    if checkpoint.steps(out_dir):
      if not resume:
        raise rundir.RunDirError(f"{out_dir!r} already holds checkpoints; resume it or use a fresh directory")
      state, predictions_seen, history, window, last_saved, best = _resume(
          out_dir, state, current, log if writer else None, writer)
    if writer:
      rundir.write_config(out_dir, current)
      rundir.write_metrics(out_dir, history)  # drops records past the checkpoint we resumed from

  step0 = int(state.step)
  end = tcfg.steps if max_steps_this_run is None else min(tcfg.steps, step0 + max_steps_this_run)
  if mesh is not None:
    rep, optimizer = parallel.replicated(mesh), training.make_optimizer(tcfg.optimizer_config())
    train_step = training.jit_train_step(make_train_step(make_loss_fn(tcfg.objective, model_config), optimizer),
                                         out_shardings=(rep, rep))
    put = functools.partial(parallel.shard_batch, mesh=mesh)
  else:
    train_step = _jitted_train_step(model_config, tcfg)
    put = lambda b: b
  schedule = make_schedule(tcfg.optimizer_config())
  apply_fn = cached_apply_fn(model_config)
  eval_batches = make_eval_batches(val_sentences, model_config.seq_len, tcfg.eval_batch_size) if val_sentences else None

  def log_record(record):
    history.append(record)
    if out_dir is not None and writer:
      rundir.append_metrics(out_dir, [record])

  def validate(step):
    nonlocal best
    r = evaluate_batches(state.params, eval_batches, apply_fn)
    val = {"val_nats_per_char": r.nats_per_char, "val_bits_per_char": r.bits_per_char}
    log_record({"step": step, "predictions_seen": predictions_seen, **val, "time": time.time() - t0})
    improved = step > 0 and (best is None or r.nats_per_char < best["val_nats_per_char"])
    if improved:
      best = {"step": step, **val}
    if log is not None and writer:
      bar.clear()
      log(f"step {step}: validation {r.nats_per_char:.4f} nats/char ({r.bits_per_char:.4f} bits/char)"
          + (" (best so far)" if improved else ""))
      bar.refresh()
    return val, improved

  def fetch_window(step):
    vals = jax.device_get(window)
    training.check_finite(step - len(vals) + 1, vals)
    return vals

  t0 = time.time()
  bar = tqdm(total=tcfg.steps, initial=step0, disable=not progress or not writer, desc=f"train {tcfg.objective}",
             leave=False)
  if step0 == 0 and eval_batches is not None and tcfg.eval_every:
    validate(0)
  step = step0
  it = batches(step0)
  try:
    while step < end:
      try:
        batch = next(it)
      except StopIteration:
        raise RuntimeError(f"the batch iterator ran out at step {step} of {tcfg.steps}") from None
      n = num_predictions(batch)  # an LM process holds its rows only; examples are whole
      predictions_seen += parallel.sum_over_processes(n) if isinstance(batch, LMBatch) else n
      state, metrics = train_step(state, put(batch))
      step += 1
      window.append(metrics)
      if step % tcfg.log_every == 0 or step == tcfg.steps:  # not at a max_steps_this_run cut: that is a "kill"
        means = _window_means(fetch_window(step))
        log_record({"step": step, "predictions_seen": predictions_seen, **means,
                    "lr": float(schedule(step - 1)), "time": time.time() - t0})
        bar.set_postfix_str(f"train loss {means['loss']:.3f} nats/prediction")
        window = []
      bar.update(1)
      rec, improved = {"step": step, "predictions_seen": predictions_seen}, False
      if eval_batches is not None and ((tcfg.eval_every and step % tcfg.eval_every == 0) or step == tcfg.steps):
        val, improved = validate(step)
        rec.update(val)
      stopping = parallel.sum_over_processes(stop is not None and stop()) > 0  # all processes stop at one step
      if out_dir is not None and (stopping or improved or (tcfg.checkpoint_every and step % tcfg.checkpoint_every == 0)
                                  or step == tcfg.steps):
        pending = fetch_window(step)  # every step up to here has a finite loss and gradient
        checkpoint.save(out_dir, step, {"params": state.params, "opt_state": state.opt_state},
                        {"predictions_seen": predictions_seen, "config": current, "best": best,
                         "window": [[float(v["loss"]), float(v["grad_norm"])] for v in pending]},
                        max_to_keep=tcfg.max_to_keep, keep=(best["step"],) if best else ())
        last_saved = step
      if callbacks:
        rec.update({k: float(v) for k, v in metrics.items()})
        for cb in callbacks:
          cb(step, state, rec)
      if stopping:
        break
  except NonFiniteLossError as e:
    where = (f"the last good checkpoint is step {last_saved} in {checkpoint.checkpoint_dir(out_dir)}"
             if last_saved is not None else "no checkpoint was saved")
    raise NonFiniteLossError(f"{e}; {where}") from None
  finally:
    bar.close()
  return TrainResult(state, history, predictions_seen, step == tcfg.steps, best)
