"""jaxequiv.limits: the memory estimate, the bounded file reads and the disk-error lines."""

import errno
import os
import threading

import pytest

from jaxequiv import cli, limits
from jaxequiv.alphabet import NUM_CLASSES
from jaxequiv.cli import labels as cli_labels
from jaxequiv.cli import train as cli_train
from jaxequiv.cli import verify as cli_verify


def test_estimate_follows_its_formula():
  rows, t, d, layers, h, v, m = 3, 8, 16, 2, 4, NUM_CLASSES, 4
  params = layers * (4 + 2 * m) * d * d + (2 * v + t) * d
  est = limits.estimate_bytes(rows=rows, seq_len=t, width=d, layers=layers, heads=h, vocab=v, mlp_ratio=m,
                              row_values=5, data_values=7)
  assert est == {"parameters": 4 * params * 4,
                 "activations": 4 * rows * (layers * (t * d * (8 + 2 * m) + 2 * h * t * t) + 2 * t * v + 5),
                 "data": 28}
  inference = limits.estimate_bytes(rows=rows, seq_len=t, width=d, layers=layers, heads=h, vocab=v, training=False)
  assert inference == {"parameters": 4 * params, "activations": 4 * rows * (2 * layers * t * d + t * v), "data": 0}


def _parse(argv):
  return cli.build_parser(argv[0]).parse_args(argv)


@pytest.mark.parametrize("argv", [
    ["train"],
    ["train", "--objective", "classification", "--mode", "iid"],
    ["train", "--data", "synthetic", "--layers", "6", "--width", "384", "--heads", "6", "--seq-len", "256",
     "--batch-size", "64", "--dtype", "bfloat16", "--steps", "20000"],  # the README's accelerator command
    ["labels", "--data", "tfds:cifar100", "--num-train", "10000", "--num-test", "2000"],
    ["labels", "--data", "tfds:imagenette/160px-v2", "--image-size", "64"],
    ["verify"],
])
def test_readme_commands_fit_in_8_gib(argv, monkeypatch):
  """The README's commands are never refused on an 8 GiB machine (the check sees 8 GiB here, whatever this has)."""
  monkeypatch.setattr(limits, "machine_memory_bytes", lambda: 8 * limits.GIB)
  args = _parse(argv)
  module = {"train": cli_train, "labels": cli_labels, "verify": cli_verify}[argv[0]]
  module.check_memory(args)
  monkeypatch.setattr(limits, "machine_memory_bytes", lambda: 2**17)
  with pytest.raises(limits.TooLargeError, match=r"this machine has 0\.12 MiB$"):  # the check did run
    module.check_memory(args)


def test_check_fits_names_the_largest_part_and_the_machine():
  est = {"parameters": 1, "activations": 3 * limits.GIB, "data": 2}
  limits.check_fits(est, {}, memory=4 * limits.GIB)  # fits: nothing raised
  with pytest.raises(limits.TooLargeError) as e:
    limits.check_fits(est, {"activations": "--batch-size 9", "parameters": "--width 9"}, memory=2 * limits.GIB)
  line = str(e.value)
  print(line)
  assert "\n" not in line and line.startswith("--batch-size 9 needs about 3 GiB for activations")
  assert line.endswith("this machine has 2 GiB")
  memory = limits.machine_memory_bytes()
  print(f"this machine: {limits.human_bytes(memory)}")
  assert memory is None or memory > 2**26


def test_read_limited_reads_regular_files_only_and_within_the_limit(tmp_path):
  path = tmp_path / "a.txt"
  path.write_bytes(b"x" * 100)
  assert limits.read_limited(path, 100) == b"x" * 100
  with pytest.raises(limits.TooLargeError, match="has 100 bytes, more than the 99"):
    limits.read_limited(path, 99)
  with pytest.raises(limits.TooLargeError, match="is a directory, not a regular file"):
    limits.read_limited(tmp_path, 10)
  with pytest.raises(limits.TooLargeError, match="'/dev/zero' is a character device"):
    limits.read_limited("/dev/zero", 10)
  with pytest.raises(FileNotFoundError):
    limits.read_limited(tmp_path / "missing", 10)
  limits.check_file(path, 100)
  with pytest.raises(limits.TooLargeError, match="a.txt' has 100 bytes"):
    limits.check_file(path, 10)


def test_read_limited_refuses_a_fifo_without_blocking(tmp_path):
  fifo = tmp_path / "pipe"
  os.mkfifo(fifo)
  result = []

  def read():
    try:
      limits.read_limited(fifo, 10)
    except limits.TooLargeError as e:
      result.append(str(e))

  thread = threading.Thread(target=read, daemon=True)
  thread.start()
  thread.join(timeout=10)
  if thread.is_alive():  # unblock the reader so the test process can end, then fail
    with open(fifo, "wb"):
      pass
    pytest.fail("read_limited blocked on a FIFO")
  assert result == [f"{str(fifo)!r} is a FIFO (named pipe), not a regular file"]


def test_disk_error_message_names_the_errno_and_the_path():
  assert limits.disk_error_message(OSError(errno.EROFS, "Read-only file system", "/run/x")) == (
      "cannot write '/run/x': the file system is read-only (EROFS)")
  assert limits.disk_error_message(OSError(errno.ENOSPC, "No space left on device")) == (
      "cannot write: no space left on the device (ENOSPC)")
  assert limits.disk_error_message(FileNotFoundError(errno.ENOENT, "No such file")) is None
