"""The run directory's own files: settings, metrics log, writer lock, atomic writes, one-line errors.

One module owns the files at the top of a run directory; training, sampling,
the labels experiment and the tests go through it (checkpoints, under
``checkpoints/``, are ``jaxequiv.checkpoint``'s). It works on JSON-able dicts
only, so both wings sit above it::

    RUN/config.json              the run's settings (atomic: temp file + rename)
    RUN/metrics.jsonl            one JSON record per line (whole lines appended; torn lines skipped on read)
    RUN/.lock                    held (flock) by the one writer
    RUN/checkpoints/             jaxequiv.checkpoint
    RUN/damaged/                 jaxequiv.checkpoint (damaged checkpoints moved out of the way)

Every error meant for a user is a ``RunDirError`` (a ``ValueError``) whose
message is one line.

Examples:
  >>> import tempfile
  >>> from jaxequiv import rundir
  >>> run = tempfile.mkdtemp()
  >>> rundir.write_config(run, {"train": {"seed": 0}})
  >>> rundir.append_metrics(run, [{"step": 1, "loss": 2.5}])
  >>> rundir.read_config(run), rundir.read_metrics(run)
  ({'train': {'seed': 0}}, [{'step': 1, 'loss': 2.5}])
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from jaxequiv import limits

CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.jsonl"
LOCK_FILE = ".lock"
TMP_PREFIX = ".tmp-"  # what a writer names its half-written files (here and in checkpoints/)
MAX_JSON_BYTES = 64 * 2**20  # config.json, meta.json, manifest.json: a few KiB each
MAX_METRICS_BYTES = 2**30  # metrics.jsonl: about 200 bytes a record

Log = Callable[[str], None]
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


class RunDirError(ValueError):
  """A run directory is missing, damaged, locked, or does not match the request. One-line message."""


class LockedError(RunDirError):
  """Another writer holds the run directory."""


class ConfigMismatchError(RunDirError):
  """Resuming with settings that differ from those recorded in the checkpoint."""


def say(message: str) -> None:
  """The default ``log``: one line on stderr, prefixed ``jaxequiv:``."""
  print(f"jaxequiv: {message}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- atomic files


def _open(path: str, flags: int) -> int:
  """``os.open`` that refuses a symbolic link at ``path``: a run directory's writes never leave it."""
  try:
    return os.open(path, flags | _NOFOLLOW, 0o644)
  except OSError as e:
    if e.errno == errno.ELOOP:
      raise RunDirError(f"{path} is a symbolic link; jaxequiv does not follow links in a run directory") from None
    raise


def write_text_atomic(path: str, text: str) -> None:
  """Writes ``text`` to ``path`` via a temporary file in the same directory, fsync and rename.

  A reader (or a crash) sees either the old file or the new one, never a mix.
  """
  d = os.path.dirname(os.path.abspath(path))
  tmp = os.path.join(d, f"{TMP_PREFIX}{os.path.basename(path)}.{os.getpid()}")
  with os.fdopen(_open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), "w") as f:
    f.write(text)
    f.flush()
    os.fsync(f.fileno())
  os.replace(tmp, path)


def write_json(path: str, obj: Any) -> None:
  """``json.dump`` to ``path`` atomically (``write_text_atomic``)."""
  write_text_atomic(path, json.dumps(obj, indent=2) + "\n")


def read_json(path: str, max_bytes: int = MAX_JSON_BYTES) -> Any:
  """``json.loads`` of ``path``; ``RunDirError`` naming the file unless it is a regular file (a symbolic link is
  not followed), at most ``max_bytes`` long, and JSON.

  A FIFO or a device in a run directory is refused at once (``limits.open_checked``), never read.
  """
  try:
    raw = limits.read_limited(path, max_bytes, follow_links=False)
  except FileNotFoundError:
    raise RunDirError(f"{path} not found") from None
  except limits.TooLargeError as e:
    raise RunDirError(str(e)) from None
  try:
    return json.loads(raw)
  except (ValueError, RecursionError) as e:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
    raise RunDirError(f"{path} is not valid JSON ({str(e)[:200] or type(e).__name__})") from None


def write_config(run_dir: str, config: Mapping[str, Any]) -> None:
  """Writes ``RUN/config.json`` atomically."""
  os.makedirs(run_dir, exist_ok=True)
  write_json(os.path.join(run_dir, CONFIG_FILE), dict(config))


def read_config(run_dir: str) -> dict:
  """The dict in ``RUN/config.json``.

  Raises:
    RunDirError: naming the file, if it is missing (not a run directory) or not JSON.
  """
  path = os.path.join(run_dir, CONFIG_FILE)
  if not os.path.lexists(path):
    raise RunDirError(f"{path} not found: is {run_dir!r} a training run directory?")
  cfg = read_json(path)
  if not isinstance(cfg, dict):
    raise RunDirError(f"{path} holds a {type(cfg).__name__}, not a JSON object")
  return cfg


def read_metrics(run_dir: str, up_to_step: int | None = None, *, log: Log | None = say) -> list[dict]:
  """Records of ``RUN/metrics.jsonl`` with ``step <= up_to_step`` (all if None).

  Lines that are not a JSON object with an integer ``"step"`` (a torn last line
  after a kill, or garbage) are skipped, with one line to ``log``.

  Raises:
    RunDirError: naming the file, if it is a symbolic link, not a regular file, or over ``MAX_METRICS_BYTES``.
  """
  path = os.path.join(run_dir, METRICS_FILE)
  if not os.path.lexists(path):
    return []
  out, bad = [], []
  try:
    fd = limits.open_checked(path, MAX_METRICS_BYTES, follow_links=False)
  except limits.TooLargeError as e:
    raise RunDirError(str(e)) from None
  with os.fdopen(fd, "rb") as f:
    for i, raw in enumerate(f, 1):
      if not raw.strip():
        continue
      try:
        rec = json.loads(raw)
        if not isinstance(rec, dict) or not isinstance(rec.get("step"), int):
          raise ValueError
      except ValueError:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        bad.append(i)
        continue
      if up_to_step is None or rec["step"] <= up_to_step:
        out.append(rec)
  if bad and log is not None:
    log(f"{path}: skipped {len(bad)} unreadable line(s) (line {', '.join(map(str, bad[:5]))}"
        f"{', ...' if len(bad) > 5 else ''})")
  return out


def write_metrics(run_dir: str, records: Iterable[dict]) -> None:
  """Replaces ``RUN/metrics.jsonl`` with ``records``, atomically."""
  write_text_atomic(os.path.join(run_dir, METRICS_FILE), "".join(json.dumps(r) + "\n" for r in records))


def append_metrics(run_dir: str, records: Iterable[dict]) -> None:
  """Appends whole lines to ``RUN/metrics.jsonl`` in one ``write`` (a kill can tear at most the last line)."""
  data = "".join(json.dumps(r) + "\n" for r in records).encode()
  fd = _open(os.path.join(run_dir, METRICS_FILE), os.O_WRONLY | os.O_APPEND | os.O_CREAT)
  try:
    os.write(fd, data)
  finally:
    os.close(fd)


# ----------------------------------------------------------------------------- the writer lock


class RunLock:
  """An exclusive ``flock`` on the run directory itself for one writer; released on ``close`` or process death.

  A second writer (another process, or another ``RunLock`` in this one) gets
  ``LockedError`` at once. The lock is on the directory, not on a file in it,
  so deleting or replacing ``RUN/.lock`` (which only names the holder's pid)
  cannot let a second writer in. On systems without ``fcntl`` it is a no-op.

  Examples:
    >>> import tempfile
    >>> run = tempfile.mkdtemp()
    >>> with RunLock(run):
    ...   try:
    ...     RunLock(run)
    ...   except LockedError as e:
    ...     print("refused")
    refused
  """

  def __init__(self, run_dir: str):
    os.makedirs(run_dir, exist_ok=True)
    self.path = os.path.join(run_dir, LOCK_FILE)
    self._fd: int | None = None
    try:
      import fcntl  # pylint: disable=import-outside-toplevel
    except ImportError:  # pragma: no cover (Windows)
      return
    fd = os.open(run_dir, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
      os.close(fd)
      raise LockedError(f"{run_dir!r} is in use by another writer (pid {self._holder()}); wait for it to finish"
                        " or choose another directory") from None
    self._fd = fd
    write_text_atomic(self.path, str(os.getpid()))

  def _holder(self) -> str:
    try:
      fd = _open(self.path, os.O_RDONLY)
    except (OSError, RunDirError):
      return "unknown"
    try:
      return os.read(fd, 64).decode(errors="replace").strip() or "unknown"
    finally:
      os.close(fd)

  def close(self) -> None:
    if self._fd is not None:
      os.close(self._fd)  # closing the descriptor drops the flock
      self._fd = None

  def __enter__(self) -> RunLock:
    return self

  def __exit__(self, *exc) -> None:
    self.close()


def remove_partial_writes(run_dir: str) -> list[str]:
  """Deletes what killed writers left half-written (``.tmp-*`` in ``RUN`` and its subdirectories); returns their paths.

  Only the lock holder may call it: a live writer's temporary files look the same.
  """
  removed = []
  top = os.path.abspath(run_dir)
  subdirs = [os.path.join(top, n) for n in sorted(os.listdir(top))] if os.path.isdir(top) else []
  for d in [top, *subdirs]:
    if not os.path.isdir(d) or os.path.islink(d):  # a link leads out of the run directory: not followed
      continue
    for name in os.listdir(d):
      if name.startswith(TMP_PREFIX):
        path = os.path.join(d, name)
        if os.path.isdir(path) and not os.path.islink(path):  # a link is removed, its target left alone
          shutil.rmtree(path, ignore_errors=True)
        else:
          os.remove(path)
        removed.append(path)
  return removed


# ----------------------------------------------------------------------------- recorded settings


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
  """Nested dicts -> ``{"a.b": value}``.

  >>> flatten({"model": {"width": 32}, "seed": 0})
  {'model.width': 32, 'seed': 0}
  """
  out = {}
  for k, v in config.items():
    if isinstance(v, Mapping):
      out.update(flatten(v, f"{prefix}{k}."))
    else:
      out[f"{prefix}{k}"] = v
  return out


def config_differences(recorded: Mapping[str, Any], current: Mapping[str, Any],
                       ignore: Iterable[str] = ()) -> list[str]:
  """``"field: recorded X, now Y"`` for every dotted field whose value differs (``ignore``: field names to skip).

  A field only one side has counts as a difference (its value there is ``<absent>``).

  >>> config_differences({"train": {"seed": 0, "steps": 9}}, {"train": {"seed": 1, "steps": 9}})
  ['train.seed: recorded 0, now 1']
  """
  a, b = flatten(recorded), flatten(current)
  ignore = set(ignore)
  out = []
  for k in sorted(set(a) | set(b)):
    if k in ignore or k.rsplit(".", 1)[-1] in ignore:
      continue
    va, vb = a.get(k, "<absent>"), b.get(k, "<absent>")
    if isinstance(va, list):
      va = tuple(va)
    if isinstance(vb, list):
      vb = tuple(vb)
    if va != vb:
      out.append(f"{k}: recorded {a.get(k, '<absent>')!r}, now {b.get(k, '<absent>')!r}")
  return out
