"""Determinism XLA flags for the backend in use, set before JAX starts.

XLA reads ``XLA_FLAGS`` once, when JAX initialises its first backend, and an
unknown flag aborts the process. ``set_xla_flags()`` therefore probes, in a
subprocess, which backend JAX will pick and which candidate flags the installed
jaxlib accepts, then appends those to ``XLA_FLAGS``. Call it before the first
JAX computation (importing jax or jaxequiv is fine).

Where JAX has already started without the flags (a notebook that skipped its
first cell), ``warn_if_unset()`` says so once, in plain words, before a bitwise
claim is checked; ``ensure_xla_flags()`` (what the CLI calls) sets the flags if
it still can and warns otherwise.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import warnings

# Flags that make a backend's results run-to-run deterministic. Older and newer
# XLA spell the GPU flag differently; only the accepted ones are set.
CANDIDATE_FLAGS = {
    "cpu": (),  # XLA:CPU has no non-deterministic ops.
    "gpu": ("--xla_gpu_deterministic_ops=true", "--xla_gpu_exclude_nondeterministic_ops=true"),
    "cuda": ("--xla_gpu_deterministic_ops=true", "--xla_gpu_exclude_nondeterministic_ops=true"),
    "rocm": ("--xla_gpu_deterministic_ops=true", "--xla_gpu_exclude_nondeterministic_ops=true"),
    "tpu": (),  # TPU reductions are deterministic by construction.
}

_PROBE = "import jax, jax.numpy as jnp; jnp.zeros(2).sum().block_until_ready(); print(jax.default_backend())"


def _run_probe(xla_flags: str) -> tuple[bool, str]:
  env = dict(os.environ, XLA_FLAGS=xla_flags, TF_CPP_MIN_LOG_LEVEL="3")
  proc = subprocess.run([sys.executable, "-c", _PROBE], env=env, capture_output=True, text=True, timeout=300)
  return proc.returncode == 0, proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""


@functools.lru_cache(maxsize=None)
def probe_backend() -> str:
  """The backend JAX will use (``cpu``, ``gpu``, ``tpu``), found in a subprocess."""
  ok, backend = _run_probe(os.environ.get("XLA_FLAGS", ""))
  if not ok:
    raise RuntimeError(f"JAX failed to start with XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}")
  return backend


def _backends_initialised() -> bool:
  try:
    from jax._src import xla_bridge  # pylint: disable=import-outside-toplevel
    return bool(getattr(xla_bridge, "_backends", {}))
  except Exception:  # pylint: disable=broad-except
    return False


def accepted_flags(backend: str) -> list[str]:
  """The candidate determinism flags for ``backend`` that this jaxlib accepts."""
  base = os.environ.get("XLA_FLAGS", "")
  return [f for f in CANDIDATE_FLAGS.get(backend, ()) if _run_probe(f"{base} {f}".strip())[0]]


def set_xla_flags(backend: str | None = None) -> list[str]:
  """Appends the accepted determinism flags for ``backend`` (default: probed) to ``XLA_FLAGS``.

  Once JAX has started, there is nothing left to do if its backend needs no
  flags or already has them (re-running a notebook's first cell is fine).

  Returns:
    The flags added (empty on CPU and TPU, which need none).

  Raises:
    RuntimeError: if JAX has already started on a backend that lacks its
      flags, which XLA would now ignore.
  """
  if _backends_initialised():
    import jax  # pylint: disable=import-outside-toplevel
    started = jax.default_backend()
    if flags_set(started):
      return []
    raise RuntimeError(f"set_xla_flags() must run before JAX's first computation; JAX already runs on {started}"
                       " without the flags, and XLA_FLAGS is read once at start-up: restart the process (in a"
                       " notebook, the runtime) and call it first")
  backend = backend or probe_backend()
  current = os.environ.get("XLA_FLAGS", "").split()
  added = [f for f in accepted_flags(backend) if f not in current]
  if added:
    os.environ["XLA_FLAGS"] = " ".join(current + added)
  return added


class DeterminismWarning(UserWarning):
  """JAX runs on a backend whose determinism flags are not set, so bitwise claims may fail run to run."""


_WARNED: set[str] = set()  # backends already warned about (warn once per process)


def flags_set(backend: str) -> bool:
  """Whether ``XLA_FLAGS`` holds one of ``backend``'s determinism flags (True for CPU and TPU, which need none).

  XLA reads ``XLA_FLAGS`` when JAX starts, so this is only right if the
  variable has not changed since.
  """
  candidates = CANDIDATE_FLAGS.get(backend, ())
  current = os.environ.get("XLA_FLAGS", "").split()
  return not candidates or any(f in current for f in candidates)


def warn_if_unset(backend: str | None = None) -> bool:
  """Warns once (``DeterminismWarning``) if JAX has started on a GPU without the determinism flags.

  Call it before checking a bitwise claim. It never starts JAX: if no backend
  is initialised yet (and ``backend`` is not given) the flags can still be set,
  so it stays silent.

  Args:
    backend: the backend to judge (default: ``jax.default_backend()`` once JAX
      has started).

  Returns:
    True if it warned now; False if the flags are set, the backend needs none,
    JAX has not started, or this backend was warned about already.
  """
  if backend is None:
    if not _backends_initialised():
      return False
    import jax  # pylint: disable=import-outside-toplevel
    backend = jax.default_backend()
  if flags_set(backend) or backend in _WARNED:
    return False
  _WARNED.add(backend)
  warnings.warn(
      f"JAX started on {backend} without the determinism flags ({' or '.join(CANDIDATE_FLAGS[backend])})."
      " On a GPU, reductions may then add in a different order from run to run, so a bitwise comparison can"
      " fail for reasons that have nothing to do with the models compared. Set the flags before JAX starts:"
      " run `from jaxequiv import determinism; determinism.set_xla_flags()` first (in a notebook: in its first"
      " cell, after restarting the runtime).", DeterminismWarning, stacklevel=2)
  return True


def ensure_xla_flags() -> list[str]:
  """``set_xla_flags()`` if JAX has not started yet; otherwise ``warn_if_unset()``. For entry points.

  Returns:
    The flags added (empty if none were needed or JAX had already started).
  """
  if _backends_initialised():
    warn_if_unset()
    return []
  return set_xla_flags()
