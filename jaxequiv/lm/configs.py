"""The LM wing's settings as plain frozen dataclasses, importable without JAX.

``TrainConfig`` (re-exported by ``jaxequiv.lm.train``) and ``DataConfig``
(re-exported by ``jaxequiv.lm.experiment``); ``jaxequiv train --help`` reads its
flag defaults from here without starting JAX.

Examples:
  >>> from jaxequiv.lm.configs import TrainConfig
  >>> TrainConfig(objective="classification", mode="iid").batch_size
  32
  >>> TrainConfig(mode="random")
  Traceback (most recent call last):
  ...
  ValueError: mode must be one of ('paired', 'iid'), got 'random'
"""

from __future__ import annotations

import dataclasses
import numbers
import os

from jaxequiv.configs import OptimizerConfig

OBJECTIVES = ("lm", "classification")
MODES = ("paired", "iid")


@dataclasses.dataclass(frozen=True)
class TrainConfig(OptimizerConfig):
  """The optimizer's settings (``jaxequiv.configs.OptimizerConfig``: steps, learning rate,
  schedule, weight decay, clipping, Adam moments) plus batching and bookkeeping. Frozen and hashable.

  Attributes:
    batch_size: rows per batch (packed sentences); for ``mode="iid"``, see
      ``jaxequiv.lm.data.classification_batches``.
    eval_every: validate every this many steps (0: only at the end).
    checkpoint_every: save a checkpoint every this many steps (0: only at the end).
    log_every: write a training-loss record every this many steps.
    eval_batch_size: sentences per validation batch.
    max_to_keep: checkpoints kept on disk.
    seed: seeds the parameter init and the data order.
    objective: ``"lm"`` or ``"classification"``.
    mode: ``"paired"`` or ``"iid"`` (classification only; the LM ignores it).
    schedule_steps: the learning-rate schedule's length (warm-up + cosine);
      None: ``steps``. ``steps`` is then only how many steps to train: after
      the schedule ends the learning rate stays at its final value (optax's
      schedule holds it), so ``steps=30, schedule_steps=20`` is a 20-step run
      extended to 30 by a resume, bit for bit. The optimizer is built from
      ``optimizer_config()``, never from this config itself.
  """

  batch_size: int = 32
  eval_every: int = 200
  checkpoint_every: int = 500
  log_every: int = 10
  eval_batch_size: int = 64
  max_to_keep: int = 3
  seed: int = 0
  objective: str = "lm"
  mode: str = "paired"
  schedule_steps: int | None = None

  def __post_init__(self):
    if self.objective not in OBJECTIVES:
      raise ValueError(f"objective must be one of {OBJECTIVES}, got {self.objective!r}")
    if self.mode not in MODES:
      raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
    for name in ("steps", "batch_size", "log_every", "eval_batch_size", "max_to_keep"):
      if getattr(self, name) < 1:
        raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
    for name in ("eval_every", "checkpoint_every"):
      if getattr(self, name) < 0:
        raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
    s = self.schedule_steps
    if s is not None and (isinstance(s, bool) or not isinstance(s, numbers.Integral) or s < 1):
      raise ValueError(f"schedule_steps must be None (steps) or an int >= 1, got {s!r}")
    super().__post_init__()

  @property
  def schedule_length(self) -> int:
    """``schedule_steps``, or ``steps`` when it is None."""
    return self.steps if self.schedule_steps is None else self.schedule_steps

  def resolved(self) -> TrainConfig:
    """This config with ``schedule_steps`` filled in, as a run records it (then changing ``steps`` keeps it).

    >>> TrainConfig(steps=600).resolved().schedule_steps
    600
    """
    return dataclasses.replace(self, schedule_steps=self.schedule_length)

  def optimizer_config(self) -> OptimizerConfig:
    """What ``jaxequiv.training.make_optimizer`` and ``make_schedule`` take: ``steps`` is the schedule's length.

    >>> TrainConfig(steps=900, schedule_steps=600).optimizer_config().steps
    600
    """
    return dataclasses.replace(OptimizerConfig.of(self), steps=self.schedule_length)


def trajectory_settings(settings: dict) -> dict:
  """A run's recorded settings as a resume compares them: ``train.steps`` (only where the run stops) left out,
  ``train.schedule_steps`` resolved (absent, as in runs recorded before it, or None: ``steps``).

  >>> trajectory_settings({"train": {"steps": 600, "seed": 0}, "data": {}})
  {'train': {'seed': 0, 'schedule_steps': 600}, 'data': {}}
  """
  train = settings.get("train")
  if not isinstance(train, dict):
    return settings
  train = dict(train)
  steps = train.pop("steps", None)
  if train.get("schedule_steps") is None:
    train["schedule_steps"] = steps
  return {**settings, "train": train}


@dataclasses.dataclass(frozen=True)
class DataConfig:
  """Which sentences a run trains on (recorded in ``config.json`` under ``"data"``).

  Attributes:
    spec: a ``jaxequiv.lm.corpus`` spec: ``builtin``, ``synthetic``,
      ``tfds:NAME[/CONFIG][:SPLIT]`` or a text file's path.
    val_fraction: share of distinct sentences held out, in [0, 1).
    num_synthetic: sentences sampled for ``synthetic``.
    max_examples: tfds only: examples read (None: the corpus default).
    data_dir: tfds only: its data directory.
  """

  spec: str = "builtin"
  val_fraction: float = 0.1
  num_synthetic: int = 20000
  max_examples: int | None = None
  data_dir: str | None = None

  def resolved(self) -> DataConfig:
    """This config with a text file's ``spec`` made absolute: a resumed run reads that file from any directory."""
    named = self.spec in ("builtin", "synthetic") or self.spec.startswith("tfds:")
    if named or not os.path.isfile(self.spec):
      return self
    return dataclasses.replace(self, spec=os.path.abspath(self.spec))

  def to_dict(self) -> dict:
    """The recorded JSON: the unset tfds-only fields are left out."""
    return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}
