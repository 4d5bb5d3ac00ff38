"""Parts of scripts/fault_drill.py at its size: damaged metadata, links out of a run directory, and the command-line
edges (sizes, input files, library; scripts/fault_drill_edges.py).

Each metadata case damages a copy of a run stopped at step 4 of 8 and resumes it: the run must end bitwise equal
(SHA-256 of every params and optimizer state leaf, and every metrics.jsonl record) to an uninterrupted one, with one
line per damaged checkpoint and files outside the run untouched. The edge cases run the command line as the drill
does. The full drill (kills, signals, disks, data, flags) is ``python scripts/fault_drill.py``
(results/fault_drill.md).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import shutil

import pytest

from jaxequiv import checkpoint, rundir

_SPEC = importlib.util.spec_from_file_location(
    "fault_drill", os.path.join(os.path.dirname(__file__), "..", "scripts", "fault_drill.py"))
drill = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(drill)
drill.TCFG = dataclasses.replace(drill.TCFG, steps=8, eval_every=4, log_every=2)  # smaller than the drill's 24 steps
STOP = 4


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
  """(work dir, a run stopped at step STOP, (digest, metrics) of the uninterrupted run)."""
  work = str(tmp_path_factory.mktemp("drill"))
  ref, base = os.path.join(work, "reference"), os.path.join(work, "base")
  want = (drill.digest(drill.run(ref).state), drill.metrics_of(ref))
  drill.run(base, max_steps=STOP)
  return work, base, want


CASES = list(drill.metadata_cases())


@pytest.mark.parametrize("name", CASES)
def test_damaged_metadata_is_reported_once_and_skipped(runs, name):
  work, base, want = runs
  d = os.path.join(work, f"case_{CASES.index(name)}")
  shutil.copytree(base, d)
  drill.metadata_cases()[name](d)
  r = drill.resumed_row("metadata", name, d, want)
  print(r)
  assert r["ok"] and r["damaged"] == 1 and r["one_line"] == 2  # the notice, and the move to damaged/
  assert checkpoint.steps(d)[0] == drill.TCFG.steps and len(os.listdir(os.path.join(d, checkpoint.DAMAGED_DIR))) == 1


def test_links_out_of_the_run_are_not_followed(runs):
  work, base, want = runs
  rows = drill.links(work, base, want)
  print(rows)
  assert len(rows) == 2 and all(r["ok"] and r["tracebacks"] == 0 for r in rows)


def test_totals_are_summed_from_the_rows():
  rows = [drill.row("k", "a", True, "yes", runs=2, kills=3, damaged=1), drill.row("k", "b", False, "refused", one_line=1)]
  t = drill.totals(rows)
  assert (t["runs"], t["kills"], t["damaged"], t["one_line"], t["ok"], t["scenarios"]) == (3, 3, 1, 1, 1, 2)
  assert rows[1]["outcome"] == "NO: refused"


def test_resume_with_an_edited_model_setting_names_the_field_before_reading_arrays(runs, capfd):
  """What an edited config.json amounts to: settings differ from the checkpoint's record (here width 16 -> 32)."""
  work, base, _ = runs
  d = os.path.join(work, "edited")
  shutil.copytree(base, d)
  wider = dataclasses.replace(drill.MCFG, width=2 * drill.MCFG.width)
  capfd.readouterr()
  with pytest.raises(rundir.ConfigMismatchError) as e:
    drill.tr.train(wider, drill.TCFG, drill.tr.sentence_batches(drill.SENTENCES, wider, drill.TCFG), out_dir=d,
                   progress=False, log=lambda m: None)
  err = capfd.readouterr().err
  assert f"model.width: recorded {drill.MCFG.width}, now {wider.width}" in str(e.value) and "\n" not in str(e.value)
  assert "Traceback" not in err and "Exception ignored" not in err, err[-2000:]


@pytest.mark.parametrize("group", ["size_cases", "file_cases", "library_cases"])
def test_command_line_edges_are_refused_in_one_line(tmp_path, group):
  """The drill's sizes, input files and library kinds as they run in it (each case a subprocess or an in-process
  call): exit status, one closing line with the expected text, no traceback, no JAX imported where required."""
  rows = getattr(drill.edges, group)(str(tmp_path), dict(os.environ))
  for r in rows:
    print(r["ok"], r["scenario"], r["outcome"])
  assert rows and all(r["ok"] and r["tracebacks"] == 0 for r in rows), [r for r in rows if not r["ok"]]


def test_a_hang_or_a_traceback_fails_a_case(tmp_path):
  """Negative controls of the drill's own check: a command that hangs, and one that ends in a traceback."""
  env = dict(os.environ)
  hung, _ = drill.edges.cli_case("k", "hang", [], "x", env=env, timeout=1, shell="sleep 5")
  crashed, _ = drill.edges.cli_case("k", "crash", [], "boom", env=env, shell="python -c 'raise SystemExit(\"Traceback"
                                                                                 " (most recent call last)\")'")
  assert not hung["ok"] and "a hang" in hung["outcome"]
  assert not crashed["ok"] and crashed["tracebacks"] == 1
