"""Data parallelism over all local devices with ``jax.sharding``.

One mesh axis, ``'data'``, over ``jax.devices()``. Parameters and optimizer
state are replicated; batch rows are split across devices. ``jax.jit`` then
partitions the unchanged ``train_step`` (GSPMD): each device runs the model on
its rows and the gradient reductions over rows become all-reduces.

Sharding of the batch types:

* ``LMBatch``: ``inputs``, ``targets``, ``mask`` ``[R, T]`` are split along R.
* ``ClassificationBatch``: ``tokens [R, T]`` is split along R. The per-example
  arrays ``rows``, ``positions``, ``labels`` ``[N]`` are **replicated**: an
  example's ``row`` is a global row index, and examples are not grouped by
  device (an iid batch may put example i's row on any device), so splitting N
  would not line up with the token shards. They are N int32s, small next to the
  activations, and the loss scatters them into an ``[R, T]`` grid that XLA
  splits along R like the LM's mask.

R must be divisible by the number of devices (``shard_batch`` raises
otherwise; choose ``batch_size`` accordingly).

Multi-process (several hosts, or several processes on one machine): each
process runs the same program on its own devices, and ``jax.jit`` runs the
collectives across processes (gloo on CPU, NCCL on GPU, ICI on TPU).
``maybe_initialize_distributed()`` must run before any JAX computation: with
``JAXEQUIV_COORDINATOR_ADDRESS``, ``JAXEQUIV_NUM_PROCESSES`` and
``JAXEQUIV_PROCESS_ID`` set (``python -m jaxequiv.lm.launch`` sets them) it
joins that job (``initialize_distributed``: a bounded wait, one-line errors);
with ``JAXEQUIV_DISTRIBUTED=1`` (or ``--distributed``) it calls
``jax.distributed.initialize()``, which reads the cluster environment (SLURM,
Cloud TPU). The mesh then spans ``jax.devices()`` of all processes
(process-major), and **each process feeds only its own rows**:
``process_rows(R)`` is the block of the global batch's rows that its devices
hold, and ``shard_batch`` takes exactly those rows
(``jax.make_array_from_process_local_data``). Per-example classification
arrays are replicated, so every process passes them whole. A collective whose
peer died raises (gloo: "Connection closed by peer"); ``peer_loss_error``
turns that into a one-line ``PeerLostError`` and a prompt exit.

Examples:
  mesh = make_mesh()
  rep = replicated(mesh)  # state and metrics come out replicated; batch shardings come from the arguments
  step = training.jit_train_step(training.make_train_step(loss_fn, opt), out_shardings=(rep, rep))
  state = replicate(state, mesh)
  state, metrics = step(state, shard_batch(batch, mesh))
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from jaxequiv.batches import ClassificationBatch, LMBatch

DATA_AXIS = "data"
DISTRIBUTED_ENV = "JAXEQUIV_DISTRIBUTED"
COORDINATOR_ENV = "JAXEQUIV_COORDINATOR_ADDRESS"  # HOST:PORT of process 0's coordinator
NUM_PROCESSES_ENV = "JAXEQUIV_NUM_PROCESSES"
PROCESS_ID_ENV = "JAXEQUIV_PROCESS_ID"
INIT_TIMEOUT_ENV = "JAXEQUIV_INIT_TIMEOUT"  # seconds to wait for every process to join (default 60)
HEARTBEAT_TIMEOUT_ENV = "JAXEQUIV_HEARTBEAT_TIMEOUT"  # seconds before a silent process counts as dead (default 30)
DEFAULT_INIT_TIMEOUT_S = 60
DEFAULT_HEARTBEAT_TIMEOUT_S = 30
PEER_LOST_STATUS = 1  # exit status of a process whose job lost a process


class DistributedError(ValueError):
  """A process could not join its multi-process job, or was told the wrong size or id. One-line message."""


def distributed_env(environ: dict | None = None) -> tuple[str, int, int, int, int] | None:
  """``(address, num_processes, process_id, init_timeout_s, heartbeat_timeout_s)`` from the environment.

  None unless ``JAXEQUIV_COORDINATOR_ADDRESS`` is set.

  Raises:
    DistributedError: naming the variable that is missing or not an integer.

  Examples:
    >>> distributed_env({"JAXEQUIV_COORDINATOR_ADDRESS": "127.0.0.1:1234", "JAXEQUIV_NUM_PROCESSES": "2",
    ...                  "JAXEQUIV_PROCESS_ID": "1"})
    ('127.0.0.1:1234', 2, 1, 60, 30)
  """
  env = os.environ if environ is None else environ
  address = env.get(COORDINATOR_ENV, "")
  if not address:
    return None

  def integer(name, default=None):
    raw = env.get(name, "")
    if not raw and default is not None:
      return default
    try:
      return int(raw)
    except ValueError:
      raise DistributedError(f"{name}={raw!r} is not an integer ({COORDINATOR_ENV} is set, so it is needed)"
                             ) from None

  return (address, integer(NUM_PROCESSES_ENV), integer(PROCESS_ID_ENV),
          integer(INIT_TIMEOUT_ENV, DEFAULT_INIT_TIMEOUT_S), integer(HEARTBEAT_TIMEOUT_ENV, DEFAULT_HEARTBEAT_TIMEOUT_S))


def check_job(address: str, num_processes: int, process_id: int) -> None:
  """Raises ``DistributedError`` (one line) unless ``address`` is HOST:PORT and ``0 <= process_id < num_processes``.

  >>> check_job("127.0.0.1:99999", 2, 0)
  Traceback (most recent call last):
  ...
  jaxequiv.lm.parallel.DistributedError: coordinator address '127.0.0.1:99999' is not HOST:PORT with a port in 1..65535
  """
  host, sep, port = address.rpartition(":")
  if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
    raise DistributedError(f"coordinator address {address!r} is not HOST:PORT with a port in 1..65535")
  if num_processes < 1:
    raise DistributedError(f"the number of processes must be >= 1, got {num_processes}")
  if not 0 <= process_id < num_processes:
    raise DistributedError(f"process id {process_id} is outside 0..{num_processes - 1} for {num_processes} processes")


def _give_up(message: str) -> None:  # pragma: no cover (runs in a dying process)
  print(f"jaxequiv: error: {message}", file=sys.stderr, flush=True)
  os._exit(PEER_LOST_STATUS)  # pylint: disable=protected-access


def initialize_distributed(address: str, num_processes: int, process_id: int, *,
                           init_timeout_s: int = DEFAULT_INIT_TIMEOUT_S,
                           heartbeat_timeout_s: int = DEFAULT_HEARTBEAT_TIMEOUT_S) -> None:
  """Joins a job of ``num_processes`` processes as ``process_id`` (``jax.distributed.initialize``), bounded in time.

  On CPU the cross-process collectives use gloo. JAX's runtime aborts the
  process (no Python exception, a page of C++ log) when the others do not all
  join in time; a watchdog that fires ``init_timeout_s`` seconds in, before
  JAX's own deadline, prints one line naming the address, the count and the id
  and exits with status 1 instead. Once joined, a process that stops sending
  heartbeats for ``heartbeat_timeout_s`` seconds counts as dead and the
  others stop.

  Raises:
    DistributedError: a bad address, count or id, or a coordinator that runs a
      different number of processes than ``num_processes`` (one line).
  """
  check_job(address, num_processes, process_id)
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  watchdog = threading.Timer(init_timeout_s, _give_up, args=(
      f"process {process_id} of {num_processes} could not join the job at {address} within {init_timeout_s} s:"
      f" is the coordinator (process 0) running there, was every id 0..{num_processes - 1} started exactly once,"
      f" with the same count?",))
  watchdog.daemon = True
  watchdog.start()
  try:
    jax.distributed.initialize(address, num_processes, process_id, initialization_timeout=init_timeout_s + 30,
                               heartbeat_timeout_seconds=heartbeat_timeout_s, shutdown_timeout_seconds=10)
  finally:
    watchdog.cancel()
  atexit.register(_exit_without_shutdown_if_peer_lost)
  if jax.process_count() != num_processes:
    raise DistributedError(f"process {process_id} was started for {num_processes} processes, but the job at {address}"
                           f" has {jax.process_count()}")


class PeerLostError(DistributedError):
  """A collective failed because another process of the job died. One-line message."""


_PEER_LOST = False
_PEER_LOSS_MARKS = ("Connection closed by peer", "Connection reset by peer", "heartbeat timeout", "Socket closed",
                    "Broken pipe", "Gloo all-reduce failed", "Gloo all-gather failed")


def peer_loss_error(e: BaseException) -> PeerLostError | None:
  """``PeerLostError`` (one line) if ``e`` is a collective failing because another process died, else None.

  It also marks the job as broken: at exit the process then skips JAX's
  shutdown barrier (which would wait for the dead process, then abort with a
  page of C++ log) and exits with status 1 at once.
  """
  global _PEER_LOST  # pylint: disable=global-statement
  text = str(e)
  if jax.process_count() == 1 or not any(m in text for m in _PEER_LOSS_MARKS):
    return None
  _PEER_LOST = True
  return PeerLostError(f"process {jax.process_index()} of {jax.process_count()} lost a peer process, stopping:"
                       f" {' '.join(text.split())[:300]}")


def _exit_without_shutdown_if_peer_lost() -> None:  # pragma: no cover (runs at exit)
  if _PEER_LOST:
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(PEER_LOST_STATUS)  # pylint: disable=protected-access


def maybe_initialize_distributed(enable: bool | None = None) -> bool:
  """Joins a multi-process job if the environment or ``enable`` asks; returns whether it did.

  * ``JAXEQUIV_COORDINATOR_ADDRESS`` (+ ``_NUM_PROCESSES``, ``_PROCESS_ID``,
    optional ``_INIT_TIMEOUT``, ``_HEARTBEAT_TIMEOUT``) set, as
    ``python -m jaxequiv.lm.launch`` does: ``initialize_distributed`` with them.
  * Else ``enable`` (default: env ``JAXEQUIV_DISTRIBUTED=1``):
    ``jax.distributed.initialize()``, which reads the cluster (SLURM, Cloud TPU).

  Must run before JAX's first computation.
  """
  job = distributed_env()
  if job is not None:
    address, n, i, init_s, heartbeat_s = job
    initialize_distributed(address, n, i, init_timeout_s=init_s, heartbeat_timeout_s=heartbeat_s)
    return True
  if enable is None:
    enable = os.environ.get(DISTRIBUTED_ENV, "") not in ("", "0", "false", "False")
  if enable:
    jax.distributed.initialize()
  return bool(enable)


def make_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
  """A 1-D mesh with axis ``'data'`` over ``devices`` (default: all of ``jax.devices()``)."""
  devices = list(jax.devices() if devices is None else devices)
  return Mesh(np.array(devices), (DATA_AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def row_sharded(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P(DATA_AXIS))


def replicate(tree: Any, mesh: Mesh) -> Any:
  """Puts every leaf of ``tree`` on all devices of ``mesh`` (params, optimizer state)."""
  return jax.device_put(tree, replicated(mesh))


def batch_sharding(batch: LMBatch | ClassificationBatch, mesh: Mesh):
  """The sharding pytree for a batch: rows split along ``'data'``; per-example arrays replicated."""
  if isinstance(batch, LMBatch):
    return LMBatch(*(row_sharded(mesh),) * 3)
  if isinstance(batch, ClassificationBatch):
    return ClassificationBatch(row_sharded(mesh), replicated(mesh), replicated(mesh), replicated(mesh))
  raise TypeError(f"expected LMBatch or ClassificationBatch, got {type(batch).__name__}")


def process_rows(num_rows: int, mesh: Mesh | None = None) -> slice:
  """The rows of a global ``[num_rows, ...]`` batch that this process's devices hold on ``mesh``'s ``'data'`` axis.

  All rows with one process. Rows are split evenly over the devices in mesh
  order, and ``make_mesh`` orders devices by process, so a process's rows are
  one contiguous block.

  Raises:
    ValueError: if ``num_rows`` is not divisible by the number of devices.

  Examples:
    >>> process_rows(8)
    slice(0, 8, None)
  """
  mesh = make_mesh() if mesh is None else mesh
  n = mesh.shape[DATA_AXIS]
  if num_rows % n:
    raise ValueError(f"batch has R={num_rows} rows, not divisible by the {n} devices of the 'data' axis;"
                     f" use a batch size that is a multiple of {n}")
  per = num_rows // n
  mine = [i for i, d in enumerate(mesh.devices.flat) if d.process_index == jax.process_index()]
  if mine != list(range(mine[0], mine[-1] + 1)):
    raise ValueError(f"process {jax.process_index()}'s devices are not contiguous on the mesh: {mine}")
  return slice(mine[0] * per, (mine[-1] + 1) * per)


def _put(x, sharding: NamedSharding, global_shape: tuple[int, ...]):
  x = np.asarray(x)
  if jax.process_count() == 1:
    return jax.device_put(x, sharding)
  return jax.make_array_from_process_local_data(sharding, x, global_shape)


def shard_batch(batch: LMBatch | ClassificationBatch, mesh: Mesh):
  """Places a host (numpy) batch on ``mesh``: ``[R, T]`` arrays split by rows.

  With several processes, ``batch`` holds only this process's rows
  (``process_rows(R, mesh)``, e.g. from ``lm.data.lm_batches(rows=...)``): the
  global batch has ``R_local * devices / local devices`` rows and no process
  builds it whole. Per-example classification arrays are replicated: pass them
  whole.

  Raises:
    ValueError: if R is not divisible by the number of devices.
  """
  n = mesh.shape[DATA_AXIS]
  r = np.shape(batch[0])[0]
  if jax.process_count() > 1:  # this process's rows: scale up to the global batch
    r = r * n // sum(d.process_index == jax.process_index() for d in mesh.devices.flat)
  if r % n:
    raise ValueError(f"batch has R={r} rows, not divisible by the {n} devices of the 'data' axis;"
                     f" use a batch size that is a multiple of {n}")
  shardings = batch_sharding(batch, mesh)
  return type(batch)(*(_put(x, s, (r, *np.shape(x)[1:]) if s.spec == P(DATA_AXIS) else np.shape(x))
                       for x, s in zip(batch, shardings)))


def jit_grad(loss_fn: Callable, mesh: Mesh) -> Callable:
  """``jax.jit(jax.grad(loss_fn))`` with replicated gradients out (for checks)."""
  return jax.jit(jax.grad(loss_fn), out_shardings=replicated(mesh))


def sync_processes(name: str) -> None:
  """Waits until every process of the job reaches ``sync_processes(name)`` (nothing with one process)."""
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils  # pylint: disable=import-outside-toplevel
    multihost_utils.sync_global_devices(name)


def sum_over_processes(n: int) -> int:
  """``n`` summed over the job's processes (``n`` itself with one process): e.g. predictions in each one's rows."""
  if jax.process_count() == 1:
    return int(n)
  from jax.experimental import multihost_utils  # pylint: disable=import-outside-toplevel
  return int(np.sum(multihost_utils.process_allgather(np.int64(n))))
