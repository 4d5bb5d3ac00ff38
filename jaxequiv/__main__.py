"""Command line: ``python -m jaxequiv {verify,train,sample,labels} ...``.

Thin on purpose: each subcommand lives in a module with ``add_arguments(parser)``
and ``run(args) -> int``; the logic lives in the library.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# subcommand -> (module, one-line help)
COMMANDS = {
    "verify": ("jaxequiv.verify", "check the LM/classifier equivalence on this backend and time both"),
    "train": ("jaxequiv.cli_train", "train a character model as an LM or as a next-character classifier"),
    "sample": ("jaxequiv.cli_sample", "sample sentences from a training run's checkpoint"),
    "labels": ("jaxequiv.cli_labels", "train image classifiers with one-hot and string label heads"),
}


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(
      prog="python -m jaxequiv",
      description="jaxequiv: a character LM and a next-character classifier are the same model, to the last bit.")
  sub = parser.add_subparsers(dest="command", required=True)
  modules = {}
  for name, (module_name, help_text) in COMMANDS.items():
    try:
      module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
      if e.name != module_name:
        raise
      continue
    p = sub.add_parser(name, help=help_text, description=help_text,
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    getattr(module, f"add_{name}_arguments", getattr(module, "add_arguments", None))(p)
    modules[name] = getattr(module, f"run_{name}", getattr(module, "run", None))
  args = parser.parse_args(argv)
  return int(modules[args.command](args) or 0)


if __name__ == "__main__":
  sys.exit(main())
