"""Reading a training run directory: its settings, its newest good checkpoint, its params, its validation.

What ``jaxequiv.lm.train.train`` writes (``jaxequiv.rundir`` and
``jaxequiv.checkpoint`` layout), read back for sampling, resuming from the
command line and reports. Checksums are verified on every read; damaged
checkpoints are skipped with a one-line notice.

Examples:
  >>> final_validation([{"step": 5, "val_nats_per_char": 2.0}, {"step": 6, "loss": 1.0}])
  {'step': 5, 'val_nats_per_char': 2.0}
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import jax

from jaxequiv import checkpoint
from jaxequiv import model as model_lib
from jaxequiv import rundir
from jaxequiv.lm import train


def configs_from_dict(cfg: dict, where: str = "config") -> tuple[model_lib.ModelConfig, train.TrainConfig]:
  """``(ModelConfig, TrainConfig)`` from a ``train.config_dict``; ``RunDirError`` naming ``where`` if they do not parse."""
  try:
    return model_lib.ModelConfig(**cfg["model"]), train.TrainConfig(**cfg["train"])
  except (KeyError, TypeError, ValueError) as e:
    raise rundir.RunDirError(f"{where} does not hold valid model/train settings: {e}") from None


def read_config(out_dir: str) -> tuple[model_lib.ModelConfig, TrainConfig, dict]:
  """``(model_config, train_config, whole_json)`` from ``out_dir/config.json`` (``jaxequiv.rundir.read_config``)."""
  cfg = rundir.read_config(out_dir)
  return (*configs_from_dict(cfg, os.path.join(out_dir, rundir.CONFIG_FILE)), cfg)


def latest_step(out_dir: str) -> int | None:
  """The step of the newest checkpoint in ``out_dir`` that passes its checksums, or None."""
  return checkpoint.latest_step(out_dir)


def recorded_config(out_dir: str, step: int | None = None) -> dict:
  """The settings recorded in a checkpoint (newest good one by default): what a resume must match."""
  return dict(checkpoint.restore(out_dir, {}, step).meta.get("config", {}))


def best(out_dir: str) -> dict | None:
  """The lowest validation after step 0 recorded in the newest good checkpoint, or None.

  ``{"step", "val_nats_per_char", "val_bits_per_char"}``; ``jaxequiv.lm.train.train`` keeps a checkpoint of that
  step (``load_params(out_dir, best(out_dir)["step"])``).
  """
  return checkpoint.restore(out_dir, {}).meta.get("best")


def load_params(out_dir: str, step: int | None = None) -> tuple[Any, model_lib.ModelConfig]:
  """``(params, model_config)`` of a run's newest good (or given) checkpoint, on one device.

  The model config is the one recorded in the checkpoint. The params are read
  onto ``jax.devices()[0]`` whatever mesh wrote them, so a data-parallel run
  samples on one device.

  Raises:
    rundir.RunDirError: one line, if the directory has no good checkpoint, or its
      params do not fit its recorded model config.
  """
  if not checkpoint.steps(out_dir) and not os.path.exists(os.path.join(out_dir, rundir.CONFIG_FILE)):
    path = os.path.join(out_dir, rundir.CONFIG_FILE)
    raise rundir.RunDirError(f"{path} not found: is {out_dir!r} a training run directory?")
  found = {}

  def like(meta):
    cfg = meta.get("config", {})
    if "model" not in cfg:  # a checkpoint without recorded settings: fall back to config.json
      cfg = rundir.read_config(out_dir)
    try:
      found["model"] = model_lib.ModelConfig(**cfg["model"])
    except (KeyError, TypeError, ValueError) as e:
      raise rundir.RunDirError(f"checkpoint step {meta.get('step')} in {out_dir!r} has no valid model settings:"
                               f" {e}") from None
    shapes = jax.eval_shape(lambda: model_lib.init(jax.random.key(0), found["model"]))
    return {"params": checkpoint.single_device(shapes)}

  restored = checkpoint.restore(out_dir, like, step)
  return restored.items["params"], found["model"]


def final_validation(history: Sequence[dict]) -> dict | None:
  """The last validation record of a history, or None."""
  vals = [r for r in history if "val_nats_per_char" in r]
  return vals[-1] if vals else None
