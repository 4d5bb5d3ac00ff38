"""One LM run in one call: data, split, mesh, the training loop, final validation, samples.

``run(config)`` is the character LM's ``train_and_evaluate`` (nanodo's shape):
it reads the corpus named by ``config.data``, splits it into train and
validation sentences, sets up data parallelism if asked, trains with
``jaxequiv.lm.train.train`` into ``config.out_dir`` (resumable, checkpointed),
and returns a JSON-able summary with the final validation NLL and a few
samples. ``python -m jaxequiv train`` is flags -> ``ExperimentConfig`` -> ``run``.

Examples:
  A few steps on the toy grammar, in memory (no run directory):

  >>> from jaxequiv.model import ModelConfig
  >>> from jaxequiv.lm.train import TrainConfig
  >>> cfg = ExperimentConfig(model=ModelConfig(num_layers=1, width=16, num_heads=2, seq_len=24),
  ...                        train=TrainConfig(steps=2, batch_size=4, eval_batch_size=8),
  ...                        data=DataConfig("synthetic", num_synthetic=60), out_dir=None,
  ...                        num_samples=1, progress=False)
  >>> summary = run(cfg, log=None)
  >>> summary["step"], summary["completed"], len(summary["samples"]), summary["final"]["step"]
  (2, True, 1, 2)
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import signal
import threading
import time
import types
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from jaxequiv import model as model_lib
from jaxequiv import rundir
from jaxequiv.lm import runs
from jaxequiv.lm import train as train_lib
from jaxequiv.lm.configs import DataConfig  # defined there, importable without JAX

SAMPLE_TEMPERATURE = 0.8


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
  """Everything one run needs. Frozen; ``model``, ``train`` and ``data`` are recorded in the run directory.

  Attributes:
    model: the transformer.
    train: optimisation, batching, bookkeeping and the objective.
    data: the corpus and the validation split.
    out_dir: the run directory (``jaxequiv.rundir`` layout), or None to keep
      everything in memory.
    resume: if ``out_dir`` already holds a run, continue it with its recorded
      ``model``, ``train`` and ``data`` (those given here are ignored).
    resume_steps: when resuming, the run's new ``train.steps`` (None: the
      recorded ones), e.g. more to extend it: the learning-rate schedule keeps
      its recorded length and holds its final value after it, so the result
      is bitwise that of one run with ``steps=resume_steps`` and
      ``schedule_steps`` the recorded length. Not below the step reached.
    max_steps_this_run: stop after this many steps of this call without a
      final checkpoint (as if killed); None runs to ``train.steps``.
    num_samples: sentences sampled from the trained model (temperature 0.8).
    progress: show a progress bar.
    data_parallel: split batch rows over all local devices.
    distributed: call ``jax.distributed.initialize()`` first (implies
      ``data_parallel``); None: the environment decides
      (``jaxequiv.lm.parallel.maybe_initialize_distributed``).
  """

  model: model_lib.ModelConfig
  train: train_lib.TrainConfig
  data: DataConfig = DataConfig()
  out_dir: str | None = None
  resume: bool = False
  resume_steps: int | None = None
  max_steps_this_run: int | None = None
  num_samples: int = 5
  progress: bool = True
  data_parallel: bool = False
  distributed: bool | None = None


def resuming(config: ExperimentConfig) -> bool:
  """Whether ``run(config)`` continues a recorded run (``resume`` and ``out_dir/config.json`` exists)."""
  return config.resume and config.out_dir is not None and os.path.exists(
      os.path.join(config.out_dir, rundir.CONFIG_FILE))


def from_fields(fields: Mapping[str, Any], **options) -> ExperimentConfig:
  """An ``ExperimentConfig`` from flat settings (``{"model.width": 64, "train.steps": 10, "data.spec": ...}``,
  the rest default) and the run ``options`` (``out_dir``, ``resume``, ...): how ``jaxequiv train`` builds one."""
  parts: dict[str, dict] = {"model": {}, "train": {}, "data": {}}
  for key, value in fields.items():
    group, name = key.split(".", 1)
    parts[group][name] = value
  return ExperimentConfig(model_lib.ModelConfig(**parts["model"]), train_lib.TrainConfig(**parts["train"]),
                          DataConfig(**parts["data"]), **options)


def fields(config: ExperimentConfig) -> dict[str, Any]:
  """The recorded settings of ``config``, flat: ``{"model.width": ..., "train.learning_rate": ..., ...}``."""
  return rundir.flatten({"model": dataclasses.asdict(config.model), "train": dataclasses.asdict(config.train),
                         "data": config.data.to_dict()})


def check_out_dir(config: ExperimentConfig, given: Mapping[str, str] = types.MappingProxyType({})) -> None:
  """Checks, before any data is read, that ``run(config)`` may write ``config.out_dir``.

  Without ``resume`` it must hold no checkpoint; with it, it must hold a run
  (its ``config.json``), so a mistyped directory is not a fresh run. Resuming keeps the recorded
  settings, so a setting the caller gave explicitly with another value is
  refused rather than ignored; ``train.steps`` is ``resume_steps`` instead,
  which may not be below the step the run reached.

  Args:
    config: the run.
    given: the settings given explicitly, each field (``"train.learning_rate"``)
      mapped to the caller's name for it (``"argument --lr"``).

  Raises:
    jaxequiv.rundir.RunDirError: checkpoints exist and ``resume`` is False, or
      ``resume`` is True and ``out_dir`` holds no ``config.json``.
    jaxequiv.rundir.ConfigMismatchError: one line naming the first differing
      setting given, its value and the recorded one, or ``resume_steps`` (by
      its name in ``given``, if there) below the step reached.
  """
  out = config.out_dir
  if out is None:
    return
  if not config.resume and runs.latest_step(out) is not None:
    raise rundir.RunDirError(f"{out} already holds checkpoints; resume it (train --resume) or choose another"
                             " directory (--out)")
  if not config.resume:
    return
  if not resuming(config):
    held = ("does not exist" if not os.path.isdir(out) else
            "holds checkpoints but no config.json, so its settings are lost" if runs.latest_step(out) is not None
            else "holds no config.json, so it is not a run directory")
    raise rundir.RunDirError(f"{given.get('resume', 'resume')}: {out} {held}; nothing to resume there (drop"
                             " --resume to start a new run, or check --out)")
  reached = runs.latest_step(out)
  if config.resume_steps is not None and reached is not None and config.resume_steps < reached:
    raise rundir.ConfigMismatchError(
        f"{given.get('train.steps', 'resume_steps')}: {config.resume_steps} is below step {reached} that {out} already"
        " reached; resuming can extend a run (a larger value), not undo steps")
  saved, asked = fields(recorded(config)), fields(config)
  for field, name in sorted(given.items(), key=lambda kv: kv[1]):
    if field != "train.steps" and asked.get(field) != saved.get(field):
      raise rundir.ConfigMismatchError(
          f"{name}: {asked.get(field)} differs from the run's {field} = {saved.get(field)!r}; resuming continues"
          f" {out} with its recorded settings: drop it or choose another directory")


def recorded(config: ExperimentConfig) -> ExperimentConfig:
  """``config`` with the ``model``, ``train`` and ``data`` recorded in ``config.out_dir/config.json``.

  ``train.schedule_steps`` is filled in (``TrainConfig.resolved``; runs recorded before it have none: their
  ``steps``), and ``train.steps`` is ``config.resume_steps`` if given.

  Raises:
    jaxequiv.rundir.RunDirError: one line naming the file, if it is missing or does not parse.
  """
  mcfg, tcfg, saved = runs.read_config(config.out_dir)
  try:
    data = DataConfig(**saved["data"])
  except (KeyError, TypeError) as e:
    raise rundir.RunDirError(f"{os.path.join(config.out_dir, rundir.CONFIG_FILE)} holds no valid data settings:"
                             f" {e}") from None
  tcfg = tcfg.resolved()
  if config.resume_steps is not None:
    tcfg = dataclasses.replace(tcfg, steps=config.resume_steps)
  return dataclasses.replace(config, model=mcfg, train=tcfg, data=data)


def data_sha256(train: Sequence[str], val: Sequence[str]) -> str:
  """SHA-256 of the sentences a run trains and validates on, recorded in ``config.json`` as ``data_sha256``.

  Resuming recomputes it from the data it reads and refuses a run whose data changed (an edited file, another
  corpus version) in one line naming the field.
  """
  return hashlib.sha256("\n".join([*train, "\x00", *val]).encode()).hexdigest()


def load_data(data: DataConfig, seq_len: int, seed: int) -> tuple[list[str], list[str]]:
  """``(train, validation)`` sentences: the corpus normalised, over-long sentences split at spaces, then split."""
  from jaxequiv.lm import corpus  # pylint: disable=import-outside-toplevel
  sentences = corpus.load_sentences(data.spec, max_len=seq_len, too_long="split", num_synthetic=data.num_synthetic,
                                    seed=seed, max_examples=data.max_examples, data_dir=data.data_dir)
  return corpus.train_val_split(sentences, data.val_fraction, seed)


@contextlib.contextmanager
def stop_on_signals() -> Iterator[list[int]]:
  """While open, SIGINT and SIGTERM are recorded in the yielded list instead of killing the process.

  The training loop polls the list and ends at the next step boundary with a
  checkpoint. A second signal acts as usual (the previous handlers are back
  once one arrived, and on exit). Outside the main thread nothing is changed.
  """
  got: list[int] = []
  if threading.current_thread() is not threading.main_thread():
    yield got
    return
  previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}

  def handler(signum, frame):  # pylint: disable=unused-argument
    got.append(signum)
    for s, h in previous.items():
      signal.signal(s, h)

  for s in previous:
    signal.signal(s, handler)
  try:
    yield got
  finally:
    for s, h in previous.items():
      signal.signal(s, h)


def _duration(seconds: float) -> str:
  """``"4 h 20 min"``, ``"12 min"`` or ``"40 s"``."""
  minutes = round(seconds / 60)
  if seconds < 90:
    return f"{seconds:.2g} s" if seconds < 10 else f"{seconds:.0f} s"
  return f"{minutes} min" if minutes < 90 else f"{minutes // 60} h {minutes % 60} min"


def iid_estimate(model: model_lib.ModelConfig, train: train_lib.TrainConfig, sentences: list[str], steps: int) -> str:
  """One line: an iid run's seconds per step against the LM's, measured here, and the time its ``steps`` to go take.

  Both steps are timed by ``jaxequiv.lm.train.step_seconds`` (the iid step's
  compile is reused by the run). An iid step packs its random prefixes, one
  context chain each, into many more rows than the LM's ``batch_size``: that
  is the ratio printed, and the reason the run is slow.
  """
  iid, iid_rows = train_lib.step_seconds(model, train, sentences, steps=1)
  lm, _ = train_lib.step_seconds(model, dataclasses.replace(train, objective="lm"), sentences)
  return (f"iid mode: {iid:.2f} s per step ({iid_rows} rows of random prefixes) against {lm:.3f} s for the LM step"
          f" ({train.batch_size} rows): {iid / lm:.3g}x; the run's {steps} steps to go will take about"
          f" {_duration(steps * iid)}"
          " (estimate from steps timed after compiling; --mode paired trains the LM's trajectory at the LM's cost)")


def run(config: ExperimentConfig, *, log: rundir.Log | None = rundir.say) -> dict[str, Any]:
  """Trains and evaluates one run; returns a JSON-able summary.

  Args:
    config: the run (see ``ExperimentConfig``).
    log: one-line notices (resuming, the data's size, damaged checkpoints skipped).

  Returns:
    ``{"out_dir", "step", "steps", "completed", "predictions_seen",
    "wall_seconds" (this call's training), "num_train_sentences",
    "num_train_chars", "num_val_sentences", "final" (the last validation
    record, or None), "best" (the lowest after step 0, its checkpoint kept:
    ``{"step", "val_nats_per_char", "val_bits_per_char"}`` or None), "samples",
    "history", "signal"}``. ``samples`` is empty
    unless the run completed. ``signal`` is None, or ``"SIGINT"`` /
    ``"SIGTERM"`` if one ended the run early at a step boundary (a checkpoint
    of that step saved in ``out_dir``: resume it).

  Raises:
    jaxequiv.rundir.RunDirError: the run directory is locked, damaged, or its
      recorded settings differ (one line).
    jaxequiv.training.NonFiniteLossError: the loss diverged (names the step).
    ValueError: the data cannot be read or split (one line naming it).
  """
  from jaxequiv.lm import parallel  # pylint: disable=import-outside-toplevel
  data_parallel = parallel.maybe_initialize_distributed(config.distributed) or config.data_parallel
  out = config.out_dir
  check_out_dir(config)
  config = dataclasses.replace(config, data=config.data.resolved())
  record_hash = True
  if resuming(config):
    record_hash = "data_sha256" in rundir.read_config(out)  # runs recorded before it resume without the hash
    config = recorded(config)
    if log is not None:
      step = runs.latest_step(out)
      log(f"resuming {out} {'from the start' if step is None else f'from step {step}'} with its saved settings")
  mcfg, tcfg = config.model, config.train
  train_sentences, val_sentences = load_data(config.data, mcfg.seq_len, tcfg.seed)
  n_chars = sum(len(s) for s in train_sentences)
  if log is not None:
    log(f"data {config.data.spec}: {len(train_sentences)} train sentences ({n_chars} characters),"
        f" {len(val_sentences)} validation")
    if tcfg.objective == "classification" and tcfg.mode == "iid" and not data_parallel:
      start = (runs.latest_step(out) or 0) if resuming(config) else 0
      log("iid mode: timing a step of it and of the LM first (the iid step costs many LM steps)")
      log(iid_estimate(mcfg, tcfg, train_sentences, tcfg.steps - start))
  extra = {"data": config.data.to_dict()}
  if record_hash:
    extra["data_sha256"] = data_sha256(train_sentences, val_sentences)
  t0 = time.time()
  try:
    with stop_on_signals() as got:
      result = train_lib.train(mcfg, tcfg, train_lib.sentence_batches(train_sentences, mcfg, tcfg),
                               val_sentences=val_sentences, out_dir=out, resume=config.resume,
                               max_steps_this_run=config.max_steps_this_run, progress=config.progress,
                               mesh=parallel.make_mesh() if data_parallel else None,
                               extra_config=extra, log=log, stop=lambda: bool(got))
  except Exception as e:  # pylint: disable=broad-except
    lost = parallel.peer_loss_error(e)  # another process of the job died: one line, prompt exit
    if lost is None:
      raise
    raise lost from None
  wall = time.time() - t0
  samples = []
  if result.completed and config.num_samples > 0:
    import jax  # pylint: disable=import-outside-toplevel
    from jaxequiv.lm import sample  # pylint: disable=import-outside-toplevel
    samples = sample.sample(result.state.params, mcfg, jax.random.key(tcfg.seed), config.num_samples,
                            temperature=SAMPLE_TEMPERATURE)
  return {"out_dir": out, "step": int(result.state.step), "steps": tcfg.steps, "completed": result.completed,
          "predictions_seen": result.predictions_seen, "wall_seconds": wall,
          "num_train_sentences": len(train_sentences), "num_train_chars": n_chars,
          "num_val_sentences": len(val_sentences), "final": runs.final_validation(result.history),
          "best": result.best, "samples": list(samples), "history": result.history,
          "signal": signal.Signals(got[0]).name if got else None}
