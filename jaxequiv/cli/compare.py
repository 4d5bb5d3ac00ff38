"""``python -m jaxequiv compare RUN_A RUN_B``: are two training runs the same, bit for bit?

Prints ``jaxequiv.compare.compare_runs``'s report: the checkpointed params and
optimizer state of one step compared as raw bits, the metrics records field by
field (wall-clock time excepted), the settings that differ, and the verdict with
the first differing leaf and metrics step. Exit status 0 when equal, 1 when
not, 2 for a path that is not a run directory (one line).

Example::

    python -m jaxequiv train --out runs/lm
    python -m jaxequiv train --objective classification --out runs/cls
    python -m jaxequiv compare runs/lm runs/cls        # EQUAL bit for bit: params, opt_state at step 600 ...
"""

from __future__ import annotations

import argparse

from jaxequiv import cli


def add_arguments(parser: argparse.ArgumentParser) -> None:
  parser.add_argument("run_a", metavar="RUN_A", help="a training run directory (jaxequiv train --out)")
  parser.add_argument("run_b", metavar="RUN_B", help="the run directory to compare it with")
  parser.add_argument("--step", type=cli.nonnegative_int, default=None,
                      help="checkpoint step to compare, in both runs (default: each run's newest good checkpoint)")


def run(args: argparse.Namespace) -> int:
  """Prints the report; returns 0 if the runs are equal bit for bit, 1 if not (bad paths raise, see ``cli.main``)."""
  from jaxequiv import compare  # pylint: disable=import-outside-toplevel
  comparison = compare.compare_runs(args.run_a, args.run_b, args.step)
  print("\n".join(comparison.lines()))
  return 0 if comparison.equal else 1
