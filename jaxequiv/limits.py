"""Resource limits checked before anything is allocated: memory estimates and bounded file reads.

Pure Python (no JAX), so the CLI checks its flags with it before JAX starts.

* ``estimate_bytes`` is the one memory estimate of a transformer step (its
  parameters, optimizer state and the activations of one step, float32) that
  every command uses; ``check_fits`` refuses an estimate above the machine's
  memory (``machine_memory_bytes``) in one line that names the flags to blame.
* ``read_limited`` (and ``open_checked``) reads a file only if it is a regular
  file no larger than a limit (never a FIFO, which would block, nor
  ``/dev/zero``, which never ends), optionally refusing a symbolic link.

The estimate is a lower bound (XLA's temporaries and Python's copies of the
data come on top), so refusing only above the machine's memory never refuses a
run that would fit; it catches the sizes that certainly cannot.
"""

from __future__ import annotations

import errno
import os
import re
import stat
from collections.abc import Mapping

BYTES_PER_VALUE = 4  # float32: params, optimizer state and activations are counted at 4 bytes each
OPTIMIZER_COPIES = 3  # training keeps gradients and Adam's two moments beside the params
# Activations kept per position per layer for the backward pass: q, k, v, the attention output, its projection, two
# layer-norm outputs and the residual (8), plus the MLP's hidden layer before and after its activation
# (2 * mlp_ratio); and per head the T x T scores and probabilities.
VALUES_PER_POSITION = 8
GIB = 2**30


def estimate_bytes(*, rows: int, seq_len: int, width: int, layers: int, heads: int, vocab: int,
                   mlp_ratio: int = 4, training: bool = True, row_values: int = 0,
                   data_values: int = 0) -> dict[str, int]:
  r"""Bytes a transformer step needs, by part: ``{"parameters", "activations", "data"}``.

  With P parameters, R rows of T positions, width D, L layers, H heads, V classes and MLP ratio m:

  .. math::
    P = L (4 + 2m) D^2 + (2V + T) D, \qquad
    \text{parameters} = 4 P (1 + 3 [\text{training}])

    \text{activations} = 4 R \big(L (T D (8 + 2m) + 2 H T^2) + 2 T V + \text{row\_values}\big)
    \quad\text{(training: kept for the backward pass)}

    \text{activations} = 4 R (2 L T D + T V + \text{row\_values})
    \quad\text{(inference: the KV cache and the logits)}

  and ``data = 4 * data_values``. A lower bound: XLA's temporaries come on top.

  Args:
    rows: R, rows of one step (batch rows; sampled sequences).
    seq_len: T.
    width: D.
    layers: L.
    heads: H.
    vocab: V, the classes of the output layer.
    mlp_ratio: m.
    training: count the optimizer state (gradients, Adam's moments) and the
      activations a backward pass keeps; else the inference caches only.
    row_values: further float32 values per row (e.g. an image encoder's input).
    data_values: float32 values of the data held in memory (e.g. the images).

  Returns:
    Bytes per part; their sum is the estimate.

  Examples:
    >>> est = estimate_bytes(rows=10_000_000, seq_len=64, width=128, layers=2, heads=4, vocab=64)
    >>> {k: round(v / 2**30) for k, v in est.items()}
    {'parameters': 0, 'activations': 12512, 'data': 0}
    >>> sum(estimate_bytes(rows=1, seq_len=8, width=4, layers=1, heads=1, vocab=2, training=False).values())
    1280
  """
  params = layers * (4 + 2 * mlp_ratio) * width**2 + (2 * vocab + seq_len) * width
  if training:
    per_row = layers * (seq_len * width * (VALUES_PER_POSITION + 2 * mlp_ratio) + 2 * heads * seq_len**2)
    per_row += 2 * seq_len * vocab
  else:
    per_row = 2 * layers * seq_len * width + seq_len * vocab
  copies = 1 + OPTIMIZER_COPIES * training
  return {"parameters": BYTES_PER_VALUE * params * copies,
          "activations": BYTES_PER_VALUE * rows * (per_row + row_values),
          "data": BYTES_PER_VALUE * data_values}


def machine_memory_bytes() -> int | None:
  """The machine's physical memory in bytes (``os.sysconf``), or None where the platform does not say."""
  try:
    pages, page_size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
  except (ValueError, OSError, AttributeError):
    return None
  return pages * page_size if pages > 0 and page_size > 0 else None


def human_bytes(num_bytes: int) -> str:
  """``num_bytes`` short, in GiB, MiB or bytes.

  Examples:
    >>> [human_bytes(n) for n in (12_512 * 2**30, 3 * 2**29, 2**17 * 3, 0)]
    ['12,512 GiB', '1.5 GiB', '0.38 MiB', '0 bytes']
  """
  for unit, size in (("GiB", GIB), ("MiB", 2**20)):
    if num_bytes >= size or (unit == "MiB" and num_bytes >= 2**10):
      value = num_bytes / size
      return f"{value:,.0f} {unit}" if value >= 10 else f"{value:.2g} {unit}"
  return f"{num_bytes:,} bytes"


class TooLargeError(ValueError):
  """A size that cannot fit (memory), or a file too large (or not regular) to read; one line naming the culprit."""


def check_fits(estimate: Mapping[str, int], culprits: Mapping[str, str], memory: int | None = None) -> None:
  """Raises ``TooLargeError`` if ``sum(estimate.values())`` exceeds ``memory`` (default: the machine's).

  Args:
    estimate: bytes per part (``estimate_bytes``).
    culprits: per part, the flags that size it, e.g. ``{"activations": "--batch-size 64 x --seq-len 256"}``;
      the message names those of the largest part.
    memory: bytes available; None: ``machine_memory_bytes()`` (no check if unknown).

  Examples:
    >>> est = estimate_bytes(rows=10_000_000, seq_len=64, width=128, layers=2, heads=4, vocab=64)
    >>> check_fits(est, {"activations": "--batch-size 10000000 x --seq-len 64"}, memory=24 * GIB)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    jaxequiv.limits.TooLargeError: --batch-size 10000000 x --seq-len 64 needs about 12,512 GiB for activations ...GiB
  """
  memory = machine_memory_bytes() if memory is None else memory
  total = sum(estimate.values())
  if memory is None or total <= memory:
    return
  part = max(estimate, key=estimate.__getitem__)
  parts = " + ".join(f"{k} {human_bytes(v)}" for k, v in estimate.items())
  raise TooLargeError(f"{culprits.get(part, 'these sizes')} needs about {human_bytes(total)} for {part} (a lower bound,"
                      f" float32: {parts}); this machine has {human_bytes(memory)}")


_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def _check_stat(name: str, st: os.stat_result, max_bytes: int) -> None:
  if not stat.S_ISREG(st.st_mode):
    kind = next((k for test, k in _KINDS if test(st.st_mode)), "not a regular file")
    raise TooLargeError(f"{name!r} is {kind}, not a regular file")
  if st.st_size > max_bytes:
    raise TooLargeError(f"{name!r} has {st.st_size:,} bytes, more than the {max_bytes:,}"
                        f" ({human_bytes(max_bytes)}) this reads")


def check_file(path: str | os.PathLike, max_bytes: int) -> None:
  """Raises ``TooLargeError`` naming ``path`` unless it is a regular file of at most ``max_bytes`` (not opened).

  A check before the work starts; ``read_limited`` checks again on the open file.
  """
  _check_stat(os.fspath(path), os.stat(path), max_bytes)


def open_checked(path: str | os.PathLike, max_bytes: int, *, follow_links: bool = True) -> int:
  """A read-only descriptor of ``path``, opened only if it is a regular file of at most ``max_bytes``.

  The file is opened without blocking (a FIFO would wait for a writer) and
  checked with ``fstat`` on the open descriptor; ``follow_links=False`` refuses
  a symbolic link at ``path`` (``O_NOFOLLOW``: a run directory's files never
  lead out of it). The caller closes the descriptor.

  Raises:
    FileNotFoundError, PermissionError: as ``open`` does.
    TooLargeError: naming the path, if it is a symbolic link (``follow_links=False``), not a regular file, or
      larger than ``max_bytes``.
  """
  name = os.fspath(path)
  flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | (0 if follow_links else getattr(os, "O_NOFOLLOW", 0))
  try:
    fd = os.open(name, flags)
  except OSError as e:
    if e.errno == errno.ELOOP and not follow_links:
      raise TooLargeError(f"{name!r} is a symbolic link, not followed here") from None
    raise
  try:
    _check_stat(name, os.fstat(fd), max_bytes)
  except BaseException:
    os.close(fd)
    raise
  return fd


def read_limited(path: str | os.PathLike, max_bytes: int, *, follow_links: bool = True) -> bytes:
  """The bytes of ``path`` if it is a regular file of at most ``max_bytes``; checked before reading.

  Opened and checked by ``open_checked``, then read up to ``max_bytes + 1``
  bytes (a file that grows meanwhile is refused too).

  Raises:
    FileNotFoundError, PermissionError: as ``open`` does.
    TooLargeError: naming the path, if it is not a regular file or is larger than ``max_bytes`` (or a symbolic
      link, with ``follow_links=False``).

  Examples:
    >>> read_limited("/dev/zero", 1024)
    Traceback (most recent call last):
    ...
    jaxequiv.limits.TooLargeError: '/dev/zero' is a character device, not a regular file
  """
  name = os.fspath(path)
  with os.fdopen(open_checked(name, max_bytes, follow_links=follow_links), "rb") as f:
    raw = f.read(max_bytes + 1)
  if len(raw) > max_bytes:
    raise TooLargeError(f"{name!r} grew past the {human_bytes(max_bytes)} this reads while being read")
  return raw


# errno -> what it means for a write, in the one line ``disk_error_message`` gives.
DISK_ERRNOS = {errno.ENOSPC: "no space left on the device", errno.EROFS: "the file system is read-only",
               errno.EDQUOT: "the disk quota is exceeded", errno.EFBIG: "the file is too large for the file system"}


# TensorStore (under orbax) reports a failed write as ValueError('RESOURCE_EXHAUSTED: Error writing local file "PATH":
# ... No space left on device [os_error_code='28']'): its errno and path, read from the message.
_TENSORSTORE_OS_ERROR = re.compile(r"""(?:file )?"(?P<path>[^"]+)".*\[os_error_code='(?P<code>\d+)'\]""", re.S)


def disk_error_message(e: BaseException) -> str | None:
  """One line for a write that failed on a full or read-only disk, naming the path; None for any other error.

  ``e`` is an ``OSError`` with one of ``DISK_ERRNOS``, or TensorStore's
  ``ValueError`` that carries such an ``os_error_code`` (orbax writes through it).

  Examples:
    >>> disk_error_message(OSError(errno.ENOSPC, "No space left on device", "runs/lm/metrics.jsonl"))
    "cannot write 'runs/lm/metrics.jsonl': no space left on the device (ENOSPC)"
    >>> disk_error_message(ValueError('RESOURCE_EXHAUSTED: Error writing local file "ckpt/x": Failed to write 41'
    ...                               " bytes to file 16: No space left on device [os_error_code='28']"))
    "cannot write 'ckpt/x': no space left on the device (ENOSPC)"
    >>> disk_error_message(OSError(errno.EINVAL, "Invalid argument")) is None
    True
  """
  if isinstance(e, OSError):
    code, path = e.errno, e.filename
  elif isinstance(e, ValueError) and (m := _TENSORSTORE_OS_ERROR.search(str(e))):
    code, path = int(m["code"]), m["path"]
  else:
    return None
  what = DISK_ERRNOS.get(code)
  if what is None:
    return None
  where = f" {path!r}" if path is not None else ""
  return f"cannot write{where}: {what} ({errno.errorcode[code]})"
