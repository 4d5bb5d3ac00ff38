"""Training: optimizer, train step, validation NLL, and a resumable loop.

The loop trains either objective on the same model:

* ``objective="lm"``: ``lm_nll`` on ``LMBatch`` rows of sentences;
* ``objective="classification"``: ``classification_xent`` on
  ``ClassificationBatch`` es of (context, next character) examples, either
  ``mode="paired"`` (every prefix of the same sentences, packed into rows:
  the LM's arithmetic, bit for bit) or ``mode="iid"`` (examples drawn
  independently, one row each).

A step is the pure function ``train_step(state, batch) -> (state, metrics)``
(flax lm1b / nanodo style); ``train`` jits it and adds a progress bar,
periodic validation NLL, a JSONL metrics log and orbax checkpoints. Runs are
resumable bit for bit: a checkpoint holds the params, the optimizer state, the
step and the number of predictions seen; the data iterator is a deterministic
function of (seed, step), so resuming fast-forwards it to the saved step.

Example:
  >>> mcfg = jaxequiv.ModelConfig(num_layers=1, width=32, seq_len=32)
  >>> tcfg = TrainConfig(steps=100, batch_size=8)
  >>> result = train(mcfg, tcfg, sentence_batches(sentences, mcfg, tcfg),
  ...                val_sentences=val, out_dir="runs/demo")
  >>> result.history[-1]["val_nats_per_char"]
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import json
import math
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxequiv import alphabet
from jaxequiv import losses
from jaxequiv import model as model_lib
from jaxequiv.batches import ClassificationBatch, LMBatch, lm_batch

Batch = LMBatch | ClassificationBatch
LossFn = Callable[[Any, Batch], jax.Array]
OBJECTIVES = ("lm", "classification")
MODES = ("paired", "iid")
# TrainConfig fields that do not change the trajectory, so may differ on resume.
_RESUME_FREE_FIELDS = ("eval_every", "checkpoint_every", "log_every", "eval_batch_size", "max_to_keep")
CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.jsonl"
CHECKPOINT_DIR = "checkpoints"


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  """Optimisation and bookkeeping settings. Frozen and hashable.

  Attributes:
    steps: total optimizer steps of the run (the schedule's length).
    batch_size: sentences (rows) per batch; for ``mode="iid"``, see
      ``jaxequiv.lm.data.classification_batches``.
    learning_rate: peak learning rate, reached after ``warmup_steps``.
    warmup_steps: linear warm-up from 0 to the peak (at most ``steps - 1`` are used).
    end_lr_fraction: the cosine decay ends at ``end_lr_fraction * learning_rate``.
    weight_decay: AdamW decoupled weight decay on matrices (ndim >= 2) only.
    clip_norm: clip gradients to this global L2 norm (``None`` or 0: no clipping).
    b1, b2, eps: Adam moments.
    eval_every: validate every this many steps (0: only at the end).
    checkpoint_every: save a checkpoint every this many steps (0: only at the end).
    log_every: write a training-loss record every this many steps.
    eval_batch_size: sentences per validation batch.
    max_to_keep: checkpoints kept on disk.
    seed: seeds the parameter init and the data order.
    objective: ``"lm"`` or ``"classification"``.
    mode: ``"paired"`` or ``"iid"`` (classification only; the LM ignores it).
  """

  steps: int = 1000
  batch_size: int = 32
  learning_rate: float = 3e-3
  warmup_steps: int = 100
  end_lr_fraction: float = 0.1
  weight_decay: float = 0.01
  clip_norm: float | None = 1.0
  b1: float = 0.9
  b2: float = 0.99
  eps: float = 1e-8
  eval_every: int = 200
  checkpoint_every: int = 500
  log_every: int = 10
  eval_batch_size: int = 64
  max_to_keep: int = 3
  seed: int = 0
  objective: str = "lm"
  mode: str = "paired"

  def __post_init__(self):
    if self.objective not in OBJECTIVES:
      raise ValueError(f"objective must be one of {OBJECTIVES}, got {self.objective!r}")
    if self.mode not in MODES:
      raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
    for name in ("steps", "batch_size", "log_every", "eval_batch_size", "max_to_keep"):
      if getattr(self, name) < 1:
        raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
    for name in ("warmup_steps", "eval_every", "checkpoint_every", "weight_decay", "learning_rate"):
      if getattr(self, name) < 0:
        raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")


class TrainState(NamedTuple):
  """Everything a step changes. A pytree, so ``jax.jit`` and orbax take it."""

  step: jax.Array   # int32 scalar: steps taken.
  params: Any       # model parameters (float32).
  opt_state: Any    # optax state.


class TrainResult(NamedTuple):
  state: TrainState
  history: list[dict]        # records as written to metrics.jsonl
  predictions_seen: int      # next-character predictions trained on so far
  completed: bool            # False if stopped early by max_steps_this_run


class EvalResult(NamedTuple):
  nats_per_char: float
  bits_per_char: float
  num_chars: int


def make_schedule(cfg: TrainConfig) -> optax.Schedule:
  """Linear warm-up to ``learning_rate``, then cosine decay to ``end_lr_fraction`` of it at ``steps``."""
  return optax.warmup_cosine_decay_schedule(
      init_value=0.0, peak_value=cfg.learning_rate, warmup_steps=min(cfg.warmup_steps, cfg.steps - 1),
      decay_steps=cfg.steps, end_value=cfg.learning_rate * cfg.end_lr_fraction)


def _decay_mask(params):
  return jax.tree.map(lambda p: p.ndim >= 2, params)


def make_optimizer(cfg: TrainConfig) -> optax.GradientTransformation:
  r"""AdamW with warm-up + cosine schedule, after global-norm gradient clipping.

  ``optax.chain(clip_by_global_norm(clip_norm), adamw(schedule, b1, b2, eps,
  weight_decay, mask=ndim >= 2))``: biases, LayerNorm scales are not decayed.
  """
  adamw = optax.adamw(make_schedule(cfg), b1=cfg.b1, b2=cfg.b2, eps=cfg.eps,
                      weight_decay=cfg.weight_decay, mask=_decay_mask)
  if cfg.clip_norm:
    return optax.chain(optax.clip_by_global_norm(cfg.clip_norm), adamw)
  return adamw


def init_state(key: jax.Array, model_config: model_lib.ModelConfig, train_config: TrainConfig) -> TrainState:
  """Fresh parameters (``jaxequiv.init`` under ``jax.jit``) and optimizer state at step 0.

  Jitted because eager Flax init dispatches op by op (seconds on a busy CPU).
  XLA fuses the initialisers' scaling differently from eager execution, so the
  embeddings can differ from eager ``jaxequiv.init(key, cfg)`` in the last bit
  (~1e-7 relative); every ``train`` run uses this function, so runs agree.
  """
  # The optimizer state's initial values depend only on whether gradients are clipped.
  return _init_state(key, model_config, TrainConfig(clip_norm=train_config.clip_norm))


@functools.partial(jax.jit, static_argnums=(1, 2))
def _init_state(key, model_config, train_config):
  params = model_lib.init(key, model_config)
  return TrainState(jnp.zeros((), jnp.int32), params, make_optimizer(train_config).init(params))


def make_loss_fn(objective: str, model_config: model_lib.ModelConfig) -> LossFn:
  """``loss(params, batch)`` for ``"lm"`` (``lm_nll``) or ``"classification"`` (``classification_xent``)."""
  apply_fn = model_lib.make_apply(model_config)
  if objective == "lm":
    return functools.partial(losses.lm_nll, apply_fn=apply_fn)
  if objective == "classification":
    return functools.partial(losses.classification_xent, apply_fn=apply_fn)
  raise ValueError(f"objective must be one of {OBJECTIVES}, got {objective!r}")


def make_train_step(loss_fn: LossFn, optimizer: optax.GradientTransformation):
  """Returns the pure ``train_step(state, batch) -> (state, metrics)``; jit it yourself.

  Args:
    loss_fn: ``loss(params, batch) -> scalar``, e.g. ``make_loss_fn("lm", cfg)``.
    optimizer: e.g. ``make_optimizer(train_config)``.

  Returns:
    ``train_step``; metrics are ``{"loss", "grad_norm"}`` (the norm before clipping).

  Example:
    >>> step = jax.jit(make_train_step(make_loss_fn("lm", mcfg), make_optimizer(tcfg)))
    >>> state, metrics = step(state, batch)
  """

  def train_step(state: TrainState, batch: Batch) -> tuple[TrainState, dict[str, jax.Array]]:
    loss, grads = jax.value_and_grad(loss_fn)(state.params, batch)
    updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    metrics = {"loss": loss, "grad_norm": optax.tree.norm(grads)}
    return TrainState(state.step + 1, params, opt_state), metrics

  return train_step


# ----------------------------------------------------------------------------- evaluation


def make_eval_batches(sentences: Sequence[str], seq_len: int, batch_size: int = 64) -> list[LMBatch]:
  """Validation sentences as fixed-shape ``LMBatch`` es (the last one padded with empty rows)."""
  sentences = alphabet.validate_sentences(sentences, max_len=seq_len)
  if not sentences:
    raise ValueError("no validation sentences")
  return [lm_batch(sentences[i : i + batch_size], seq_len, num_rows=batch_size)
          for i in range(0, len(sentences), batch_size)]


@functools.partial(jax.jit, static_argnames="apply_fn")
def _nll_sum(params, batch: LMBatch, apply_fn):
  per_token = losses.lm_nll_per_token(params, batch, apply_fn)
  return jnp.sum(jnp.where(batch.mask, per_token, 0.0))


def evaluate_batches(params, batches: Iterable[LMBatch], apply_fn: model_lib.ApplyFn) -> EvalResult:
  """Mean NLL over every character of the batches (sums in float64 on the host)."""
  total, count = 0.0, 0
  for b in batches:
    total += float(_nll_sum(params, b, apply_fn))
    count += int(np.sum(b.mask))
  nats = total / count
  return EvalResult(nats, nats / math.log(2), count)


def evaluate(params, sentences: Sequence[str], apply_fn: model_lib.ApplyFn, seq_len: int,
             batch_size: int = 64) -> EvalResult:
  r"""Validation NLL of sentences under the model read as an LM.

  .. math:: \frac{1}{\sum_s |s|} \sum_s \sum_{t<|s|} -\log p_\theta(s_t \mid s_{<t})

  i.e. the mean over all characters (the final period included), in nats and
  bits (``nats / ln 2``) per character. A classifier's params evaluate the
  same way: it is the same model.

  Args:
    params: model parameters.
    sentences: validation sentences of at most ``seq_len`` characters.
    apply_fn: ``make_apply(config)``; pass the same object each call to reuse the compiled function.
    seq_len: the model's context length T.
    batch_size: sentences per batch.

  Returns:
    ``EvalResult(nats_per_char, bits_per_char, num_chars)``.

  Example:
    >>> evaluate(params, ["Hi there.", "Ok."], make_apply(cfg), cfg.seq_len).bits_per_char
  """
  return evaluate_batches(params, make_eval_batches(sentences, seq_len, batch_size), apply_fn)


# ----------------------------------------------------------------------------- data


def num_predictions(batch: Batch) -> int:
  """Real next-character predictions in a batch (LM mask cells, or non-padding examples)."""
  if isinstance(batch, LMBatch):
    return int(np.sum(np.asarray(batch.mask)))
  return int(np.sum(np.asarray(batch.rows) != np.shape(batch.tokens)[0]))


def sentence_batches(sentences: Sequence[str], model_config: model_lib.ModelConfig,
                     train_config: TrainConfig) -> Callable[[int], Iterator[Batch]]:
  """``batches(start_step)``: the run's training batches from step ``start_step`` on.

  Uses ``jaxequiv.lm.data.lm_batches`` / ``classification_batches`` seeded by
  ``train_config.seed``; with the same seed the LM and paired classification
  streams hold the same sentences in the same (canonical) row order. Resuming
  fast-forwards the deterministic stream by ``start_step`` batches.
  """
  from jaxequiv.lm import data  # pylint: disable=import-outside-toplevel

  sentences = list(sentences)

  def batches(start_step: int) -> Iterator[Batch]:
    if train_config.objective == "lm":
      it = data.lm_batches(sentences, train_config.batch_size, model_config.seq_len, seed=train_config.seed)
    else:
      it = data.classification_batches(sentences, train_config.batch_size, model_config.seq_len,
                                       mode=train_config.mode, seed=train_config.seed)
    return itertools.islice(it, start_step, None)

  return batches


# ----------------------------------------------------------------------------- checkpoints


def config_dict(model_config: model_lib.ModelConfig, train_config: TrainConfig, **extra) -> dict:
  return {"model": dataclasses.asdict(model_config), "train": dataclasses.asdict(train_config), **extra}


def _checkpoint_manager(out_dir: str, train_config: TrainConfig | None = None):
  import orbax.checkpoint as ocp  # pylint: disable=import-outside-toplevel
  options = ocp.CheckpointManagerOptions(
      max_to_keep=train_config.max_to_keep if train_config else None, create=True,
      enable_async_checkpointing=False)
  return ocp.CheckpointManager(os.path.abspath(os.path.join(out_dir, CHECKPOINT_DIR)), options=options)


def _abstract(tree):
  import orbax.checkpoint as ocp  # pylint: disable=import-outside-toplevel
  return jax.tree.map(ocp.utils.to_shape_dtype_struct, tree)


def latest_step(out_dir: str) -> int | None:
  """The step of the newest checkpoint in ``out_dir``, or None."""
  if not os.path.isdir(os.path.join(out_dir, CHECKPOINT_DIR)):
    return None
  with _checkpoint_manager(out_dir) as mngr:
    return mngr.latest_step()


def save_checkpoint(out_dir: str, state: TrainState, meta: dict, train_config: TrainConfig | None = None) -> None:
  """Saves ``state`` (params, opt_state, step) and a JSON ``meta`` under ``out_dir/checkpoints/<step>``."""
  import orbax.checkpoint as ocp  # pylint: disable=import-outside-toplevel
  with _checkpoint_manager(out_dir, train_config) as mngr:
    step = int(state.step)
    mngr.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state._asdict()), meta=ocp.args.JsonSave(meta)), force=True)
    mngr.wait_until_finished()


def restore_checkpoint(out_dir: str, like: TrainState, step: int | None = None) -> tuple[TrainState, dict]:
  """Restores ``(state, meta)`` from ``out_dir`` (latest step by default); ``like`` gives structure and sharding."""
  import orbax.checkpoint as ocp  # pylint: disable=import-outside-toplevel
  with _checkpoint_manager(out_dir) as mngr:
    step = mngr.latest_step() if step is None else step
    if step is None:
      raise FileNotFoundError(f"no checkpoint in {os.path.join(out_dir, CHECKPOINT_DIR)}")
    out = mngr.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(_abstract(like._asdict())), meta=ocp.args.JsonRestore()))
  return TrainState(**out["state"]), dict(out["meta"])


def read_config(out_dir: str) -> tuple[model_lib.ModelConfig, TrainConfig, dict]:
  """``(model_config, train_config, whole_json)`` from ``out_dir/config.json``."""
  path = os.path.join(out_dir, CONFIG_FILE)
  if not os.path.exists(path):
    raise FileNotFoundError(f"{path} not found: is {out_dir!r} a training run directory?")
  with open(path) as f:
    cfg = json.load(f)
  return model_lib.ModelConfig(**cfg["model"]), TrainConfig(**cfg["train"]), cfg


def load_checkpoint(out_dir: str, step: int | None = None) -> tuple[Any, model_lib.ModelConfig]:
  """``(params, model_config)`` of a run directory's latest (or given) checkpoint.

  Example:
    >>> params, cfg = load_checkpoint("runs/lm")
    >>> logits = jaxequiv.apply(params, tokens, cfg)
  """
  model_config, train_config, _ = read_config(out_dir)
  like = jax.eval_shape(lambda: init_state(jax.random.key(0), model_config, train_config))
  like = jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype,
                                                     sharding=jax.sharding.SingleDeviceSharding(jax.devices()[0])),
                      like)
  import orbax.checkpoint as ocp  # pylint: disable=import-outside-toplevel
  with _checkpoint_manager(out_dir) as mngr:
    step = mngr.latest_step() if step is None else step
    if step is None:
      raise FileNotFoundError(f"no checkpoint in {os.path.join(out_dir, CHECKPOINT_DIR)}")
    out = mngr.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(like._asdict())))
  return out["state"]["params"], model_config


def _check_resume_config(out_dir, model_config, train_config):
  old_model, old_train, _ = read_config(out_dir)
  diffs = [f"model.{k}: saved {v!r}, now {getattr(model_config, k)!r}"
           for k, v in dataclasses.asdict(old_model).items() if getattr(model_config, k) != v]
  diffs += [f"train.{k}: saved {v!r}, now {getattr(train_config, k)!r}"
            for k, v in dataclasses.asdict(old_train).items()
            if k not in _RESUME_FREE_FIELDS and getattr(train_config, k) != v]
  if diffs:
    raise ValueError(f"cannot resume {out_dir!r} with a different configuration: " + "; ".join(diffs))


def _read_metrics(path: str, up_to_step: int) -> list[dict]:
  """Records with step <= up_to_step (later ones came from a run that was killed after its last checkpoint)."""
  if not os.path.exists(path):
    return []
  with open(path) as f:
    records = [json.loads(line) for line in f if line.strip()]
  return [r for r in records if r["step"] <= up_to_step]


# ----------------------------------------------------------------------------- the loop


@functools.lru_cache(maxsize=32)
def cached_apply_fn(model_config: model_lib.ModelConfig) -> model_lib.ApplyFn:
  """``make_apply(model_config)``, one object per config, so jitted users compile once."""
  return model_lib.make_apply(model_config)


@functools.lru_cache(maxsize=32)
def _jitted_train_step(model_config: model_lib.ModelConfig, train_config: TrainConfig):
  # Keyed by the fields that define the step, so runs differing only in bookkeeping share a compile.
  free = (*_RESUME_FREE_FIELDS, "seed", "mode")
  key_cfg = dataclasses.replace(train_config, **{k: getattr(TrainConfig, k) for k in free})
  return _jit_step(model_config, key_cfg)


@functools.lru_cache(maxsize=32)
def _jit_step(model_config, train_config):
  return jax.jit(make_train_step(make_loss_fn(train_config.objective, model_config), make_optimizer(train_config)))


class StopTraining(Exception):
  """Raise from a callback to stop the loop (like a kill: nothing more is saved)."""


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
) -> TrainResult:
  """Trains ``model_config`` with ``train_config`` on ``batches``; resumable bit for bit.

  Args:
    model_config: the transformer (``dtype="bfloat16"`` for bf16 compute, f32 params).
    train_config: optimisation settings; ``objective`` picks the loss.
    batches: ``batches(start_step)`` yields the batches for steps ``start_step,
      start_step + 1, ...``; must be deterministic (see ``sentence_batches``).
    val_sentences: validation sentences; NLL in nats and bits per character is
      recorded every ``eval_every`` steps and at the end.
    out_dir: run directory for ``config.json``, ``metrics.jsonl`` and
      ``checkpoints/``; None keeps everything in memory.
    resume: if ``out_dir`` holds a checkpoint, continue from it (configs must
      match); if False and one exists, raise.
    max_steps_this_run: stop after this many steps of this call without a final
      checkpoint (simulates being killed); None runs to ``train_config.steps``.
    callbacks: ``cb(step, state, record)`` after every step, its validation and
      checkpoint (record: step, predictions_seen, loss, grad_norm, and
      val_nats_per_char / val_bits_per_char on validation steps). Raising
      ``StopTraining`` (or anything) stops the run at once, like a kill;
      ``StopTraining`` is re-raised.
    progress: show a tqdm progress bar.
    mesh: a ``jaxequiv.lm.parallel.make_mesh()`` mesh for data parallelism, or None.
    extra_config: more JSON for ``config.json`` (e.g. the data spec).

  Returns:
    ``TrainResult(state, history, predictions_seen, completed)``.
  """
  from tqdm import tqdm  # pylint: disable=import-outside-toplevel

  tcfg = train_config
  state = init_state(jax.random.key(tcfg.seed), model_config, tcfg)
  predictions_seen, history = 0, []
  metrics_path = os.path.join(out_dir, METRICS_FILE) if out_dir else None
  if mesh is not None:
    from jaxequiv.lm import parallel  # pylint: disable=import-outside-toplevel
    state = parallel.replicate(state, mesh)

  if out_dir is not None:
    os.makedirs(out_dir, exist_ok=True)
    start = latest_step(out_dir)
    if start is not None:
      if not resume:
        raise FileExistsError(f"{out_dir!r} already holds checkpoints (latest step {start}); pass resume=True"
                              " or use a fresh directory")
      _check_resume_config(out_dir, model_config, tcfg)
      state, meta = restore_checkpoint(out_dir, state, start)
      predictions_seen = int(meta["predictions_seen"])
      history = _read_metrics(metrics_path, start)
    with open(os.path.join(out_dir, CONFIG_FILE), "w") as f:
      json.dump(config_dict(model_config, tcfg, **(extra_config or {})), f, indent=2)
    with open(metrics_path, "w") as f:  # drop records past the checkpoint we resumed from
      f.writelines(json.dumps(r) + "\n" for r in history)

  step0 = int(state.step)
  end = tcfg.steps if max_steps_this_run is None else min(tcfg.steps, step0 + max_steps_this_run)
  if mesh is not None:
    train_step = parallel.jit_train_step(make_train_step(make_loss_fn(tcfg.objective, model_config),
                                                         make_optimizer(tcfg)), mesh)
    put = functools.partial(parallel.shard_batch, mesh=mesh)
  else:
    train_step = _jitted_train_step(model_config, tcfg)
    put = lambda b: b
  schedule = make_schedule(tcfg)
  apply_fn = cached_apply_fn(model_config)
  eval_batches = make_eval_batches(val_sentences, model_config.seq_len, tcfg.eval_batch_size) if val_sentences else None

  def log(record):
    history.append(record)
    if metrics_path:
      with open(metrics_path, "a") as f:
        f.write(json.dumps(record) + "\n")

  def validate(step):
    r = evaluate_batches(state.params, eval_batches, apply_fn)
    log({"step": step, "predictions_seen": predictions_seen, "val_nats_per_char": r.nats_per_char,
         "val_bits_per_char": r.bits_per_char, "time": time.time() - t0})
    return r

  def checkpoint():
    save_checkpoint(out_dir, state, {"step": int(state.step), "predictions_seen": predictions_seen,
                                     **config_dict(model_config, tcfg)}, tcfg)

  t0 = time.time()
  if step0 == 0 and eval_batches is not None and tcfg.eval_every:
    validate(0)
  bar = tqdm(total=tcfg.steps, initial=step0, disable=not progress, desc=f"train {tcfg.objective}", leave=False)
  window = []
  step = step0
  it = batches(step0)
  try:
    while step < end:
      try:
        batch = next(it)
      except StopIteration:
        raise RuntimeError(f"the batch iterator ran out at step {step} of {tcfg.steps}") from None
      predictions_seen += num_predictions(batch)
      state, metrics = train_step(state, put(batch))
      step += 1
      window.append(metrics)
      if step % tcfg.log_every == 0 or step == end:
        vals = jax.device_get(window)
        log({"step": step, "predictions_seen": predictions_seen,
             "loss": float(np.mean([v["loss"] for v in vals])),
             "grad_norm": float(np.mean([v["grad_norm"] for v in vals])),
             "lr": float(schedule(step - 1)), "time": time.time() - t0})
        bar.set_postfix(loss=f"{history[-1]['loss']:.3f}")
        window = []
      bar.update(1)
      rec = {"step": step, "predictions_seen": predictions_seen}
      if eval_batches is not None and ((tcfg.eval_every and step % tcfg.eval_every == 0) or step == tcfg.steps):
        r = validate(step)
        rec.update(val_nats_per_char=r.nats_per_char, val_bits_per_char=r.bits_per_char)
      if out_dir is not None and ((tcfg.checkpoint_every and step % tcfg.checkpoint_every == 0)
                                  or step == tcfg.steps):
        checkpoint()
      if callbacks:
        rec.update({k: float(v) for k, v in metrics.items()})
        for cb in callbacks:
          cb(step, state, rec)
  finally:
    bar.close()
  return TrainResult(state, history, predictions_seen, step == tcfg.steps)


def final_validation(history: Sequence[dict]) -> dict | None:
  """The last validation record of a history, or None."""
  vals = [r for r in history if "val_nats_per_char" in r]
  return vals[-1] if vals else None
