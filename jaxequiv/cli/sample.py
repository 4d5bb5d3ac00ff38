"""``python -m jaxequiv sample``: sample sentences from a training run's checkpoint.

Reads the run layout written by ``jaxequiv.lm.train``: ``DIR/config.json`` (its
``"model"`` entry is a ``ModelConfig``) and orbax checkpoints
``DIR/checkpoints/<step>/state`` holding ``{"step", "params", "opt_state"}``.
Only the params are used.

Example::

    python -m jaxequiv sample --checkpoint runs/lm --num-samples 8 --temperature 0.8 --top-k 20 --prompt "The "
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

import jax

from jaxequiv import model
from jaxequiv.lm import sample as sampling

CONFIG_FILE = "config.json"
CHECKPOINT_DIR = "checkpoints"


def load_params(run_dir: str, step: int | None = None) -> tuple[Any, model.ModelConfig]:
  """``(params, model_config)`` from a run directory's latest (or given) checkpoint.

  Restores the saved tree as written (no optimizer structure needed) and keeps
  its ``"params"``.

  Raises:
    FileNotFoundError: naming the missing config file or checkpoint directory/step.
    ValueError: if the params do not fit the config.
  """
  import orbax.checkpoint as ocp  # pylint: disable=import-outside-toplevel
  path = os.path.join(run_dir, CONFIG_FILE)
  if not os.path.exists(path):
    raise FileNotFoundError(f"{path} not found: --checkpoint must be a training run directory (python -m jaxequiv train)")
  with open(path) as f:
    config = model.ModelConfig(**json.load(f)["model"])
  ckpt_dir = os.path.abspath(os.path.join(run_dir, CHECKPOINT_DIR))
  if not os.path.isdir(ckpt_dir):
    raise FileNotFoundError(f"no checkpoints directory {ckpt_dir}")
  with ocp.CheckpointManager(ckpt_dir) as mngr:
    steps = list(mngr.all_steps())
    step = mngr.latest_step() if step is None else step
    if step is None or step not in steps:
      raise FileNotFoundError(f"no checkpoint for step {step} in {ckpt_dir}; saved steps: {sorted(steps)}")
    out = mngr.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore()))
  params = out["state"]["params"]
  want = jax.eval_shape(lambda: model.init(jax.random.key(0), config))
  got_shapes = jax.tree.map(lambda x: tuple(x.shape), params)
  if jax.tree.map(lambda x: tuple(x.shape), want) != got_shapes:
    raise ValueError(f"params in {ckpt_dir}/{step} do not match the config {config} in {path}")
  return params, config


def add_arguments(parser: argparse.ArgumentParser) -> None:
  parser.add_argument("--checkpoint", required=True, metavar="DIR", help="training run directory")
  parser.add_argument("--step", type=int, default=None, help="checkpoint step (default: latest)")
  parser.add_argument("--num-samples", type=int, default=10, help="sentences to sample, in one batch")
  parser.add_argument("--temperature", type=float, default=1.0, help="divide logits by this; 0 = greedy")
  parser.add_argument("--top-k", type=int, default=None, help="sample among the k likeliest characters only")
  parser.add_argument("--prompt", default="", help="unfinished sentence to continue (no '.')")
  parser.add_argument("--max-len", type=int, default=None, help="most characters per sample (default: context T)")
  parser.add_argument("--seed", type=int, default=0, help="PRNG seed; same seed, same samples")
  parser.add_argument("--no-cache", action="store_true",
                      help="re-run the model on the whole row per character instead of the KV cache (slow)")
  parser.add_argument("--by-classification", action="store_true",
                      help="generate by asking the classifier for each prefix's next character"
                           " (gives exactly the --no-cache samples)")


def run(args: argparse.Namespace) -> int:
  """Prints one sample per line; timing goes to stderr. Returns 0, or 2 on bad input."""
  try:
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
  except (ValueError, FileNotFoundError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  seconds = time.perf_counter() - start
  for text in texts:
    print(text)
  chars = sum(len(t) for t in texts)
  print(f"# {len(texts)} samples, {chars} characters in {seconds:.2f}s incl. compilation ({how})", file=sys.stderr)
  return 0
