"""Multi-process training on JAX's own runtime: process-local rows, the launcher, one-line failures.

The multi-process checks start real local processes (``jax.distributed`` with a
coordinator on 127.0.0.1, gloo collectives on CPU); every subprocess has a
timeout. The end-to-end training checks run ``scripts/multiprocess_drill.py``'s
smallest case.
"""

from __future__ import annotations

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


def _stderr_lines(proc):
  return [l for l in proc.stderr.splitlines() if l.strip()]


def test_wrong_process_id_is_one_line():
  port = launch.free_port()
  proc, _ = _run([sys.executable, "-m", "jaxequiv", "train", "--data-parallel", "--no-determinism-flags"],
                 env={parallel.COORDINATOR_ENV: f"127.0.0.1:{port}", parallel.NUM_PROCESSES_ENV: "2",
                      parallel.PROCESS_ID_ENV: "5"})
  assert proc.returncode == 2, proc.stderr[-2000:]
  assert _stderr_lines(proc) == ["jaxequiv train: error: process id 5 is outside 0..1 for 2 processes"]


def test_unreachable_coordinator_is_one_line_within_the_timeout():
  port = launch.free_port()  # nobody listens there: process 1 waits for a coordinator that never comes
  script = "from jaxequiv.lm import parallel; parallel.maybe_initialize_distributed(); print('joined')"
  proc, wall = _run([sys.executable, "-c", script],
                    env={parallel.COORDINATOR_ENV: f"127.0.0.1:{port}", parallel.NUM_PROCESSES_ENV: "2",
                         parallel.PROCESS_ID_ENV: "1", parallel.INIT_TIMEOUT_ENV: "3"})
  print(f"unreachable coordinator: status {proc.returncode} after {wall:.1f} s")
  assert proc.returncode == parallel.PEER_LOST_STATUS, proc.stderr[-2000:]
  lines = [l for l in _stderr_lines(proc) if l.startswith("jaxequiv")]
  assert len(lines) == 1 and "process 1 of 2 could not join the job at 127.0.0.1:" in lines[0], proc.stderr[-2000:]
  assert "joined" not in proc.stdout
  assert wall < 3 + 60  # the watchdog's 3 s plus interpreter start-up on a loaded machine


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
