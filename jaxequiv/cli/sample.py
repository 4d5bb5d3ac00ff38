"""``python -m jaxequiv sample``: sample sentences from a training run's checkpoint.

Reads a run directory written by ``jaxequiv.lm.train`` (layout: ``jaxequiv.rundir``);
only the params of the newest good checkpoint (or ``--step``) are used.

Example::

    python -m jaxequiv sample --checkpoint runs/lm --num-samples 8 --temperature 0.8 --top-k 20 --prompt "The "
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from typing import TYPE_CHECKING, Any

from jaxequiv import cli, limits, rundir
from jaxequiv.alphabet import NUM_CLASSES

if TYPE_CHECKING:
  from jaxequiv import model


def load_params(run_dir: str, step: int | None = None) -> tuple[Any, model.ModelConfig]:
  """``(params, model_config)`` from a run directory's newest good (or given) checkpoint, on one device.

  ``jaxequiv.lm.runs.load_params``: checksums verified, damaged checkpoints
  skipped with a one-line notice, data-parallel checkpoints read onto one device.

  Raises:
    jaxequiv.rundir.RunDirError: (a ``ValueError``) one line naming the
      directory, if it holds no good checkpoint or the params do not fit its config.
  """
  from jaxequiv.lm import runs  # pylint: disable=import-outside-toplevel
  return runs.load_params(run_dir, step)


def add_arguments(parser: argparse.ArgumentParser) -> None:
  parser.add_argument("--checkpoint", required=True, metavar="DIR",
                      help="training run directory (jaxequiv train --out); required")
  parser.add_argument("--step", type=cli.nonnegative_int, default=None,
                      help="checkpoint step to sample from (default: the newest good checkpoint)")
  parser.add_argument("--num-samples", type=cli.positive_int, default=10, help="sentences to sample, in one batch")
  parser.add_argument("--temperature", type=cli.nonnegative_float, default=1.0,
                      help="divide the logits by this, >= 0; 0 = greedy")
  parser.add_argument("--top-k", type=int, default=None,
                      help=f"sample among the k likeliest characters only, k in [1, {NUM_CLASSES}]"
                           f" (default: all {NUM_CLASSES})")
  parser.add_argument("--prompt", default="",
                      help="unfinished sentence to continue: alphabet characters, no '.' (default: none)")
  parser.add_argument("--max-len", type=cli.positive_int, default=None,
                      help="most characters per sample, prompt included, in [1, T] (default: the run's context"
                           " length T)")
  parser.add_argument("--seed", type=cli.seed_int, default=0,
                      help=f"PRNG seed in [0, {cli.SEED_MAX}]; same seed, same samples")
  parser.add_argument("--no-cache", action="store_true",
                      help="re-run the model on the whole row per character instead of the KV cache (slow)")
  parser.add_argument("--by-classification", action="store_true",
                      help="generate by asking the classifier for each prefix's next character"
                           " (gives exactly the --no-cache samples)")
  cli.add_determinism_flag(parser)


def check_args(args: argparse.Namespace) -> None:
  """Checks that need no checkpoint, before any is loaded; raises ``cli.UsageError`` naming the flag.

  The prompt and ``--max-len`` are checked against the context length T that
  the run's ``config.json`` records.
  """
  if args.top_k is not None and not 1 <= args.top_k <= NUM_CLASSES:
    raise cli.UsageError(f"argument --top-k: top_k must be None or an int in [1, {NUM_CLASSES}], got {args.top_k}"
                         " (omit --top-k to sample from all classes)")
  path = os.path.join(args.checkpoint, rundir.CONFIG_FILE)
  if not os.path.isdir(args.checkpoint):
    raise cli.UsageError(f"argument --checkpoint: {path} not found:"
                         " --checkpoint must be a training run directory (python -m jaxequiv train)")
  recorded = rundir.read_config(args.checkpoint).get("model")
  seq_len = recorded.get("seq_len") if isinstance(recorded, dict) else None
  if not isinstance(seq_len, int):
    raise cli.UsageError(f"argument --checkpoint: {path} records no model.seq_len (is it a jaxequiv train run?)")
  if args.max_len is not None and args.max_len > seq_len:
    raise cli.UsageError(f"argument --max-len: must be in [1, {seq_len}] (the run's context length T),"
                         f" got {args.max_len}")
  check_memory(args, recorded)
  from jaxequiv.lm import sample as sampling  # pylint: disable=import-outside-toplevel
  try:
    sampling.encode_prompts(args.prompt, 1, args.max_len or seq_len)
  except ValueError as e:
    raise cli.UsageError(f"argument --prompt: {e}") from None


def check_memory(args: argparse.Namespace, recorded: dict) -> None:
  """Refuses a ``--num-samples`` whose KV cache and logits cannot fit here (``limits.estimate_bytes``)."""
  from jaxequiv.configs import ModelConfig  # pylint: disable=import-outside-toplevel  # no JAX
  defaults = dataclasses.asdict(ModelConfig())
  sizes = {k: recorded.get(k, defaults[k]) for k in ("seq_len", "width", "num_layers", "num_heads", "mlp_ratio")}
  if not all(isinstance(v, int) and v > 0 for v in sizes.values()):
    return  # a damaged config.json: loading the checkpoint names it
  estimate = limits.estimate_bytes(rows=args.num_samples, seq_len=sizes["seq_len"], width=sizes["width"],
                                   layers=sizes["num_layers"], heads=sizes["num_heads"], vocab=NUM_CLASSES,
                                   mlp_ratio=sizes["mlp_ratio"], training=False)
  limits.check_fits(estimate, {"activations": f"--num-samples {args.num_samples} x the run's context length"
                                              f" {sizes['seq_len']} (width {sizes['width']}, {sizes['num_layers']}"
                                              " layers)"})


def run(args: argparse.Namespace) -> int:
  """Prints one sample per line; timing goes to stderr. Returns 0 (bad input raises; ``cli.main`` prints it)."""
  check_args(args)
  cli.set_determinism_flags(args)
  import jax  # pylint: disable=import-outside-toplevel
  from jaxequiv import model  # pylint: disable=import-outside-toplevel,redefined-outer-name
  from jaxequiv.lm import sample as sampling  # pylint: disable=import-outside-toplevel
  params, config = load_params(args.checkpoint, args.step)
  key = jax.random.key(args.seed)
  kw = dict(temperature=args.temperature, top_k=args.top_k, prompt=args.prompt, max_len=args.max_len)
  start = time.perf_counter()
  if args.by_classification:
    texts = sampling.generate_by_classification(
        params, model.make_apply(config), key, args.num_samples, seq_len=config.seq_len, **kw)
    how = "by classification"
  else:
    texts = sampling.sample(params, config, key, args.num_samples, use_cache=not args.no_cache, **kw)
    how = "no cache" if args.no_cache else "KV cache"
  seconds = time.perf_counter() - start
  for text in texts:
    print(text)
  chars = sum(len(t) for t in texts)
  print(f"# {len(texts)} samples, {chars} characters in {seconds:.2f}s incl. compilation ({how})", file=sys.stderr)
  return 0
