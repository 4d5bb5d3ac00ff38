"""``jaxequiv verify``: flags and printing for ``jaxequiv.verify`` and the wings' exact identities.

``jaxequiv verify --model FILE.py:FACTORY`` checks your own model instead
(``jaxequiv.check_model``): ``FACTORY()`` returns ``(apply_fn, params)``, or a
dict with ``apply_fn``, ``params`` and optionally ``seq_len``.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import pathlib
from typing import Any

from jaxequiv import cli, limits, wings
from jaxequiv.alphabet import NUM_CLASSES

# Wings whose ``checks.run_checks() -> [(passed, line)]`` verify also runs (skipped if the wing is absent).
WING_CHECKS = wings.checks_modules()
MAX_MODEL_FILE_BYTES = 16 * 2**20  # a --model source file


def add_arguments(parser: argparse.ArgumentParser) -> None:
  from jaxequiv.configs import ACTIVATIONS, VerifyConfig  # pylint: disable=import-outside-toplevel  # no JAX
  d = VerifyConfig()
  parser.add_argument("--layers", type=cli.positive_int, default=d.num_layers, help="transformer layers (>= 1)")
  parser.add_argument("--width", type=cli.positive_int, default=d.width, help="model width (>= 1)")
  parser.add_argument("--heads", type=cli.positive_int, default=d.num_heads, help="attention heads (divide --width)")
  parser.add_argument("--seq-len", type=cli.int_range(2), default=d.seq_len, help="context length T (>= 2)")
  parser.add_argument("--activation", default=d.activation, choices=sorted(ACTIVATIONS),
                      help="MLP activation of the transformer blocks")
  parser.add_argument("--sentences", type=cli.positive_int, default=d.num_sentences,
                      help="sentences in the batch (>= 1)")
  parser.add_argument("--steps", type=cli.positive_int, default=d.steps,
                      help="AdamW steps in the trajectory check (>= 1)")
  parser.add_argument("--repeats", type=cli.positive_int, default=d.repeats, help="timed repeats per step time (>= 1)")
  parser.add_argument("--seed", type=cli.seed_int, default=d.seed, help=f"PRNG seed in [0, {cli.SEED_MAX}]")
  parser.add_argument("--model", metavar="FILE.py:FACTORY",
                      help="check your own model instead (jaxequiv.check_model): FACTORY() returns (apply_fn, params),"
                           " or a dict with apply_fn, params and optionally seq_len (else --seq-len); uses --seq-len,"
                           " --sentences and --seed")
  parser.add_argument("--packed", action="store_true",
                      help="with --model: you train on packed=True batches, so segment safety must pass")
  cli.add_determinism_flag(parser)


def model_file(spec: str) -> tuple[str, str]:
  """``FILE.py:FACTORY`` -> ``(FILE.py, FACTORY)`` once FILE.py is a regular file within its limit (not read yet)."""
  path, sep, name = spec.rpartition(":")
  if not sep or not path or not name.isidentifier():
    raise cli.UsageError(f"argument --model: expected FILE.py:FACTORY (e.g. my_model.py:make), got {spec!r}")
  if not os.path.lexists(path):
    raise cli.UsageError(f"argument --model: no file {path!r}")
  try:
    limits.check_file(path, MAX_MODEL_FILE_BYTES)
  except limits.TooLargeError as e:
    raise cli.UsageError(f"argument --model: {e}") from None
  return path, name


def load_model(spec: str) -> tuple[Any, Any, int | None]:
  """``FILE.py:FACTORY`` -> ``(apply_fn, params, seq_len or None)``; a one-line ``UsageError`` names what is wrong."""
  path, name = model_file(spec)
  module_spec = importlib.util.spec_from_file_location(f"_jaxequiv_model_{pathlib.Path(path).stem}", path)
  if module_spec is None or module_spec.loader is None:
    raise cli.UsageError(f"argument --model: {path!r} is not a Python file")
  module = importlib.util.module_from_spec(module_spec)
  try:
    module_spec.loader.exec_module(module)
  except Exception as e:  # pylint: disable=broad-except  # the user's file: one line, not a traceback
    raise cli.UsageError(f"argument --model: importing {path} failed: {type(e).__name__}: {cli.one_line(e)}") from e
  factory = getattr(module, name, None)
  if not callable(factory):
    what = "nothing" if factory is None else f"a {type(factory).__name__}"
    raise cli.UsageError(f"argument --model: {path} defines no function {name!r} ({name} is {what})")
  try:
    made = factory()
  except Exception as e:  # pylint: disable=broad-except
    raise cli.UsageError(f"argument --model: {name}() raised {type(e).__name__}: {cli.one_line(e)}") from e
  want = f"{name}() must return (apply_fn, params) or a dict with apply_fn, params and optionally seq_len"
  if isinstance(made, dict):
    wrong = sorted(set(made) - {"apply_fn", "params", "seq_len"}) or sorted({"apply_fn", "params"} - set(made))
    if wrong:
      raise cli.UsageError(f"argument --model: {want}; its dict has keys {sorted(made)}")
    made = (made["apply_fn"], made["params"], made.get("seq_len"))
  elif isinstance(made, tuple) and len(made) == 2:
    made = (*made, None)
  else:
    raise cli.UsageError(f"argument --model: {want}; got {type(made).__name__}")
  if not callable(made[0]):
    raise cli.UsageError(f"argument --model: {want}; its apply_fn is a {type(made[0]).__name__}, not a function")
  if made[2] is not None and (not isinstance(made[2], int) or made[2] < 3):
    raise cli.UsageError(f"argument --model: {name}()'s seq_len must be an integer >= 3, got {made[2]!r}")
  return made


def run_model(args: argparse.Namespace) -> int:
  """``--model``: one line per check of ``jaxequiv.check_model``, then its notes; 0 if every required check passes."""
  apply_fn, params, seq_len = load_model(args.model)
  import jax  # pylint: disable=import-outside-toplevel
  from jaxequiv import determinism, model_check  # pylint: disable=import-outside-toplevel
  determinism.warn_if_unset(jax.default_backend())
  seq_len = seq_len or args.seq_len
  sentences = check_model_memory(apply_fn, params, seq_len, args)
  print(f"jaxequiv verify --model {args.model}: backend {jax.default_backend()}, jax {jax.__version__}, T={seq_len}")
  report = model_check.check_model(apply_fn, params, seq_len=seq_len, packed=args.packed, seed=args.seed,
                                   sentences=sentences)
  for line in [c.line for c in report.checks] + [f"note: {n}" for n in report.notes]:
    print(line)
  print(report.summary)
  return 0 if report.ok else 1


def check_model_memory(apply_fn: Any, params: Any, seq_len: int, args: argparse.Namespace) -> list[str]:
  """Refuses ``--model`` sizes whose largest check cannot fit here; returns the check's sentences.

  The largest step of ``check_model`` is ``value_and_grad`` over the unpacked
  classifier batch: one row of T tokens per predicted character (C rows for
  sentences of C characters in all). Checked in two stages, before anything of
  that size is allocated: its logits and their gradient (``2 * 4 * C * T * 64``
  bytes, from the flags alone), then XLA's own memory analysis of that step
  for this model, compiled but not run (arguments, outputs and temporaries).
  Both are lower bounds of what the whole check needs.
  """
  import jax  # pylint: disable=import-outside-toplevel
  from jaxequiv import model_check  # pylint: disable=import-outside-toplevel
  flags = f"--sentences {args.sentences} x --seq-len {seq_len}"
  # C >= one character per sentence: the LM batch of N rows alone bounds N before the sentences are made.
  limits.check_fits({"activations": 2 * limits.BYTES_PER_VALUE * args.sentences * seq_len * NUM_CLASSES},
                    {"activations": f"{flags} (the logits of the LM batch and their gradient)"})
  sentences = model_check.default_sentences(args.sentences, seq_len, args.seed)
  rows = sum(map(len, sentences))
  flags = f"{flags} ({rows:,} rows of the unpacked classifier batch)"
  limits.check_fits({"activations": 2 * limits.BYTES_PER_VALUE * rows * seq_len * NUM_CLASSES},
                    {"activations": f"{flags}, its logits and their gradient"})
  step = jax.jit(jax.value_and_grad(lambda p, x: jax.nn.log_softmax(apply_fn(p, x)).sum()))
  try:
    analysis = step.lower(params, jax.ShapeDtypeStruct((rows, seq_len), "int32")).compile().memory_analysis()
  except Exception:  # pylint: disable=broad-except  # the user's model: check_model reports what is wrong with it
    analysis = None
  if analysis is not None:
    limits.check_fits({"parameters": analysis.argument_size_in_bytes + analysis.output_size_in_bytes,
                       "activations": analysis.temp_size_in_bytes},
                      {"activations": f"{flags}, XLA's memory analysis of its value_and_grad",
                       "parameters": "the model's parameters and their gradient"})
  return sentences


def check_memory(args: argparse.Namespace) -> None:
  """Refuses sizes whose training step cannot fit here (``limits.estimate_bytes``), naming the flags."""
  estimate = limits.estimate_bytes(rows=args.sentences, seq_len=args.seq_len, width=args.width, layers=args.layers,
                                   heads=args.heads, vocab=NUM_CLASSES)
  limits.check_fits(estimate, {
      "activations": f"--sentences {args.sentences} x --seq-len {args.seq_len} at --width {args.width},"
                     f" --layers {args.layers}",
      "parameters": f"--width {args.width} x --layers {args.layers}"})


def run(args: argparse.Namespace) -> int:
  """Sets the determinism flags (unless told not to), runs the core checks, then each wing's; 0 if all pass."""
  cli.check_heads(args.width, args.heads)
  if args.model:
    model_file(args.model)  # before JAX starts; the model is imported after the determinism flags are set
  else:
    check_memory(args)
  cli.set_determinism_flags(args)
  if args.model:
    return run_model(args)
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
