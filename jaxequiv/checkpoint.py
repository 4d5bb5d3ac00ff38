"""Checkpoints of a run directory: saved with checksums, verified, restored, quarantined when damaged.

The files at the top of a run directory (settings, metrics, lock) are
``jaxequiv.rundir``'s; this module owns ``checkpoints/`` and ``damaged/``. It
works on plain pytrees and JSON-able dicts (no model or config types), so both
wings sit above it::

    RUN/checkpoints/<step>/      one directory per saved step, renamed into place when complete:
        <item>/                  one orbax (StandardCheckpointer) tree per item, e.g. params/, opt_state/
        meta.json                JSON metadata (step, counters, the config the run was started with)
        manifest.json            size and SHA-256 of every file above, written last
    RUN/damaged/<step>-<ns>/     damaged checkpoints a writer moved out of the way (kept, not deleted)

``restore`` verifies every file against the manifest and falls back, with one
line on stderr per skipped step, to the newest checkpoint that verifies; if
none does it raises ``jaxequiv.rundir.RunDirError`` naming the directory.

Examples:
  >>> import tempfile, jax.numpy as jnp
  >>> from jaxequiv import checkpoint
  >>> run = tempfile.mkdtemp()
  >>> _ = checkpoint.save(run, 3, {"params": {"w": jnp.ones(2)}}, {"note": "hi"})
  >>> r = checkpoint.restore(run, {"params": checkpoint.single_device({"w": jnp.zeros(2)})})
  >>> r.step, r.meta["note"], r.items["params"]["w"].tolist()
  (3, 'hi', [1.0, 1.0])
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from collections.abc import Callable, Collection, Mapping
from typing import Any, NamedTuple

import jax
import numpy as np

from jaxequiv.rundir import TMP_PREFIX, Log, RunDirError, read_json, say, write_json

CHECKPOINT_DIR = "checkpoints"
DAMAGED_DIR = "damaged"
META_FILE = "meta.json"
MANIFEST_FILE = "manifest.json"
MAX_STEP = 2**31 - 1  # a step is an int32 in the training state
_FORMAT = 1


# ----------------------------------------------------------------------------- checkpoints


class Restored(NamedTuple):
  step: int
  items: dict[str, Any]  # item name -> pytree, placed as the ``like`` trees ask
  meta: dict


def checkpoint_dir(run_dir: str) -> str:
  return os.path.join(os.path.abspath(run_dir), CHECKPOINT_DIR)


def step_of_name(name: str) -> int | None:
  """The step a folder name stands for, or None: ASCII digits, no leading zero, at most ``MAX_STEP``.

  Only a hint: ``verify`` checks it against the step recorded inside.

  Examples:
    >>> [step_of_name(n) for n in ("12", "0", "012", "\u0663", "99999999999", "-1", "1e3")]
    [12, 0, None, None, None, None, None]
  """
  if not (name.isascii() and name.isdigit()) or (len(name) > 1 and name[0] == "0") or len(name) > 10:
    return None
  return int(name) if int(name) <= MAX_STEP else None


def _entries(run_dir: str) -> tuple[list[int], list[str]]:
  """(steps of real step folders newest first, names of other entries) in ``checkpoints/``; ``.tmp-*`` in neither."""
  d = checkpoint_dir(run_dir)
  if not os.path.isdir(d):
    return [], []
  found, others = [], []
  for n in sorted(os.listdir(d)):
    s, path = step_of_name(n), os.path.join(d, n)
    if s is not None and os.path.isdir(path) and not os.path.islink(path):
      found.append(s)
    elif not n.startswith(TMP_PREFIX):
      others.append(n)
  return sorted(found, reverse=True), others


def steps(run_dir: str) -> list[int]:
  """Steps of the checkpoint directories present, newest first (not verified; other names are not steps)."""
  return _entries(run_dir)[0]


def _skip_others(run_dir: str, log: Log | None, quarantine: bool) -> None:
  """One line per entry of ``checkpoints/`` that is not a step folder; moved to ``damaged/`` if ``quarantine``."""
  for n in _entries(run_dir)[1]:
    if log is not None:
      log(f"{os.path.join(checkpoint_dir(run_dir), n)!r} is not a step folder (a step is 0..{MAX_STEP} in ASCII"
          " digits without leading zeros); skipping it")
    if quarantine:
      _quarantine(run_dir, n, log)


def _sha256(path: str) -> str:
  h = hashlib.sha256()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      h.update(block)
  return h.hexdigest()


def _files(root: str) -> list[str]:
  out = []
  for d, _, names in os.walk(root):
    out += [os.path.relpath(os.path.join(d, n), root) for n in names]
  return sorted(out)


def _fsync_dir(path: str) -> None:
  try:
    fd = os.open(path, os.O_RDONLY)
  except OSError:  # pragma: no cover
    return
  try:
    os.fsync(fd)
  except OSError:  # pragma: no cover
    pass
  finally:
    os.close(fd)


def save(run_dir: str, step: int, items: Mapping[str, Any], meta: Mapping[str, Any], *,
         max_to_keep: int | None = None, keep: Collection[int] = ()) -> str:
  """Saves pytrees ``items`` and JSON ``meta`` as ``RUN/checkpoints/<step>``; returns that path.

  Everything is written into a temporary directory, a manifest of file sizes
  and SHA-256 digests last, then the directory is renamed into place: a kill
  leaves either no step directory or a complete one. An existing directory for
  the same step is replaced. Then only the newest ``max_to_keep`` steps are
  kept (None: all), and the steps in ``keep`` (e.g. the best validation's). Callers that may run concurrently must hold a ``RunLock``.

  Args:
    run_dir: the run directory.
    step: the step number (the directory name).
    items: name -> pytree of arrays (e.g. ``{"params": ..., "opt_state": ...}``);
      names must be plain words.
    meta: JSON-able metadata; ``"step"`` is added.
    max_to_keep: checkpoints to keep, or None.
    keep: steps never deleted by ``max_to_keep``.

  Returns:
    The checkpoint's directory.
  """
  import orbax.checkpoint as ocp  # pylint: disable=import-outside-toplevel
  step = int(step)
  if not 0 <= step <= MAX_STEP:
    raise ValueError(f"step must be in 0..{MAX_STEP}, got {step}")
  for name in items:
    if not name.isidentifier() or name in (META_FILE, MANIFEST_FILE):
      raise ValueError(f"checkpoint item names must be identifiers, got {name!r}")
  root = checkpoint_dir(run_dir)
  os.makedirs(root, exist_ok=True)
  final = os.path.join(root, str(step))
  tmp = os.path.join(root, f"{TMP_PREFIX}{step}")  # the same path on every host; a killed writer's is stale
  if jax.process_index() == 0 and os.path.lexists(tmp):
    if os.path.isdir(tmp) and not os.path.islink(tmp):
      shutil.rmtree(tmp)
    else:  # a stray file or symbolic link: removed, never followed
      os.remove(tmp)
  with ocp.StandardCheckpointer() as ckptr:
    try:
      for name, tree in items.items():
        ckptr.save(os.path.join(tmp, name), tree)
    except BaseException:  # e.g. a full disk: let the writes already started end before the checkpointer closes,
      try:                 # or TensorStore's callbacks print tracebacks to stderr after this error was reported
        ckptr.wait_until_finished()
      except Exception:  # pylint: disable=broad-except  # the same failure again; the first one is raised
        pass
      raise
    ckptr.wait_until_finished()
  if jax.process_index() == 0:
    write_json(os.path.join(tmp, META_FILE), {**dict(meta), "step": step})
    manifest = {"format": _FORMAT, "items": sorted(items),
                "files": {f: [os.path.getsize(os.path.join(tmp, f)), _sha256(os.path.join(tmp, f))]
                          for f in _files(tmp)}}
    write_json(os.path.join(tmp, MANIFEST_FILE), manifest)
    _fsync_dir(tmp)
    if os.path.exists(final):
      old = os.path.join(root, f"{TMP_PREFIX}old-{step}-{time.time_ns()}")
      os.rename(final, old)
      shutil.rmtree(old, ignore_errors=True)
    os.rename(tmp, final)
    _fsync_dir(root)
    if max_to_keep is not None:
      for s in [s for s in steps(run_dir)[max_to_keep:] if s not in keep]:
        shutil.rmtree(os.path.join(root, str(s)), ignore_errors=True)
  return final


def _manifest_problem(manifest: Any) -> str | None:
  """Why a parsed manifest does not follow the schema, or None.

  Schema: ``{"format": 1, "items": [identifier, ...], "files": {relative path: [size >= 0, sha256 hex]}}``.
  """
  if not isinstance(manifest, dict):
    return f"manifest is a {type(manifest).__name__}, not an object"
  if manifest.get("format") != _FORMAT or isinstance(manifest.get("format"), bool):
    return f"manifest format is {manifest.get('format')!r}, not {_FORMAT}"
  items, files = manifest.get("items"), manifest.get("files")
  if not isinstance(items, list) or not all(isinstance(n, str) and n.isidentifier() for n in items):
    return "manifest 'items' is not a list of item names"
  if not isinstance(files, dict):
    return "manifest 'files' is not an object"
  for rel, entry in files.items():
    if os.path.isabs(rel) or ".." in rel.split(os.sep) or not rel:
      return f"manifest names a file outside its checkpoint: {rel[:80]!r}"
    if not (isinstance(entry, list) and len(entry) == 2 and type(entry[0]) is int and entry[0] >= 0
            and isinstance(entry[1], str) and len(entry[1]) == 64):
      return f"manifest entry of {rel[:80]!r} is not [size, sha256]"
  return None


def verify(run_dir: str, step: int) -> str | None:
  """Why checkpoint ``step`` is damaged (a short reason), or None if it is good.

  Good: the manifest follows its schema, every file matches its size and
  SHA-256, and ``meta.json`` is an object recording this very step (the
  folder name is only a hint).
  """
  d = os.path.join(checkpoint_dir(run_dir), str(int(step)))
  path = os.path.join(d, MANIFEST_FILE)
  if not os.path.lexists(path):
    return "no manifest (incomplete, or not written by jaxequiv.checkpoint)"
  try:
    manifest = read_json(path)  # a regular file within its limit, not a link
  except RunDirError as e:
    return f"unreadable manifest: {str(e).replace(path, MANIFEST_FILE)}"
  problem = _manifest_problem(manifest)
  if problem is not None:
    return problem
  files = manifest["files"]
  for rel, (size, digest) in sorted(files.items()):
    p = os.path.join(d, rel)
    if not os.path.isfile(p) or os.path.islink(p):
      return f"{rel} is missing"
    if os.path.getsize(p) != size:
      return f"{rel} has {os.path.getsize(p)} bytes, {size} were written"
    if _sha256(p) != digest:
      return f"{rel} fails its SHA-256 checksum"
  for name in manifest["items"]:
    if not os.path.isdir(os.path.join(d, name)):
      return f"{name}/ is missing"
  if META_FILE not in files:
    return f"{META_FILE} is missing"
  try:
    recorded = read_json(os.path.join(d, META_FILE))
  except RunDirError:
    return f"unreadable {META_FILE}"
  if not isinstance(recorded, dict) or type(recorded.get("step")) is not int:
    return f"{META_FILE} does not record an integer step"
  if recorded["step"] != int(step):
    return f"{META_FILE} records step {recorded['step']}, not {step} (a renamed folder)"
  return None


def _quarantine(run_dir: str, name: int | str, log: Log | None) -> None:
  src = os.path.join(checkpoint_dir(run_dir), str(name))
  dst_root = os.path.join(os.path.abspath(run_dir), DAMAGED_DIR)
  os.makedirs(dst_root, exist_ok=True)
  dst = os.path.join(dst_root, f"{str(name)[:40]}-{time.time_ns()}")
  os.rename(src, dst)
  if log is not None:
    log(f"moved damaged checkpoint {str(name)[:40]!r} to {dst}")


def latest_step(run_dir: str, *, log: Log | None = say) -> int | None:
  """The newest step that verifies (``log`` gets one line per damaged newer step or non-step entry), or None."""
  _skip_others(run_dir, log, quarantine=False)
  for s in steps(run_dir):
    reason = verify(run_dir, s)
    if reason is None:
      return s
    if log is not None:
      log(f"checkpoint {os.path.join(checkpoint_dir(run_dir), str(s))} is damaged ({reason}); skipping it")
  return None


def single_device(tree: Any, device: jax.Device | None = None) -> Any:
  """Abstract ``ShapeDtypeStruct`` leaves of ``tree`` on one device (default: the first): a ``like`` for ``restore``.

  Use it to read a checkpoint written on any mesh (e.g. data-parallel over 8
  devices) on a single device.
  """
  sharding = jax.sharding.SingleDeviceSharding(device or jax.devices()[0])
  return jax.tree.map(lambda x: jax.ShapeDtypeStruct(np.shape(x), x.dtype, sharding=sharding), tree)


def saved_like(run_dir: str, step: int, item: str, device: jax.Device | None = None) -> Any:
  """The ``like`` of an item as saved (shapes and dtypes from orbax's metadata), on one device.

  Reads a checkpoint without knowing the model that wrote it, from any mesh
  (``jaxequiv.compare``).
  """
  import orbax.checkpoint as ocp  # pylint: disable=import-outside-toplevel
  with ocp.StandardCheckpointer() as ckptr:
    meta = ckptr.metadata(os.path.join(checkpoint_dir(run_dir), str(step), item))
  tree = getattr(meta, "item_metadata", meta)  # orbax >= 0.11 wraps the tree
  tree = getattr(tree, "tree", tree)
  sharding = jax.sharding.SingleDeviceSharding(device or jax.devices()[0])
  return jax.tree.map(lambda a: jax.ShapeDtypeStruct(tuple(a.shape), a.dtype, sharding=sharding), tree)


def abstract(tree: Any) -> Any:
  """``ShapeDtypeStruct`` leaves with each array's own sharding (restore onto the same placement)."""
  def leaf(x):
    sharding = getattr(x, "sharding", None)
    return jax.ShapeDtypeStruct(np.shape(x), x.dtype, sharding=sharding)
  return jax.tree.map(leaf, tree)


def restore(run_dir: str, like: Mapping[str, Any] | Callable[[dict], Mapping[str, Any]], step: int | None = None, *,
            log: Log | None = say, quarantine: bool = False) -> Restored:
  """Restores items of a verified checkpoint: the given ``step``, or the newest good one.

  Each step is checked against its manifest first (sizes and SHA-256 of every
  file). Without ``step``, damaged steps are skipped, newest first, with one
  line each to ``log``; ``quarantine=True`` (for a writer holding the lock)
  also moves them to ``RUN/damaged/`` so the run can write those steps again.

  Args:
    run_dir: the run directory.
    like: item name -> pytree of arrays or ``ShapeDtypeStruct`` s with
      shardings (``single_device``, ``abstract``): which items to read, with
      their structure, dtypes and placement. Items not named are not read.
      Or a function of the checkpoint's meta returning that mapping (when the
      structure depends on the recorded settings).
    step: a step to restore, or None for the newest good one.
    log: where the one-line notices go (None: nowhere).
    quarantine: move damaged checkpoints out of ``checkpoints/``.

  Returns:
    ``Restored(step, items, meta)``.

  Raises:
    RunDirError: one line naming the directory, if there is no checkpoint, the
      requested step is missing or damaged, none verifies, or the saved arrays
      do not fit ``like``.
  """
  import orbax.checkpoint as ocp  # pylint: disable=import-outside-toplevel
  root = checkpoint_dir(run_dir)
  if step is None:
    _skip_others(run_dir, log, quarantine)
  present = steps(run_dir)
  if not present:
    raise RunDirError(f"no checkpoint in {root}")
  if step is not None:
    if int(step) not in present:
      raise RunDirError(f"no checkpoint for step {step} in {root}; saved steps: {sorted(present)}")
    reason = verify(run_dir, step)
    if reason is not None:
      raise RunDirError(f"checkpoint {os.path.join(root, str(step))} is damaged: {reason}")
    chosen = int(step)
  else:
    chosen, skipped = None, []
    for s in present:
      reason = verify(run_dir, s)
      if reason is None:
        chosen = s
        break
      skipped.append(s)
      if log is not None:
        log(f"checkpoint {os.path.join(root, str(s))} is damaged ({reason}); falling back to an older one")
    if chosen is None:
      raise RunDirError(f"no good checkpoint in {root}: all {len(present)} saved step(s) are damaged")
    if quarantine:
      for s in skipped:
        _quarantine(run_dir, s, log)
  d = os.path.join(root, str(chosen))
  meta = read_json(os.path.join(d, META_FILE))
  if callable(like):
    like = like(meta)
  items = {}
  with ocp.StandardCheckpointer() as ckptr:
    for name, target in like.items():
      if not os.path.isdir(os.path.join(d, name)):
        raise RunDirError(f"checkpoint {d} has no item {name!r}")
      try:
        items[name] = ckptr.restore(os.path.join(d, name), abstract(target))
      except (ValueError, TypeError, KeyError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise RunDirError(f"checkpoint {d}/{name} does not fit the requested structure: {first[:300]}") from None
  return Restored(chosen, items, meta)
