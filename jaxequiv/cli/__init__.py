"""Command line: ``jaxequiv {verify,train,sample,compare,labels} ...`` (or ``python -m jaxequiv``).

Argparse and printing only. Each subcommand is a module here with
``add_arguments(parser)`` and ``run(args) -> int``; it is imported only when
chosen, so ``--help`` and ``--version`` do not start JAX.

Bad input gets one line on stderr and exit status 2, never a traceback:

* each flag's range is checked by its argparse ``type=`` (``positive_int``,
  ``finite_float(...)``, ...), so a bad flag fails before any data is loaded;
* flags that must agree (``--heads`` divides ``--width``) raise ``UsageError``
  at the top of ``run``, still before any data is loaded;
* size flags are checked against the machine's memory (``jaxequiv.limits``)
  at the top of ``run``, and input files are read only if regular and small
  enough, still before any data is loaded;
* ``main`` turns ``UsageError``, ``ValueError`` and the ``OSError``\\ s of a
  missing or unreadable file into ``jaxequiv <cmd>: error: <message>``, and a
  full or read-only disk into one line naming the path (exit status 1), and
  Ctrl-C or SIGTERM outside a training loop (which ends at a step boundary by
  itself) into one line (exit status 128 + the signal), each with what the
  command adds (``state_note(args)``: train names the last good checkpoint and
  the resume command).
  Anything else (a genuine bug) keeps its traceback, and so does everything when
  ``JAXEQUIV_DEBUG=1``.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import math
import os
import signal
import sys
import threading
from collections.abc import Callable

# subcommand -> (module, one-line help)
COMMANDS = {
    "verify": ("jaxequiv.cli.verify", "check the LM/classifier equivalence (and the essay's identities) on this backend"),
    "train": ("jaxequiv.cli.train", "train a character model as an LM or as a next-character classifier"),
    "sample": ("jaxequiv.cli.sample", "sample sentences from a training run's checkpoint"),
    "compare": ("jaxequiv.cli.compare", "compare two training runs bit for bit (params, optimizer state, metrics)"),
    "labels": ("jaxequiv.cli.labels", "train image classifiers with one-hot and string label heads"),
}
SEED_MAX = 2**32 - 1
# Errors that bad user input raises; they print one line. ImportErrors count only when they say what to install.
USER_OSERRORS = (FileNotFoundError, FileExistsError, PermissionError, IsADirectoryError, NotADirectoryError)


class UsageError(Exception):
  """Bad command-line input (flags that disagree, a missing file); ``main`` prints it on one line."""


class _Parser(argparse.ArgumentParser):
  """Errors are one line, ``prog: error: message``, exit status 2 (argparse would print the usage first)."""

  def error(self, message: str):
    self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
  """Appends ``(default: X)`` to a flag's help once: not when the help already states its default, nor for
  None or a switch's False (nothing to state), nor for positionals."""

  def _get_help_string(self, action):
    text = action.help or ""
    if ("default" in text or not action.option_strings or action.default is None or action.default is False
        or action.default is argparse.SUPPRESS):
      return text
    return super()._get_help_string(action)


# --- argparse ``type=`` validators: each names the accepted range -------------------------------------------


def int_range(lo: int | None = None, hi: int | None = None, *, note: str = "") -> Callable[[str], int]:
  """An argparse type: an int in ``[lo, hi]`` (either end may be open-ended)."""
  if lo is not None and hi is not None:
    want = f"an integer in [{lo}, {hi}]"
  elif lo is not None:
    want = f"an integer >= {lo}"
  else:
    want = f"an integer <= {hi}"
  want += note

  def parse(text: str) -> int:
    try:
      value = int(text)
    except ValueError:
      raise argparse.ArgumentTypeError(f"must be {want}, got {text!r}") from None
    if (lo is not None and value < lo) or (hi is not None and value > hi):
      raise argparse.ArgumentTypeError(f"must be {want}, got {text!r}")
    return value

  parse.__name__ = "int"  # argparse names the type in some messages
  return parse


def finite_float(lo: float | None = None, hi: float | None = None, *, lo_open: bool = False,
                 hi_open: bool = False, note: str = "") -> Callable[[str], float]:
  """An argparse type: a finite float in the interval given (``lo_open``/``hi_open`` exclude an end)."""
  parts = []
  if lo is not None:
    parts.append(f"{'>' if lo_open else '>='} {lo:g}")
  if hi is not None:
    parts.append(f"{'<' if hi_open else '<='} {hi:g}")
  if lo is not None and hi is not None:
    want = f"a finite number in {'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"
  else:
    want = "a finite number" + (" " + parts[0] if parts else "")
  want += note

  def parse(text: str) -> float:
    try:
      value = float(text)
    except ValueError:
      raise argparse.ArgumentTypeError(f"must be {want}, got {text!r}") from None
    bad = not math.isfinite(value)
    bad = bad or (lo is not None and (value <= lo if lo_open else value < lo))
    bad = bad or (hi is not None and (value >= hi if hi_open else value > hi))
    if bad:
      raise argparse.ArgumentTypeError(f"must be {want}, got {text!r}")
    return value

  parse.__name__ = "float"
  return parse


positive_int = int_range(1)
nonnegative_int = int_range(0)
seed_int = int_range(0, SEED_MAX)
unit_interval = finite_float(0.0, 1.0)
positive_float = finite_float(0.0, lo_open=True)
nonnegative_float = finite_float(0.0)


def int_list(text: str) -> tuple[int, ...]:
  """An argparse type: comma-separated integers >= 1, e.g. ``16,32,64``."""
  try:
    values = tuple(int(t) for t in text.split(","))
  except ValueError:
    values = ()
  if not values or min(values) < 1:
    raise argparse.ArgumentTypeError(f"must be comma-separated integers >= 1, e.g. 16,32,64; got {text!r}")
  return values


def check_heads(width: int, heads: int) -> None:
  """``--heads`` must divide ``--width`` (each head gets ``width / heads`` dimensions)."""
  if width % heads:
    divisors = [str(d) for d in range(1, width + 1) if width % d == 0]
    shown = ", ".join(divisors[:10]) + (", ..." if len(divisors) > 10 else "")
    raise UsageError(f"argument --heads: must divide --width {width} (one of {shown}), got {heads}")


def set_determinism_flags(args: argparse.Namespace) -> None:
  """Sets the backend's determinism XLA flags before JAX starts, unless ``--no-determinism-flags``.

  If JAX has already started (``main`` called in-process), warns once on a GPU
  without the flags instead (``determinism.ensure_xla_flags``).
  """
  if getattr(args, "no_determinism_flags", False):
    return
  from jaxequiv import determinism  # pylint: disable=import-outside-toplevel
  try:
    determinism.ensure_xla_flags()
  except RuntimeError as e:
    raise UsageError(f"{e} (or pass --no-determinism-flags)") from e


def add_determinism_flag(parser: argparse.ArgumentParser) -> None:
  parser.add_argument("--no-determinism-flags", action="store_true",
                      help="do not set the backend's determinism XLA flags before JAX starts (GPU results may then"
                           " differ from run to run)")


# --- the entry point -----------------------------------------------------------------------------------------


def _version() -> str:
  from jaxequiv import __version__  # pylint: disable=import-outside-toplevel
  return __version__


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
  """The parser; only ``command``'s module is imported to add its flags."""
  parser = _Parser(
      prog="jaxequiv",
      description="jaxequiv: a character LM and a next-character classifier are the same model, to the last bit.")
  parser.add_argument("--version", action="version", version=f"jaxequiv {_version()}")
  sub = parser.add_subparsers(dest="command", required=True, metavar="{" + ",".join(COMMANDS) + "}")
  for name, (module_name, help_text) in COMMANDS.items():
    p = sub.add_parser(name, help=help_text, description=help_text,
                       formatter_class=HelpFormatter)
    if name == command:
      importlib.import_module(module_name).add_arguments(p)
  return parser


def is_user_error(e: BaseException) -> bool:
  """Whether ``e`` comes from bad input (printed on one line) rather than from a bug (keeps its traceback)."""
  if isinstance(e, (UsageError, ValueError) + USER_OSERRORS):
    return True
  return isinstance(e, ImportError) and "pip install" in str(e)  # a missing optional extra, named


def one_line(e: BaseException) -> str:
  """The exception's message on one line."""
  return " ".join(line.strip() for line in str(e).splitlines() if line.strip()) or type(e).__name__


def disk_error_line(e: BaseException, module, args: argparse.Namespace) -> str | None:
  """One line for a full or read-only disk (``limits.disk_error_message`` of ``e`` or of the error it was raised
  from) plus the command's ``state_note``; None for any other exception."""
  from jaxequiv import limits  # pylint: disable=import-outside-toplevel
  message, seen = None, set()
  while e is not None and message is None and id(e) not in seen:  # the error or one it was raised from (orbax wraps)
    seen.add(id(e))
    message = limits.disk_error_message(e)
    e = e.__cause__ or e.__context__
  if message is None:
    return None
  return message + state_note(module, args)


def state_note(module, args: argparse.Namespace) -> str:
  """``"; " + module.state_note(args)`` (e.g. train's last good checkpoint) if the command has one, else ``""``."""
  note = getattr(module, "state_note", None)
  return "" if note is None else f"; {note(args)}"


class _NoDiskErrorTracebacks(logging.Filter):
  """Drops log records carrying a full- or read-only-disk error (``limits.disk_error_message``): orbax's writer
  threads log their tracebacks through absl before the error reaches ``main``, which says it in one line, and
  after it (so ``main`` leaves this filter on once a command ended on such an error)."""

  def filter(self, record: logging.LogRecord) -> bool:
    from jaxequiv import limits  # pylint: disable=import-outside-toplevel
    return not (record.exc_info and record.exc_info[1] is not None
                and limits.disk_error_message(record.exc_info[1]) is not None)


_QUIET = _NoDiskErrorTracebacks()


class Terminated(BaseException):
  """SIGTERM, raised by ``main``'s handler (a ``BaseException``, like ``KeyboardInterrupt``, so nothing swallows it)."""


@contextlib.contextmanager
def sigterm_raises():
  """While open (in the main thread), SIGTERM raises ``Terminated`` instead of killing the process silently."""
  if threading.current_thread() is not threading.main_thread():
    yield
    return

  def handler(signum, frame):  # pylint: disable=unused-argument
    raise Terminated()

  previous = signal.signal(signal.SIGTERM, handler)
  try:
    yield
  finally:
    signal.signal(signal.SIGTERM, previous)


def main(argv: list[str] | None = None) -> int:
  """Parses ``argv`` (default ``sys.argv[1:]``) and runs the chosen subcommand; returns its exit status.

  ``--help`` and ``--version`` raise ``SystemExit(0)`` as usual; bad input
  returns 2 after one line on stderr.
  """
  argv = sys.argv[1:] if argv is None else list(argv)
  command = next((a for a in argv if not a.startswith("-")), None)
  try:
    args = build_parser(command if command in COMMANDS else None).parse_args(argv)
  except SystemExit as e:
    if e.code in (0, None):
      raise
    return int(e.code) if isinstance(e.code, int) else 2
  module = importlib.import_module(COMMANDS[args.command][0])
  logging.getLogger("absl").addFilter(_QUIET)
  disk_failed = False
  try:
    with sigterm_raises():
      return int(module.run(args) or 0)
  except (KeyboardInterrupt, Terminated):
    if os.environ.get("JAXEQUIV_DEBUG"):
      raise
    signum = signal.SIGTERM if isinstance(sys.exc_info()[1], Terminated) else signal.SIGINT
    print(f"jaxequiv {args.command}: stopped by {signum.name}{state_note(module, args)}", file=sys.stderr)
    return 128 + signum
  except Exception as e:  # pylint: disable=broad-except
    if os.environ.get("JAXEQUIV_DEBUG"):
      raise
    disk = disk_error_line(e, module, args)
    if disk is not None:  # the machine's fault, not the input's: exit status 1
      print(f"jaxequiv {args.command}: error: {disk}", file=sys.stderr)
      disk_failed = True
      return 1
    if not is_user_error(e):
      raise
    print(f"jaxequiv {args.command}: error: {one_line(e)}", file=sys.stderr)
    return 2
  finally:
    if not disk_failed:  # else orbax's threads may still log the error's tracebacks after this returns
      logging.getLogger("absl").removeFilter(_QUIET)
