"""Shared test helpers: a run directory in the ``jaxequiv.checkpoint`` layout, and damage to it."""

from __future__ import annotations

import dataclasses
import os

import optax

from jaxequiv import checkpoint, rundir


def write_run(run_dir: str, params, model_config, step: int = 7, **meta) -> str:
  """A run directory as ``jaxequiv.lm.train`` writes it: ``config.json`` + one checkpoint of params and Adam state.

  Returns the checkpoint's directory.
  """
  cfg = {"model": dataclasses.asdict(model_config), "train": {}}
  rundir.write_config(run_dir, cfg)
  items = {"params": params, "opt_state": optax.adam(1e-3).init(params)}
  return checkpoint.save(run_dir, step, items, {"config": cfg, "predictions_seen": 0, **meta})


def files_of(step_dir: str, under: str = "") -> list[str]:
  """Every file below ``step_dir/under``, sorted (absolute paths)."""
  out = []
  for d, _, names in os.walk(os.path.join(step_dir, under)):
    out += [os.path.join(d, n) for n in names]
  return sorted(out)


def largest_file(step_dir: str, under: str = "params") -> str:
  """The biggest file of an item: where the array bytes are."""
  return max(files_of(step_dir, under), key=os.path.getsize)


def flip_byte(path: str, offset: int | None = None) -> None:
  """Flips every bit of one byte (the middle one by default)."""
  with open(path, "r+b") as f:
    data = bytearray(f.read())
    i = len(data) // 2 if offset is None else offset
    data[i] ^= 0xFF
    f.seek(0)
    f.write(data)


def truncate(path: str) -> None:
  """Cuts a file to half its length."""
  with open(path, "r+b") as f:
    f.truncate(os.path.getsize(path) // 2)

