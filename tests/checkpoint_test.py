"""Tests for jaxequiv.checkpoint: checksummed save/restore, fallback past damage, a save killed mid-way."""

from __future__ import annotations

import os
import shutil

import jax
import jax.numpy as jnp
import optax
import pytest
from hypothesis import given, settings, strategies as st

from jaxequiv import checkpoint, rundir
from jaxequiv.bitwise import assert_bitwise_equal
from tests import testutil

PARAMS = {"dense": {"kernel": jnp.arange(12.0).reshape(3, 4) / 7, "bias": jnp.array([-0.0, 1.5, 2.0, 3.0])}}
OPT = optax.adam(1e-3)


def _items(scale=1.0):
  p = jax.tree.map(lambda x: x * scale, PARAMS)
  return {"params": p, "opt_state": OPT.init(p)}


def _like():
  return {k: checkpoint.single_device(v) for k, v in _items().items()}


@pytest.fixture
def run(tmp_path):
  """A run directory with good checkpoints at steps 2 and 4 (params scaled by the step)."""
  d = str(tmp_path / "run")
  for s in (2, 4):
    checkpoint.save(d, s, _items(s), {"predictions_seen": 10 * s})
  return d


def _lines(capsys):
  return [l for l in capsys.readouterr().err.splitlines() if l.strip()]


def test_round_trip_is_bitwise_and_keeps_structure(run):
  r = checkpoint.restore(run, _like())
  assert r.step == 4 and r.meta == {"predictions_seen": 40, "step": 4}
  assert_bitwise_equal(r.items, _items(4))  # -0.0 kept: compared as raw bits
  assert type(r.items["opt_state"][0]) is type(OPT.init(PARAMS)[0])
  only = checkpoint.restore(run, {"params": checkpoint.single_device(PARAMS)}, step=2)
  assert set(only.items) == {"params"} and only.step == 2
  assert_bitwise_equal(only.items["params"], _items(2)["params"])
  assert checkpoint.steps(run) == [4, 2] and checkpoint.latest_step(run) == 4


def _flip_params(step_dir):
  testutil.flip_byte(testutil.largest_file(step_dir))


def _truncate_params(step_dir):
  testutil.truncate(testutil.largest_file(step_dir))


def _empty_metadata(step_dir):
  open(os.path.join(step_dir, "params", "_METADATA"), "w").close()


def _empty_meta_json(step_dir):
  open(os.path.join(step_dir, checkpoint.META_FILE), "w").close()


def _remove_state(step_dir):
  shutil.rmtree(os.path.join(step_dir, "opt_state"))


def _remove_manifest(step_dir):
  os.remove(os.path.join(step_dir, checkpoint.MANIFEST_FILE))


DAMAGE = {"flipped byte": (_flip_params, "checksum"), "truncated file": (_truncate_params, "bytes"),
          "emptied metadata": (_empty_metadata, "_METADATA"), "emptied meta.json": (_empty_meta_json, "meta.json"),
          "removed state": (_remove_state, "missing"), "removed manifest": (_remove_manifest, "no manifest")}


@pytest.mark.parametrize("name", sorted(DAMAGE))
def test_damaged_newest_checkpoint_falls_back_with_one_line(run, capsys, name):
  damage, reason = DAMAGE[name]
  damage(os.path.join(checkpoint.checkpoint_dir(run), "4"))
  capsys.readouterr()
  r = checkpoint.restore(run, _like())
  lines = _lines(capsys)
  print(name, lines)
  assert r.step == 2
  assert_bitwise_equal(r.items, _items(2))
  assert len(lines) == 1 and "checkpoints/4 is damaged" in lines[0] and reason in lines[0]
  with pytest.raises(rundir.RunDirError, match=r"checkpoints/4 is damaged"):
    checkpoint.restore(run, _like(), step=4)
  assert checkpoint.latest_step(run, log=None) == 2


def test_empty_stray_step_folder_is_skipped(run, capsys):
  os.makedirs(os.path.join(checkpoint.checkpoint_dir(run), "99"))
  capsys.readouterr()
  assert checkpoint.restore(run, _like()).step == 4
  assert "checkpoints/99 is damaged (no manifest" in _lines(capsys)[0]


def test_quarantine_moves_damaged_checkpoints_aside(run):
  os.makedirs(os.path.join(checkpoint.checkpoint_dir(run), "99"))
  _flip_params(os.path.join(checkpoint.checkpoint_dir(run), "4"))
  assert checkpoint.restore(run, _like(), quarantine=True, log=None).step == 2
  assert checkpoint.steps(run) == [2]
  assert sorted(n.split("-")[0] for n in os.listdir(os.path.join(run, checkpoint.DAMAGED_DIR))) == ["4", "99"]


def test_no_good_checkpoint_is_a_one_line_error_naming_the_directory(run, tmp_path):
  for s in (2, 4):
    _flip_params(os.path.join(checkpoint.checkpoint_dir(run), str(s)))
  with pytest.raises(rundir.RunDirError) as e:
    checkpoint.restore(run, _like(), log=None)
  assert "no good checkpoint in" in str(e.value) and run in str(e.value) and "\n" not in str(e.value)
  with pytest.raises(rundir.RunDirError, match="no checkpoint in"):
    checkpoint.restore(str(tmp_path / "empty"), _like())
  with pytest.raises(rundir.RunDirError, match=r"no checkpoint for step 3 .*saved steps: \[2, 4\]"):
    checkpoint.restore(run, _like(), step=3)


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 10**6), st.integers(0, 10**6))
def test_any_flipped_byte_is_detected(tmp_path_factory, which, where):
  """Any byte of any file of a checkpoint; negative control: the untouched copy verifies."""
  d = str(tmp_path_factory.mktemp("flip"))
  step_dir = checkpoint.save(d, 1, _items(), {})
  assert checkpoint.verify(d, 1) is None
  files = [f for f in testutil.files_of(step_dir) if os.path.getsize(f)]
  path = files[which % len(files)]
  testutil.flip_byte(path, where % os.path.getsize(path))
  assert checkpoint.verify(d, 1) is not None, path


def test_restore_with_wrong_structure_is_a_one_line_error(run):
  with pytest.raises(rundir.RunDirError, match="does not fit") as e:
    checkpoint.restore(run, {"params": checkpoint.single_device({"dense": {"kernel": jnp.zeros((5, 4))}})})
  assert "\n" not in str(e.value)


def test_save_replaces_a_step_and_keeps_max_to_keep(tmp_path):
  d = str(tmp_path / "run")
  for s in (1, 2, 3):
    checkpoint.save(d, s, _items(s), {}, max_to_keep=2)
  assert checkpoint.steps(d) == [3, 2]
  checkpoint.save(d, 3, _items(30), {}, max_to_keep=2)
  assert_bitwise_equal(checkpoint.restore(d, _like()).items, _items(30))
  assert not [n for n in os.listdir(checkpoint.checkpoint_dir(d)) if n.startswith(".tmp")]


def test_a_save_killed_before_its_rename_leaves_no_step(tmp_path, monkeypatch):
  d = str(tmp_path / "run")
  checkpoint.save(d, 1, _items(1), {})

  def killed(*a):
    raise KeyboardInterrupt("killed")

  monkeypatch.setattr(checkpoint.os, "rename", killed)
  with pytest.raises(KeyboardInterrupt):
    checkpoint.save(d, 2, _items(2), {})
  monkeypatch.undo()
  assert checkpoint.steps(d) == [1]  # the half-written .tmp directory is not a step
  assert checkpoint.restore(d, _like()).step == 1
  left = rundir.remove_partial_writes(d)
  assert len(left) == 1 and left[0].endswith(".tmp-2")
  assert sorted(os.listdir(checkpoint.checkpoint_dir(d))) == ["1"]
