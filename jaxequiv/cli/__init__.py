"""Command line: ``jaxequiv {verify,train,sample,labels} ...`` (or ``python -m jaxequiv``).

Argparse and printing only. Each subcommand is a module here with
``add_arguments(parser)`` and ``run(args) -> int``; it is imported only when
chosen, so ``--help`` and ``--version`` do not start JAX.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# subcommand -> (module, one-line help)
COMMANDS = {
    "verify": ("jaxequiv.cli.verify", "check the LM/classifier equivalence (and the essay's identities) on this backend"),
    "train": ("jaxequiv.cli.train", "train a character model as an LM or as a next-character classifier"),
    "sample": ("jaxequiv.cli.sample", "sample sentences from a training run's checkpoint"),
    "labels": ("jaxequiv.cli.labels", "train image classifiers with one-hot and string label heads"),
}


def _version() -> str:
  from jaxequiv import __version__  # pylint: disable=import-outside-toplevel
  return __version__


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
  """The parser; only ``command``'s module is imported to add its flags."""
  parser = argparse.ArgumentParser(
      prog="jaxequiv",
      description="jaxequiv: a character LM and a next-character classifier are the same model, to the last bit.")
  parser.add_argument("--version", action="version", version=f"jaxequiv {_version()}")
  sub = parser.add_subparsers(dest="command", required=True, metavar="{" + ",".join(COMMANDS) + "}")
  for name, (module_name, help_text) in COMMANDS.items():
    p = sub.add_parser(name, help=help_text, description=help_text,
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    if name == command:
      importlib.import_module(module_name).add_arguments(p)
  return parser


def main(argv: list[str] | None = None) -> int:
  """Parses ``argv`` (default ``sys.argv[1:]``) and runs the chosen subcommand; returns its exit status."""
  argv = sys.argv[1:] if argv is None else list(argv)
  command = next((a for a in argv if not a.startswith("-")), None)
  args = build_parser(command if command in COMMANDS else None).parse_args(argv)
  return int(importlib.import_module(COMMANDS[args.command][0]).run(args) or 0)
