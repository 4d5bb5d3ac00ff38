"""Tests for jaxequiv.rundir: the writer lock, atomic config writes, the metrics log, recorded settings."""

from __future__ import annotations

import os

import pytest

from jaxequiv import rundir


def test_lock_refuses_a_second_writer_in_one_line(tmp_path):
  d = str(tmp_path / "run")
  first = rundir.RunLock(d)
  with pytest.raises(rundir.LockedError) as e:
    rundir.RunLock(d)
  print(e.value)
  assert f"pid {os.getpid()}" in str(e.value) and "\n" not in str(e.value)
  first.close()
  with rundir.RunLock(d):  # free again
    pass


def test_config_write_is_atomic(tmp_path, monkeypatch):
  """A write killed after its bytes but before the rename leaves the old file whole (in-place writes truncate it)."""
  d = str(tmp_path / "run")
  rundir.write_config(d, {"train": {"seed": 0}})

  def killed(fd):
    raise KeyboardInterrupt("killed")

  monkeypatch.setattr(rundir.os, "fsync", killed)
  with pytest.raises(KeyboardInterrupt):
    rundir.write_config(d, {"train": {"seed": 1}, "pad": "x" * 100000})
  monkeypatch.undo()
  assert rundir.read_config(d) == {"train": {"seed": 0}}


def test_read_config_errors_name_the_file(tmp_path):
  with pytest.raises(rundir.RunDirError, match="config.json not found"):
    rundir.read_config(str(tmp_path))
  (tmp_path / "config.json").write_text("{not json")
  with pytest.raises(rundir.RunDirError, match="config.json is not valid JSON"):
    rundir.read_config(str(tmp_path))


def test_garbage_metrics_lines_are_skipped_with_one_line(tmp_path, capsys):
  d = str(tmp_path)
  rundir.write_metrics(d, [{"step": 1, "loss": 2.0}, {"step": 2, "loss": 1.5}])
  with open(os.path.join(d, rundir.METRICS_FILE), "ab") as f:
    f.write(b"\x00\xffgarbage\n[1, 2]\n")
  rundir.append_metrics(d, [{"step": 3, "loss": 1.0}])
  with open(os.path.join(d, rundir.METRICS_FILE), "ab") as f:
    f.write(b'{"step": 4, "lo')  # a torn last line
  capsys.readouterr()
  assert [r["step"] for r in rundir.read_metrics(d)] == [1, 2, 3]
  assert [r["step"] for r in rundir.read_metrics(d, up_to_step=2, log=None)] == [1, 2]
  lines = [l for l in capsys.readouterr().err.splitlines() if l.strip()]
  assert len(lines) == 1 and "skipped 3 unreadable line(s) (line 3, 4, 6)" in lines[0]


def test_config_differences_name_each_field():
  rec = {"model": {"width": 32, "channels": [8, 16]}, "train": {"seed": 0, "steps": 10, "log_every": 2}}
  now = {"model": {"width": 32, "channels": (8, 16)}, "train": {"seed": 1, "steps": 12, "log_every": 5}}
  assert rundir.config_differences(rec, now, ignore=("log_every",)) == [
      "train.seed: recorded 0, now 1", "train.steps: recorded 10, now 12"]
  assert rundir.config_differences(rec, rec) == []
  assert rundir.config_differences({"a": 1}, {}) == ["a: recorded 1, now '<absent>'"]


def test_the_lock_holds_when_its_file_is_deleted_or_replaced(tmp_path):
  d = str(tmp_path / "run")
  with rundir.RunLock(d):
    os.remove(os.path.join(d, rundir.LOCK_FILE))
    with pytest.raises(rundir.LockedError, match="in use by another writer"):
      rundir.RunLock(d)
    with open(os.path.join(d, rundir.LOCK_FILE), "w") as f:  # a fresh file in its place
      f.write("12345")
    with pytest.raises(rundir.LockedError, match=r"pid 12345"):
      rundir.RunLock(d)
  with rundir.RunLock(d):  # free again
    pass


def test_symbolic_links_in_a_run_directory_are_not_followed(tmp_path):
  d = tmp_path / "run"
  d.mkdir()
  target = tmp_path / "precious.txt"
  target.write_text("keep me")
  os.symlink(target, d / rundir.METRICS_FILE)
  with pytest.raises(rundir.RunDirError, match="metrics.jsonl is a symbolic link") as e:
    rundir.append_metrics(str(d), [{"step": 1}])
  assert "\n" not in str(e.value)
  os.symlink(target, d / f"{rundir.TMP_PREFIX}{rundir.CONFIG_FILE}.{os.getpid()}")  # a planted temporary file
  with pytest.raises(rundir.RunDirError, match="is a symbolic link"):
    rundir.write_config(str(d), {"a": 1})
  os.symlink(target, d / rundir.LOCK_FILE)
  with rundir.RunLock(str(d)):  # the pid file replaces the link; the target is not written
    pass
  assert target.read_text() == "keep me"


def test_remove_partial_writes_does_not_follow_links(tmp_path):
  run, outside = tmp_path / "run", tmp_path / "outside"
  (outside / ".tmp-keep").mkdir(parents=True)
  run.mkdir()
  os.symlink(outside, run / ".tmp-1")  # a stray .tmp-* link: removed, its target kept
  os.symlink(outside, run / "elsewhere")  # a link to a directory: not searched
  removed = rundir.remove_partial_writes(str(run))
  assert removed == [str(run / ".tmp-1")] and (outside / ".tmp-keep").is_dir() and not os.path.lexists(run / ".tmp-1")


def _fifo_guard(fn, *args):
  """Runs ``fn(*args)`` in a thread; fails the test (instead of hanging it) if it blocks on a FIFO."""
  import threading  # pylint: disable=import-outside-toplevel
  result = []

  def call():
    try:
      result.append(("ok", fn(*args)))
    except Exception as e:  # pylint: disable=broad-except
      result.append(("error", e))

  t = threading.Thread(target=call, daemon=True)
  t.start()
  t.join(10)
  if t.is_alive():
    pytest.fail(f"{fn.__name__} blocked on a FIFO")
  return result[0]


@pytest.mark.parametrize("name, read", [(rundir.CONFIG_FILE, rundir.read_config), (rundir.METRICS_FILE, rundir.read_metrics)])
def test_run_directory_files_must_be_regular_files_and_are_never_followed(tmp_path, name, read):
  """A FIFO, a device behind a link, or a link to a real file in place of config.json / metrics.jsonl: one line
  naming the file, at once (a FIFO used to block ``sample``; ``/dev/zero`` would read forever)."""
  d = tmp_path / "run"
  d.mkdir()
  os.mkfifo(d / name)
  kind, e = _fifo_guard(read, str(d))
  assert kind == "error" and isinstance(e, rundir.RunDirError), e
  print(e)
  assert str(e) == f"{str(d / name)!r} is a FIFO (named pipe), not a regular file"
  os.remove(d / name)
  outside = tmp_path / "outside.json"
  outside.write_text('{"step": 1}\n')
  for target in ("/dev/zero", outside):
    os.symlink(target, d / name)
    with pytest.raises(rundir.RunDirError, match=f"{name}' is a symbolic link, not followed here$") as e:
      read(str(d))
    assert "\n" not in str(e.value)
    os.remove(d / name)


def test_read_json_refuses_a_file_over_its_limit_unread(tmp_path):
  path = tmp_path / "meta.json"
  path.write_text('{"pad": "' + "x" * 200 + '"}')
  with pytest.raises(rundir.RunDirError, match=r"meta.json' has 211 bytes, more than the 100 \(100 bytes\) this reads"):
    rundir.read_json(str(path), max_bytes=100)
  assert rundir.read_json(str(path))["pad"] == "x" * 200
  path.write_text("[" * 100_000 + "]" * 100_000)  # nesting past Python's recursion limit: one line, not a traceback
  with pytest.raises(rundir.RunDirError, match="meta.json is not valid JSON"):
    rundir.read_json(str(path))
