"""Results with provenance: every experiment and benchmark writes ``<out>.json`` through :func:`write`.

A results record is a JSON object::

  {"name": "bench_sample",                 # the file's stem
   "model": "4-layer transformer ...",     # architecture and training budget of the models it reports
   "headline": [{"what": ..., "result": ...}, ...],   # one-line findings, rendered from the data
   "data": {...},                          # everything measured
   "provenance": {"commit", "dirty", "tree_dirty", "date_utc", "cpu", "cores", "platform", "backend",
                  "devices", "versions", "argv", "command", "seeds", "wall_s", "loadavg_start", "loadavg_end",
                  "sources": {path: sha256}, "source_hash"}}

``sources`` holds the SHA-256 of the script (``argv[0]``), of every ``jaxequiv`` module in ``sys.modules`` when the
record is written (what the run imported; this module excluded) and of any input files the script names. The script's
and the modules' hashes, ``commit`` and ``dirty`` are those of :func:`start`, when the run began: a source edited while
the run was going is listed in ``changed_during_run`` (absent when none) and the record is stale at once. A result is
*stale* when one of its sources has changed since (:func:`stale_reasons`); ``dirty`` says whether those files differed
from the recorded commit when the run began. The markdown beside the JSON is rendered from the record by the script's
``render(record)``, so ``scripts/results.py --render`` can rebuild it without rerunning.

Usage in a script::

  run = provenance.start()
  data = ...  # measure
  provenance.write(run, "results/bench_sample", data, model="...", seeds=[0], headline=[...], render=render)
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import importlib.metadata
import json
import os
import pathlib
import platform
import shlex
import subprocess
import sys
import time
from typing import Any, Callable, Sequence

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "jaxequiv"
_VERSIONS = ("jax", "jaxlib", "flax", "optax", "numpy")


@dataclasses.dataclass(frozen=True)
class Run:
  """What :func:`start` records before the work: the command, the clock, the load and the code as it was."""
  argv: tuple[str, ...]
  started: float
  loadavg_start: tuple[float, float, float]
  hashes: dict[str, str] = dataclasses.field(default_factory=dict)  # script and package files at start
  commit: str = "unknown"
  dirty_paths: frozenset[str] = frozenset()  # of those, the ones that differed from ``commit``


def require(path: str | os.PathLike, what: str) -> pathlib.Path:
  """Returns ``path`` if it exists; otherwise exits (status 1) with one line naming what is missing.

  Examples:
    >>> from jaxequiv import provenance
    >>> provenance.require(provenance.ROOT / "README.md", "the README").name
    'README.md'
  """
  p = pathlib.Path(path)
  if not p.exists():
    raise SystemExit(f"missing {what}: {p} does not exist (this run does not start without it)")
  return p


def _rel(path: str | os.PathLike) -> str:
  p = pathlib.Path(path).resolve()
  try:
    return p.relative_to(ROOT).as_posix()
  except ValueError:
    return p.as_posix()


def start(argv: Sequence[str] | None = None) -> Run:
  """Starts the clock; ``argv`` defaults to ``sys.argv`` (the script path first)."""
  argv = list(sys.argv if argv is None else argv)
  if argv and argv[0].endswith(".py"):
    argv[0] = _rel(argv[0])
  files = ([argv[0]] if argv and argv[0].endswith(".py") else []) + sorted(
      _rel(f) for f in PACKAGE.rglob("*.py") if f.resolve() != pathlib.Path(__file__).resolve())
  hashes = {f: file_sha256(ROOT / f) for f in files}
  tracked = [f for f in files if not pathlib.Path(f).is_absolute()]
  dirty = (_git("diff", "--name-only", "HEAD", "--", *tracked).splitlines()
           + _git("ls-files", "--others", "--exclude-standard", "--", *tracked).splitlines()) if tracked else []
  return Run(tuple(argv), time.time(), os.getloadavg(), hashes, _git("rev-parse", "HEAD") or "unknown",
             frozenset(dirty))


def file_sha256(path: str | os.PathLike) -> str:
  """SHA-256 of a file's bytes (``"missing"`` if it does not exist)."""
  p = pathlib.Path(path)
  if not p.is_file():
    return "missing"
  return hashlib.sha256(p.read_bytes()).hexdigest()


def imported_sources() -> list[str]:
  """Paths (relative to the checkout) of the ``jaxequiv`` modules in ``sys.modules``, this module excluded."""
  paths = set()
  for module in list(sys.modules.values()):
    f = getattr(module, "__file__", None)
    if f and f.endswith(".py") and pathlib.Path(f).resolve().is_relative_to(PACKAGE):
      paths.add(_rel(f))
  paths.discard(_rel(__file__))
  return sorted(paths)


def source_hash(sources: dict[str, str]) -> str:
  """One SHA-256 over the sorted ``path: sha256`` lines.

  Examples:
    >>> from jaxequiv import provenance
    >>> provenance.source_hash({"b": "2", "a": "1"}) == provenance.source_hash({"a": "1", "b": "2"})
    True
  """
  return hashlib.sha256("".join(f"{k}: {v}\n" for k, v in sorted(sources.items())).encode()).hexdigest()


def _git(*args: str) -> str:
  try:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
  except (OSError, subprocess.CalledProcessError):
    return ""


def _cpu() -> str:
  try:
    with open("/proc/cpuinfo") as f:
      return next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), platform.processor())
  except OSError:
    return platform.processor() or "unknown"


def _versions() -> dict[str, str | None]:
  out: dict[str, str | None] = {"python": platform.python_version()}
  for name in _VERSIONS:
    try:
      out[name] = importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
      out[name] = None
  return out


def _backend() -> tuple[str, list[str]]:
  import jax  # pylint: disable=import-outside-toplevel
  return jax.default_backend(), [str(d) for d in jax.devices()]


def provenance(run: Run, *, seeds: Sequence[int], inputs: Sequence[str | os.PathLike] = ()) -> dict[str, Any]:
  """The provenance block for a run that ends now (see the module docstring for its fields)."""
  files = ([run.argv[0]] if run.argv and run.argv[0].endswith(".py") else []) + imported_sources()
  files += [_rel(p) for p in inputs]
  now = {f: file_sha256(ROOT / f) for f in files}
  sources = {f: run.hashes.get(f, h) for f, h in now.items()}  # as the run began; inputs and late files as now
  changed = sorted(f for f, h in now.items() if h != sources[f])
  tracked = [f for f in sources if not pathlib.Path(f).is_absolute()]
  backend, devices = _backend()
  return {
      "commit": run.commit,
      "dirty": any(f in run.dirty_paths for f in tracked),
      "tree_dirty": bool(_git("status", "--porcelain", "--untracked-files=no")),
      "date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
      "cpu": _cpu(),
      "cores": os.cpu_count(),
      "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
      "platform": f"{platform.system()} {platform.machine()}",
      "backend": backend,
      "devices": devices,
      "versions": _versions(),
      "argv": list(run.argv),
      "command": "python " + shlex.join(run.argv),
      "seeds": [int(s) for s in seeds],
      "wall_s": round(time.time() - run.started, 2),
      "loadavg_start": [round(x, 2) for x in run.loadavg_start],
      "loadavg_end": [round(x, 2) for x in os.getloadavg()],
      "sources": sources,
      "source_hash": source_hash(sources),
      **({"changed_during_run": changed} if changed else {}),
  }


def write(run: Run, out: str | os.PathLike, data: Any, *, model: str, seeds: Sequence[int],
          headline: Sequence[tuple[str, str]] = (), inputs: Sequence[str | os.PathLike] = (),
          render: Callable[[dict], str] | None = None) -> dict:
  """Writes ``<out>.json`` (and ``<out>.md`` from ``render(record)``); returns the record.

  Args:
    run: from :func:`start`, called before the work.
    out: the output path without extension (``results/NAME``); ``.json`` / ``.md`` are added.
    data: the measurements (JSON-serialisable).
    model: the architecture and training budget of the models the results report, in words.
    seeds: the random seeds the run used.
    headline: ``(what, result)`` pairs, each a finding rendered from ``data``, for the README's tables.
    inputs: data or peer files the results depend on; hashed with the sources.
    render: ``record -> markdown``; called on the record as read back from JSON.
  """
  if not model:
    raise ValueError("model must name the architecture and training budget of the models the results report")
  stem = pathlib.Path(out)
  stem = stem.with_suffix("") if stem.suffix in (".json", ".md") else stem
  record = {"name": stem.name, "model": model, "headline": [{"what": w, "result": r} for w, r in headline],
            "data": data, "provenance": provenance(run, seeds=seeds, inputs=inputs)}
  from jaxequiv import rundir  # pylint: disable=import-outside-toplevel  (after the sources are hashed)
  stem.parent.mkdir(parents=True, exist_ok=True)
  text = json.dumps(record, indent=1, sort_keys=False, default=_jsonable)
  rundir.write_text_atomic(str(stem.with_suffix(".json")), text + "\n")
  record = json.loads(text)
  if render is not None:
    rundir.write_text_atomic(str(stem.with_suffix(".md")), render(record).rstrip("\n") + "\n")
  return record


def _jsonable(x: Any) -> Any:
  if hasattr(x, "tolist"):
    return x.tolist()
  if dataclasses.is_dataclass(x) and not isinstance(x, type):
    return dataclasses.asdict(x)
  raise TypeError(f"not JSON-serialisable: {type(x).__name__}")


def stale_reasons(record: dict) -> list[str]:
  """Why a results record is stale: no provenance, or each source that changed since it was written.

  Examples:
    >>> from jaxequiv import provenance
    >>> provenance.stale_reasons({"rows": []})
    ['no provenance: written before results recorded their sources']
  """
  prov = record.get("provenance") if isinstance(record, dict) else None
  if not prov or "sources" not in prov:
    return ["no provenance: written before results recorded their sources"]
  return [f"{path} changed" for path, sha in sorted(prov["sources"].items()) if file_sha256(ROOT / path) != sha]


def header(record: dict) -> list[str]:
  """Markdown lines that state a record's provenance and models (for the top of every report)."""
  p = record["provenance"]
  v = p["versions"]
  short = p["commit"][:10] + (" (sources modified)" if p["dirty"] else "")
  load = f"{p['loadavg_start'][0]:.1f} at start, {p['loadavg_end'][0]:.1f} at end"
  return [f"- date: {p['date_utc']}; commit {short}; wall time {p['wall_s']:.0f} s",
          f"- machine: {p['cores']} cores ({p['cpu']}), {p['platform']}; backend {p['backend']}"
          f" ({', '.join(p['devices'])}); load average (1 min) {load}",
          f"- versions: jax {v['jax']}, jaxlib {v['jaxlib']}, flax {v['flax']}, optax {v['optax']}, numpy {v['numpy']},"
          f" Python {v['python']}",
          f"- command: `{p['command']}`; seeds {p['seeds']}",
          f"- models: {record['model']}",
          f"- source hash {p['source_hash'][:12]} over {len(p['sources'])} files (`python scripts/results.py --stale`"
          " says whether they changed since)"]
