"""scripts/accelerator_check.sh runs end to end at tiny sizes on CPU, so its first run on a GPU is not its first run."""

import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "accelerator_check.sh"
STEPS = ("verify", "bitwise_tests", "bench_train", "bench_peers", "bench_equivalence", "bench_sample")


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
  out = tmp_path_factory.mktemp("accelerator_check")
  # A plain checkout: the package comes from PYTHONPATH (the script sets it), not from the installed copy.
  env = dict(os.environ, JAXEQUIV_CHECK_OUT=str(out), PYTHON=sys.executable, JAX_PLATFORMS="cpu")
  env.pop("PYTHONPATH", None)
  proc = subprocess.run(["bash", str(SCRIPT), "--tiny"], cwd="/", env=env, capture_output=True, text=True,
                        timeout=900)
  print(proc.stdout[-4000:], proc.stderr[-2000:])
  return proc, out


# The tiny run starts six processes that each compile their models (about 100 s of CPU on a quiet 2-core machine):
# slow, so it runs with `pytest -m slow`; the negative control below stays in the default suite.
@pytest.mark.slow
def test_tiny_run_passes_every_step(tiny_run):
  proc, out = tiny_run
  summary = (out / "summary.md").read_text()
  print(summary)
  assert proc.returncode == 0, summary
  for step in STEPS:
    assert f"| {step} | PASS |" in summary, step
    assert (out / f"{step}.log").exists(), step
  assert "every step passed" in summary


@pytest.mark.slow
def test_tiny_run_writes_each_benchmark_report(tiny_run):
  _, out = tiny_run
  for name in ("bench_train.md", "bench_peers.md", "bench_equivalence.md", "bench_sample.md", "machine.txt"):
    assert (out / name).stat().st_size > 0, name
  assert "jaxequiv" in (out / "bench_peers.md").read_text()
  assert "PASS  float32 gradients" in (out / "verify.log").read_text()


def test_a_failing_step_fails_the_run(tmp_path):
  """Negative control: a step that fails shows as FAIL in the summary and fails the run (a fake python fails fast)."""
  fake = tmp_path / "fake_python"
  fake.write_text('#!/bin/sh\ncase "$*" in *default_backend*) echo cpu; exit 0;; esac\nexit 3\n')
  fake.chmod(0o755)
  out = tmp_path / "out"
  env = dict(os.environ, JAXEQUIV_CHECK_OUT=str(out), PYTHON=str(fake))
  proc = subprocess.run(["bash", str(SCRIPT), "--tiny"], cwd="/", env=env, capture_output=True, text=True, timeout=60)
  summary = (out / "summary.md").read_text()
  assert proc.returncode == 1, summary
  for step in STEPS:
    assert f"| {step} | FAIL (exit 3) |" in summary, step
  assert "some steps FAILED" in summary
