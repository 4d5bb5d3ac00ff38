"""``jaxequiv verify``: flags and printing for ``jaxequiv.verify`` and the wings' exact identities."""

from __future__ import annotations

import argparse
import importlib

from jaxequiv import cli, wings

# Wings whose ``checks.run_checks() -> [(passed, line)]`` verify also runs (skipped if the wing is absent).
WING_CHECKS = wings.checks_modules()


def add_arguments(parser: argparse.ArgumentParser) -> None:
  from jaxequiv.verify import VerifyConfig  # pylint: disable=import-outside-toplevel
  from jaxequiv.model import ACTIVATIONS  # pylint: disable=import-outside-toplevel
  d = VerifyConfig()
  parser.add_argument("--layers", type=cli.positive_int, default=d.num_layers, help="transformer layers (>= 1)")
  parser.add_argument("--width", type=cli.positive_int, default=d.width, help="model width (>= 1)")
  parser.add_argument("--heads", type=cli.positive_int, default=d.num_heads, help="attention heads (divide --width)")
  parser.add_argument("--seq-len", type=cli.int_range(2), default=d.seq_len, help="context length T (>= 2)")
  parser.add_argument("--activation", default=d.activation, choices=sorted(ACTIVATIONS))
  parser.add_argument("--sentences", type=cli.positive_int, default=d.num_sentences,
                      help="sentences in the batch (>= 1)")
  parser.add_argument("--steps", type=cli.positive_int, default=d.steps,
                      help="AdamW steps in the trajectory check (>= 1)")
  parser.add_argument("--repeats", type=cli.positive_int, default=d.repeats, help="timed repeats per step time (>= 1)")
  parser.add_argument("--seed", type=cli.seed_int, default=d.seed, help=f"PRNG seed in [0, {cli.SEED_MAX}]")
  cli.add_determinism_flag(parser)


def run(args: argparse.Namespace) -> int:
  """Sets the determinism flags (unless told not to), runs the core checks, then each wing's; 0 if all pass."""
  cli.check_heads(args.width, args.heads)
  cli.set_determinism_flags(args)
  import jax  # pylint: disable=import-outside-toplevel
  from jaxequiv import determinism, verify  # pylint: disable=import-outside-toplevel
  determinism.warn_if_unset(jax.default_backend())  # once, before the bitwise checks, if a GPU runs without them
  cfg = verify.VerifyConfig(args.layers, args.width, args.heads, args.seq_len, args.activation, args.sentences,
                            args.steps, args.repeats, args.seed)
  ok = verify.run_checks(cfg)
  for name in WING_CHECKS:
    try:
      module = importlib.import_module(name)
    except ModuleNotFoundError as e:
      if not name.startswith(e.name or "?"):
        raise
      continue
    results = module.run_checks()
    for _, line in results:
      print(line)
    passed = sum(bool(r) for r, _ in results)
    print(f"{name.rsplit('.', 2)[-2]}: {passed} of {len(results)} checks passed" + ("" if passed == len(results) else ": FAIL"))
    ok = ok and passed == len(results)
  return 0 if ok else 1
