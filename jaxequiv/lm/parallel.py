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

Multi-host: set ``JAXEQUIV_DISTRIBUTED=1`` (or pass ``--distributed`` to the
CLI) and call ``maybe_initialize_distributed()`` before any JAX computation; it
calls ``jax.distributed.initialize()``, which reads the coordinator address,
process count and id from the cluster environment (SLURM, Cloud TPU, or the
``JAX_COORDINATOR_ADDRESS`` etc. variables). The mesh then spans
``jax.devices()`` of all hosts, and each host must feed the same global batch
(``shard_batch`` uses ``jax.make_array_from_callback`` on the global numpy
batch, so every host builds the full batch and keeps its rows). Untested here:
this machine has one host and no accelerator.

Examples:
  mesh = make_mesh()
  step = jit_train_step(make_train_step(loss_fn, opt), mesh)
  state = replicate(state, mesh)
  state, metrics = step(state, shard_batch(batch, mesh))
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from jaxequiv.batches import ClassificationBatch, LMBatch

DATA_AXIS = "data"
DISTRIBUTED_ENV = "JAXEQUIV_DISTRIBUTED"


def maybe_initialize_distributed(enable: bool | None = None) -> bool:
  """Calls ``jax.distributed.initialize()`` if ``enable`` (default: env ``JAXEQUIV_DISTRIBUTED=1``).

  Returns:
    Whether it initialised. Must run before JAX's first computation.
  """
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


def _put(x, sharding: NamedSharding):
  x = np.asarray(x)
  if jax.process_count() == 1:
    return jax.device_put(x, sharding)
  return jax.make_array_from_callback(x.shape, sharding, lambda idx: x[idx])


def shard_batch(batch: LMBatch | ClassificationBatch, mesh: Mesh):
  """Places a host (numpy) batch on ``mesh``: ``[R, T]`` arrays split by rows.

  Raises:
    ValueError: if R is not divisible by the number of devices.
  """
  n = mesh.shape[DATA_AXIS]
  r = np.shape(batch[0])[0]
  if r % n:
    raise ValueError(f"batch has R={r} rows, not divisible by the {n} devices of the 'data' axis;"
                     f" use a batch size that is a multiple of {n}")
  shardings = batch_sharding(batch, mesh)
  return type(batch)(*(_put(x, s) for x, s in zip(batch, shardings)))


def jit_train_step(train_step: Callable, mesh: Mesh) -> Callable:
  """``jax.jit(train_step)`` with state replicated and batch rows split over ``mesh``.

  The state and metrics come out replicated. The batch shardings are taken from
  the arguments (``shard_batch``), so one jitted step serves both batch types.
  """
  rep = replicated(mesh)
  return jax.jit(train_step, out_shardings=(rep, rep))


def jit_grad(loss_fn: Callable, mesh: Mesh) -> Callable:
  """``jax.jit(jax.grad(loss_fn))`` with replicated gradients out (for checks)."""
  return jax.jit(jax.grad(loss_fn), out_shardings=replicated(mesh))
