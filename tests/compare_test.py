"""jaxequiv.compare on hand-written run directories: what counts as a difference, and what does not."""

import os
import subprocess
import sys

import numpy as np
import pytest

from jaxequiv import checkpoint, compare, rundir


def _run(path, *, w=1.0, objective="lm", steps=(1, 2), records=None, extra_item=False, seed=0):
  run = str(path)
  rundir.write_config(run, {"train": {"objective": objective, "seed": seed}})
  rundir.append_metrics(run, records if records is not None else [
      {"step": s, "loss": 1.0 / s, "time": np.random.rand()} for s in steps])
  for s in steps:
    items = {"params": {"w": np.full(3, w * s, np.float32), "b": np.zeros(2, np.float32)},
             "opt_state": {"count": np.array(s, np.int32)}}
    if extra_item:
      items["ema"] = {"w": np.zeros(3, np.float32)}
    checkpoint.save(run, s, items, {})
  return run


def test_equal_runs_differ_only_in_files_objective_and_wall_time(tmp_path):
  a, b = _run(tmp_path / "a"), _run(tmp_path / "b", objective="classification")
  c = compare.compare_runs(a, b)
  assert c.equal and c.step == 2 and list(c.items) == ["params", "opt_state"]  # params first
  assert c.settings == ("train.objective: 'lm' vs 'classification'",) and c.first_leaf is None
  assert c.lines()[-1] == "EQUAL bit for bit: params, opt_state at step 2 and all metrics"


def test_a_flipped_bit_names_its_leaf_and_the_hint_points_at_canonical_order(tmp_path):
  a = _run(tmp_path / "a")
  b = _run(tmp_path / "b", objective="classification", w=float(np.nextafter(np.float32(1), np.float32(2))))
  c = compare.compare_runs(a, b)
  assert not c.equal and c.first_leaf == "params['w']" and c.items["params"].mismatched_elements == 3
  assert c.first_metrics_step is None and c.items["opt_state"].equal
  lines = c.lines()
  assert lines[-1] == "DIFFERENT: first differing leaf params['w']"
  assert any(l.startswith("hint: ") and "canonical_order" in l and "paired_batches" in l for l in lines)
  assert not any(l.startswith("hint: ") for l in compare.compare_runs(a, _run(tmp_path / "c", w=2.0)).lines())


def test_metrics_are_compared_by_bits_and_the_first_differing_step_is_named(tmp_path):
  recs = [{"step": 1, "loss": 0.5}, {"step": 2, "loss": 0.25}, {"step": 2, "val": 0.0}]
  a = _run(tmp_path / "a", records=recs)
  b = _run(tmp_path / "b", records=[*recs[:2], {"step": 2, "val": -0.0}])  # -0.0: equal to ==, not in bits
  c = compare.compare_runs(a, b)
  assert not c.equal and c.first_metrics_step == 2 and c.first_leaf is None
  assert c.metrics.mismatched_paths == ("[2]['val']",)
  c = compare.compare_runs(a, _run(tmp_path / "c", records=recs[:1]))  # B stopped logging early
  assert not c.equal and c.first_metrics_step == 2


def test_different_newest_checkpoints_and_items_are_differences(tmp_path):
  a = _run(tmp_path / "a")
  c = compare.compare_runs(a, _run(tmp_path / "b", steps=(1,)))
  assert not c.equal and c.steps == (2, 1) and c.step == 1 and c.items["params"].equal
  assert "newest good checkpoint: step 2 in A, 1 in B; compared step 1" in c.lines()
  c = compare.compare_runs(a, _run(tmp_path / "c", extra_item=True))
  assert not c.equal and c.first_leaf == "ema (only in B)"


def test_bad_paths_are_one_line_errors(tmp_path):
  a = _run(tmp_path / "a")
  (tmp_path / "empty").mkdir()
  for b, message in [(tmp_path / "nope", "is not a directory"), (tmp_path / "empty", "config.json not found")]:
    with pytest.raises(rundir.RunDirError, match=message):
      compare.compare_runs(a, str(b))
  rundir.write_config(str(tmp_path / "empty"), {})
  with pytest.raises(rundir.RunDirError, match="no good checkpoint"):
    compare.compare_runs(a, str(tmp_path / "empty"))
  with pytest.raises(rundir.RunDirError, match=r"no checkpoint for step 7 .*saved steps: \[1, 2\]"):
    compare.compare_runs(a, a, step=7)


MESH_RUN = """
import sys, jax, numpy as np
from jaxequiv import checkpoint, rundir
mesh = jax.sharding.Mesh(np.array(jax.devices()), ("data",))
w = jax.device_put(np.arange(4, dtype=np.float32), jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("data")))
rundir.write_config(sys.argv[1], {"train": {"data_parallel": True}})
checkpoint.save(sys.argv[1], 1, {"params": {"w": w}}, {})
"""


def test_a_checkpoint_written_on_two_devices_is_read_on_one(tmp_path):
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=2").strip()
  mesh_run = str(tmp_path / "mesh")
  proc = subprocess.run([sys.executable, "-c", MESH_RUN, mesh_run], env=env, capture_output=True, text=True,
                        timeout=300, check=False)
  assert proc.returncode == 0, proc.stderr[-3000:]
  one = str(tmp_path / "one")
  rundir.write_config(one, {"train": {"data_parallel": False}})
  checkpoint.save(one, 1, {"params": {"w": np.arange(4, dtype=np.float32)}}, {})
  c = compare.compare_runs(mesh_run, one)
  assert c.equal and c.items["params"].elements == 4, c.lines()
