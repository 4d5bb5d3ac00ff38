"""Multi-process training on JAX's own runtime: process-local rows, the launcher, one-line failures.

The multi-process checks start real local processes (``jax.distributed`` with a
coordinator on 127.0.0.1, gloo collectives on CPU); every subprocess has a
timeout. The end-to-end training checks run ``scripts/multiprocess_drill.py``'s
smallest case.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from jaxequiv import batches
from jaxequiv.lm import corpus, data, launch, parallel

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _sentences():
  return corpus.load_sentences("synthetic", max_len=16, num_synthetic=200, too_long="split")


@pytest.mark.parametrize("packed", [True, False])
def test_process_rows_are_the_global_batch_rows_bit_for_bit(packed):
  s = _sentences()
  full = list(data.lm_batches(s, 4, 16, seed=3, epochs=1, packed=packed))
  for rows in (slice(0, 2), slice(2, 4), slice(1, 3), slice(0, 4)):
    part = list(data.lm_batches(s, 4, 16, seed=3, epochs=1, packed=packed, rows=rows))
    assert len(part) == len(full) > 0
    for a, b in zip(full, part):
      for x, y in zip(a, b):
        x = np.asarray(x)[rows]
        assert x.dtype == y.dtype and x.shape == y.shape
        assert np.array_equal(x.view(np.uint8), np.asarray(y).view(np.uint8))
  # resuming at step k with rows gives step k's rows
  k = 3
  late = next(data.lm_batches(s, 4, 16, seed=3, packed=packed, rows=slice(2, 4), start_step=k))
  assert np.array_equal(late.inputs, full[k].inputs[2:4])


def test_classification_rows_keep_the_examples_whole():
  s = _sentences()
  full = next(data.classification_batches(s, 4, 16, seed=1))
  part = next(data.classification_batches(s, 4, 16, seed=1, rows=slice(2, 4)))
  assert np.array_equal(part.tokens, full.tokens[2:4])
  for x, y in zip(full[1:], part[1:]):
    assert np.array_equal(x, y)


def test_lm_rows_encodes_only_its_rows():
  s = ["Hi.", "Ok then.", "A cat.", "Go."]
  full = batches.lm_batch(batches.canonical_order(s), 8, num_rows=4, packed=True)
  assert full.mask[:3].all(axis=1).any() and full.mask[3:].sum() == 0  # three rows hold everything
  empty = data.lm_rows(s, 8, slice(3, 4))
  assert empty.mask.sum() == 0 and empty.inputs.shape == (1, 8)


class _Mesh2:
  shape = {"data": 2}


def test_process_rows_single_process_and_divisibility():
  assert parallel.process_rows(6) == slice(0, 6)
  with pytest.raises(ValueError, match="R=5 rows, not divisible"):
    parallel.process_rows(5, _Mesh2())


def test_distributed_env_and_job_checks():
  assert parallel.distributed_env({}) is None
  env = {parallel.COORDINATOR_ENV: "127.0.0.1:1234", parallel.NUM_PROCESSES_ENV: "2",
         parallel.PROCESS_ID_ENV: "x"}
  with pytest.raises(parallel.DistributedError, match="JAXEQUIV_PROCESS_ID='x' is not an integer"):
    parallel.distributed_env(env)
  with pytest.raises(parallel.DistributedError, match="process id 2 is outside 0..1 for 2 processes"):
    parallel.check_job("127.0.0.1:1234", 2, 2)
  with pytest.raises(parallel.DistributedError, match="is not HOST:PORT"):
    parallel.check_job("localhost", 2, 0)
  with pytest.raises(parallel.DistributedError, match="must be >= 1"):
    parallel.check_job("127.0.0.1:1", 0, 0)


def _run(argv, env=None, timeout=120):
  t0 = time.monotonic()
  proc = subprocess.run(argv, cwd=ROOT, env={**os.environ, **(env or {})}, capture_output=True, text=True,
                        timeout=timeout)
  return proc, time.monotonic() - t0


def test_launcher_forwards_the_first_failure_and_stops_the_others(tmp_path):
  script = tmp_path / "child.py"
  script.write_text(textwrap.dedent("""
      import os, sys, time
      i = int(os.environ["JAXEQUIV_PROCESS_ID"])
      print(f"hello from {i} of {os.environ['JAXEQUIV_NUM_PROCESSES']}", flush=True)
      if i == 1:
        sys.exit(3)
      time.sleep(60)
  """))
  proc, wall = _run([sys.executable, "-m", "jaxequiv.lm.launch", "--processes", "2", "--grace", "2", "--",
                     str(script)], timeout=60)
  assert proc.returncode == 3, proc.stderr
  assert "[p0] hello from 0 of 2" in proc.stdout and "[p1] hello from 1 of 2" in proc.stdout
  assert "jaxequiv launch: process 1 exited with status 3; stopping the 1 still running" in proc.stderr
  assert wall < 30  # process 0 would sleep 60 s: the launcher stopped it


def test_launcher_rejects_a_missing_command():
  assert launch.main(["--processes", "2"]) == 2
  with pytest.raises(SystemExit):
    launch.main(["--processes", "0", "--", "train"])


def test_drill_two_processes_train_match_bits_survive_a_kill_and_resume(tmp_path):
  """scripts/multiprocess_drill.py --processes 2 --quick: the CI case (a few minutes on a loaded 2-core machine)."""
  out = tmp_path / "multiprocess"
  proc, wall = _run([sys.executable, "scripts/multiprocess_drill.py", "--processes", "2", "--quick", "--out", str(out),
                     "--timeout", "300"], env={"PYTHONPATH": ROOT}, timeout=1500)
  print(f"drill: {wall:.0f} s")
  assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
  record = json.loads((tmp_path / "multiprocess.json").read_text())
  row, = record["data"]["rows"]
  assert (row["processes"], row["devices"], row["steps"]) == (2, 2, 4)
  for case in ("reference", "paired", "resume"):
    assert row[case]["status"] == 0, row[case]
  # bitwise: 2 processes == 1 process with 2 devices; LM == paired classifier; killed + resumed == uninterrupted
  assert row["lm_vs_reference_mismatched"]["mismatched"] == 0
  assert row["lm_vs_paired_mismatched"]["mismatched"] == 0
  assert row["resumed_vs_reference_mismatched"]["mismatched"] == 0
  assert row["kill"]["victim_was_running"] and row["kill"]["checkpoints_at_kill"]
  survivor, = row["kill"]["others"]
  assert survivor["status"] == 1 and survivor["seconds"] < record["data"]["kill_exit_bound_s"], survivor
  assert "lost a peer process" in survivor["last_line"] and not survivor["traceback"], survivor
  bad_id, no_coordinator = record["data"]["bad_jobs"]
  assert bad_id["status"] == 2 and bad_id["lines_on_stderr"] == 1
  assert bad_id["line"] == "jaxequiv train: error: process id 2 is outside 0..1 for 2 processes"
  assert no_coordinator["status"] == parallel.PEER_LOST_STATUS and no_coordinator["lines_on_stderr"] == 1
  assert "could not join the job at 127.0.0.1:" in no_coordinator["line"]
  assert "| 2 | 2 | 4 | 1 | all bits | all bits" in (tmp_path / "multiprocess.md").read_text()


@pytest.mark.slow
def test_drill_two_devices_per_process_within_the_stated_bound(tmp_path):
  """2 processes x 2 devices vs 1 process x 4: the all-reduce order differs; the params stay within the bound."""
  out = tmp_path / "multiprocess"
  proc, wall = _run([sys.executable, "scripts/multiprocess_drill.py", "--processes", "2", "--devices-per-process", "2",
                     "--quick", "--out", str(out), "--timeout", "300"], env={"PYTHONPATH": ROOT}, timeout=1500)
  assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
  record = json.loads((tmp_path / "multiprocess.json").read_text())
  row, = record["data"]["rows"]
  rtol = record["data"]["rtol_across_processes"]
  err = row["lm_vs_reference_mismatched"]["max_rel_err"]
  print(f"2x2 vs 1x4 after {row['steps']} steps: {row['lm_vs_reference_mismatched']['mismatched']} elements differ,"
        f" max rel err {err:.3e} (bound {rtol})")
  assert err <= rtol
  assert row["lm_vs_paired_mismatched"]["mismatched"] == 0  # resumed LM == uninterrupted paired, same topology
  survivor, = row["kill"]["others"]
  assert survivor["status"] is not None and survivor["seconds"] < record["data"]["kill_exit_bound_s"], survivor
