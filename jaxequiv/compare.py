"""Two run directories compared bit for bit: every checkpointed array, and the metrics.

Two runs that followed one trajectory (an LM run and a paired classifier run,
or a run and its resumed twin) still differ in their files: orbax names its
files at random, ``config.json`` records the ``objective``, metrics record wall
time. So this compares what the runs hold, not their files:

* one checkpoint step of each (the newest good one, or ``step``): every item
  (``params``, ``opt_state``, ...) restored and compared as raw bits
  (``jaxequiv.bitwise.compare_bits``);
* the metrics records, in order, every field but the wall-clock ones
  (``WALL_CLOCK_FIELDS``), as the bits of their values (JSON floats read back
  exactly as float64).

The settings that differ are listed too (they explain a difference, or show
what did not matter). ``jaxequiv compare RUN_A RUN_B`` prints ``lines()``.

Examples:
  >>> import tempfile, numpy as np
  >>> from jaxequiv import checkpoint, compare, rundir
  >>> runs = [tempfile.mkdtemp() for _ in range(3)]
  >>> for run, w, objective in zip(runs, [1.0, 1.0, 2.0], ["lm", "classification", "lm"]):
  ...   rundir.write_config(run, {"train": {"objective": objective}})
  ...   rundir.append_metrics(run, [{"step": 1, "loss": 0.5, "time": np.random.rand()}])
  ...   _ = checkpoint.save(run, 1, {"params": {"w": np.full(2, w, np.float32)}}, {})
  >>> compare.compare_runs(runs[0], runs[1]).equal
  True
  >>> compare.compare_runs(runs[0], runs[2]).first_leaf
  "params['w']"
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

import numpy as np

from jaxequiv import bitwise, checkpoint, rundir

WALL_CLOCK_FIELDS = frozenset({"time"})  # metrics fields that differ between identical runs by design
_PAIRED_HINT = (
    "an LM run and a classifier run agree bit for bit only with --mode paired and the same data, seed and settings:"
    " the classifier's rows are the LM's sentences in jaxequiv.batches.canonical_order (in your own code,"
    " jaxequiv.packing.paired_batches builds both batches)")


@dataclasses.dataclass(frozen=True)
class RunComparison:
  """What ``compare_runs`` found.

  Attributes:
    run_a, run_b: the run directories.
    steps: the newest good checkpoint step of each (or the ``step`` asked for, twice).
    step: the checkpoint step compared (the older of ``steps``, if they differ).
    items: item name (``params``, ``opt_state``, ...) -> its bitwise report;
      an item only one run has gets a report with ``mismatched_elements=-1``;
      empty if ``steps`` differ and the newer run no longer has ``step``.
    metrics: the metrics records compared field by field, wall clock excepted.
    first_metrics_step: the ``step`` of the first metrics record that differs
      (or that only one run has); None if they agree.
    settings: ``"field: A vs B"`` for each setting of ``config.json`` that differs.
  """

  run_a: str
  run_b: str
  steps: tuple[int, int]
  step: int
  items: dict[str, bitwise.BitwiseReport]
  metrics: bitwise.BitwiseReport
  first_metrics_step: int | None
  settings: tuple[str, ...]

  @property
  def equal(self) -> bool:
    return (self.steps[0] == self.steps[1] and all(r.equal for r in self.items.values()) and self.metrics.equal
            and self.first_metrics_step is None)

  @property
  def first_leaf(self) -> str | None:
    """The first differing array, e.g. ``"params['head']['bias']"``; None if every item agrees."""
    for name, report in self.items.items():
      if not report.equal:
        return name + report.mismatched_paths[0] if report.mismatched_paths else name
    return None

  def lines(self) -> list[str]:
    """A human-readable report, last line the verdict."""
    out = [f"A: {self.run_a}", f"B: {self.run_b}"]
    if self.steps[0] != self.steps[1]:
      out.append(f"newest good checkpoint: step {self.steps[0]} in A, {self.steps[1]} in B; compared step {self.step}")
    else:
      out.append(f"checkpoint step {self.step}")
    width = max(len(n) for n in [*self.items, "metrics"])
    out += [f"  {name:<{width}}  {_short(report)}" for name, report in self.items.items()]
    out.append(f"  {'metrics':<{width}}  {_short(self.metrics)} (not compared: {', '.join(sorted(WALL_CLOCK_FIELDS))})")
    out += [f"setting differs: {s}" for s in self.settings] or ["settings: identical"]
    if self.equal:
      out.append(f"EQUAL bit for bit: {', '.join(self.items)} at step {self.step} and all metrics")
      return out
    why = []
    if self.first_leaf is not None:
      why.append(f"first differing leaf {self.first_leaf}")
    if self.first_metrics_step is not None:
      why.append(f"first differing metrics at step {self.first_metrics_step}")
    if self.steps[0] != self.steps[1]:
      why.append("different newest checkpoints")
    if any(s.startswith("train.objective:") for s in self.settings):
      out.append(f"hint: {_PAIRED_HINT}")
    out.append(f"DIFFERENT: {'; '.join(why)}")
    return out


def _short(report: bitwise.BitwiseReport) -> str:
  """The report on one line: at most the first two differing paths."""
  paths = report.mismatched_paths
  shown = ", ".join(paths[:2]) + (f", ... {len(paths) - 2} more" if len(paths) > 2 else "")
  return (f"BitwiseReport(leaves={report.leaves}, elements={report.elements},"
          f" mismatched_elements={report.mismatched_elements}, mismatched_paths=({shown}))")


def _newest(run_dir: str) -> int:
  step = checkpoint.latest_step(run_dir)
  if step is None:
    raise rundir.RunDirError(f"no good checkpoint in {checkpoint.checkpoint_dir(run_dir)}")
  return step


def _items(run_dir: str, step: int) -> list[str]:
  d = os.path.join(checkpoint.checkpoint_dir(run_dir), str(step))
  return sorted((n for n in os.listdir(d) if os.path.isdir(os.path.join(d, n))), key=lambda n: (n != "params", n))


def _restore(run_dir: str, step: int, names: list[str]) -> dict[str, Any]:
  # The structure as saved, whatever the model, on one device whatever the mesh that wrote it.
  return checkpoint.restore(run_dir, {n: checkpoint.saved_like(run_dir, step, n) for n in names}, step).items


def _leaf(value: Any) -> np.ndarray:
  """A metrics value as an array whose bits are compared (anything not a number: its JSON bytes)."""
  if isinstance(value, (bool, int, float)):
    return np.asarray(value, np.float64 if isinstance(value, float) else np.int64)
  return np.frombuffer(json.dumps(value, sort_keys=True).encode(), np.uint8)


def _records(run_dir: str) -> list[dict[str, np.ndarray]]:
  return [{k: _leaf(v) for k, v in r.items() if k not in WALL_CLOCK_FIELDS} for r in rundir.read_metrics(run_dir)]


def _first_metrics_step(a: list[dict], b: list[dict]) -> int | None:
  for ra, rb in zip(a, b):
    if not bitwise.compare_bits(ra, rb).equal:
      return int(ra["step"])
  if len(a) != len(b):
    return int((a if len(a) > len(b) else b)[min(len(a), len(b))]["step"])
  return None


def _settings(run_a: str, run_b: str) -> tuple[str, ...]:
  a, b = rundir.flatten(rundir.read_config(run_a)), rundir.flatten(rundir.read_config(run_b))
  absent = "<absent>"
  return tuple(f"{k}: {a.get(k, absent)!r} vs {b.get(k, absent)!r}"
               for k in sorted(set(a) | set(b)) if a.get(k, absent) != b.get(k, absent))


def compare_runs(run_a: str, run_b: str, step: int | None = None) -> RunComparison:
  """Compares two run directories bit for bit: checkpointed arrays at one step, and the metrics.

  Args:
    run_a, run_b: run directories (``config.json``, ``metrics.jsonl``,
      ``checkpoints/``, as ``jaxequiv train`` writes them).
    step: the checkpoint step to compare; None: the newest good one of each
      (if those differ, the runs differ, and the newer run's checkpoint at the
      older one's step is compared when it has one).

  Returns:
    A ``RunComparison``; ``.equal`` is the verdict, ``.lines()`` a report.

  Raises:
    RunDirError: (a ``ValueError``) one line naming the directory, if either
      is not a run directory, holds no good checkpoint or lacks ``step``.
  """
  for run in (run_a, run_b):
    if not os.path.isdir(run):
      raise rundir.RunDirError(f"{run!r} is not a directory (a run directory, as jaxequiv train --out writes it)")
  settings = _settings(run_a, run_b)  # reads config.json: fails first, in one line, for a non-run directory
  steps = (step, step) if step is not None else (_newest(run_a), _newest(run_b))
  compared = min(steps)
  missing = [run for run in (run_a, run_b) if compared not in checkpoint.steps(run)]
  if missing and steps[0] == steps[1]:
    raise rundir.RunDirError(f"no checkpoint for step {compared} in {checkpoint.checkpoint_dir(missing[0])};"
                             f" saved steps: {sorted(checkpoint.steps(missing[0]))}")
  names_a, names_b = ([], []) if missing else (_items(run_a, compared), _items(run_b, compared))
  common = [n for n in names_a if n in names_b]  # params first
  arrays_a, arrays_b = (_restore(run_a, compared, common), _restore(run_b, compared, common)) if common else ({}, {})
  items = {n: bitwise.compare_bits(arrays_a[n], arrays_b[n]) for n in common}
  for n in sorted(set(names_a) ^ set(names_b)):
    items[n] = bitwise.BitwiseReport(0, 0, -1, (f" (only in {'A' if n in names_a else 'B'})",))
  metrics_a, metrics_b = _records(run_a), _records(run_b)
  return RunComparison(run_a, run_b, steps, compared, items, bitwise.compare_bits(metrics_a, metrics_b),
                       _first_metrics_step(metrics_a, metrics_b), settings)
