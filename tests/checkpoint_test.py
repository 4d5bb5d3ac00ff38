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


def _fifo_manifest(step_dir):
  os.remove(os.path.join(step_dir, checkpoint.MANIFEST_FILE))
  os.mkfifo(os.path.join(step_dir, checkpoint.MANIFEST_FILE))


def _linked_manifest(step_dir):
  """The manifest moved out of the checkpoint and linked back: intact, but a link is not followed."""
  path = os.path.join(step_dir, checkpoint.MANIFEST_FILE)
  outside = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(step_dir))), "manifest-outside.json")
  shutil.move(path, outside)
  os.symlink(outside, path)


DAMAGE = {"flipped byte": (_flip_params, "checksum"), "truncated file": (_truncate_params, "bytes"),
          "emptied metadata": (_empty_metadata, "_METADATA"), "emptied meta.json": (_empty_meta_json, "meta.json"),
          "removed state": (_remove_state, "missing"), "removed manifest": (_remove_manifest, "no manifest"),
          "manifest a FIFO": (_fifo_manifest, "unreadable manifest: 'manifest.json' is a FIFO (named pipe)"),
          "manifest a link": (_linked_manifest, "unreadable manifest: 'manifest.json' is a symbolic link")}


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


def _edit_manifest(step_dir, edit):
  path = os.path.join(step_dir, checkpoint.MANIFEST_FILE)
  manifest = rundir.read_json(path)
  rundir.write_json(path, edit(manifest))


def _first_file(m, value):
  rel = sorted(m["files"])[0]
  return {**m, "files": {**m["files"], rel: value}}


WRONG_TYPES = {
    "a list": lambda m: [m], "items is a number": lambda m: {**m, "items": 5},
    "files is a list": lambda m: {**m, "files": list(m["files"])},
    "entry is a string": lambda m: _first_file(m, "abc"), "entry too short": lambda m: _first_file(m, [1]),
    "size is a string": lambda m: _first_file(m, ["10", "0" * 64]), "format is a string": lambda m: {**m, "format": "1"},
    "path escapes": lambda m: {**m, "files": {"../../x": [1, "0" * 64]}}, "no files": lambda m: {"format": 1},
}


@pytest.mark.parametrize("name", sorted(WRONG_TYPES))
def test_manifest_with_wrong_types_is_a_damaged_checkpoint(run, capsys, name):
  step_dir = os.path.join(checkpoint.checkpoint_dir(run), "4")
  _edit_manifest(step_dir, WRONG_TYPES[name])
  reason = checkpoint.verify(run, 4)
  assert isinstance(reason, str) and "manifest" in reason, reason
  capsys.readouterr()
  r = checkpoint.restore(run, _like(), quarantine=True)
  lines = _lines(capsys)
  assert r.step == 2 and checkpoint.steps(run) == [2]
  assert len(lines) == 2 and "checkpoints/4 is damaged" in lines[0] and "moved damaged" in lines[1], lines


def test_the_step_is_read_from_inside_the_checkpoint(run, capsys):
  """A folder renamed (to a later step, past any --steps) is damaged: its meta records another step."""
  root = checkpoint.checkpoint_dir(run)
  shutil.copytree(os.path.join(root, "4"), os.path.join(root, "1000"))
  assert checkpoint.verify(run, 1000) == "meta.json records step 4, not 1000 (a renamed folder)"
  capsys.readouterr()
  assert checkpoint.latest_step(run) == 4
  assert len(_lines(capsys)) == 1
  meta = os.path.join(root, "4", checkpoint.META_FILE)  # a meta.json whose step is not an int: damaged
  rundir.write_json(meta, {"step": "4"})
  _edit_manifest(os.path.join(root, "4"), lambda m: {**m, "files": {**m["files"], checkpoint.META_FILE: [
      os.path.getsize(meta), checkpoint._sha256(meta)]}})  # pylint: disable=protected-access
  assert checkpoint.verify(run, 4) == "meta.json does not record an integer step"


@pytest.mark.parametrize("name", ["\u0663", "0004", "00", "9" * 30, str(2**31), "-4", "4.0"])
def test_a_folder_that_is_not_a_step_name_is_reported_once_and_skipped(run, capsys, name):
  """Copies of step 4 under names that are not a step: non-ASCII digits, zero padding, huge numbers."""
  root = checkpoint.checkpoint_dir(run)
  shutil.copytree(os.path.join(root, "4"), os.path.join(root, name))
  assert checkpoint.steps(run) == [4, 2]
  capsys.readouterr()
  assert checkpoint.latest_step(run) == 4
  lines = _lines(capsys)
  assert len(lines) == 1 and "is not a step folder" in lines[0], lines
  r = checkpoint.restore(run, _like(), quarantine=True)
  assert r.step == 4 and r.meta["step"] == 4
  assert sorted(os.listdir(root)) == ["2", "4"] and len(os.listdir(os.path.join(run, checkpoint.DAMAGED_DIR))) == 1
  with pytest.raises(ValueError, match="step must be in"):
    checkpoint.save(run, 2**31, _items(), {})


def test_a_stray_tmp_symlink_is_removed_not_followed(tmp_path):
  d, outside = str(tmp_path / "run"), tmp_path / "outside"
  outside.mkdir()
  (outside / "keep.txt").write_text("precious")
  os.makedirs(checkpoint.checkpoint_dir(d))
  os.symlink(outside, os.path.join(checkpoint.checkpoint_dir(d), rundir.TMP_PREFIX + "3"))
  checkpoint.save(d, 3, _items(3), {})
  assert checkpoint.restore(d, _like()).step == 3 and (outside / "keep.txt").read_text() == "precious"
  assert os.listdir(outside) == ["keep.txt"]
