"""``python -m jaxequiv train``: train a character model as an LM or as a next-character classifier.

The two objectives train the same transformer: ``--objective lm`` minimises the
NLL of sentences, ``--objective classification`` the cross-entropy of (prefix,
next character) examples, either every prefix of the LM's sentences packed into
the same rows (``--mode paired``: the identical trajectory, bit for bit) or
examples drawn i.i.d. from all prefixes (``--mode iid``).

Examples::

    python -m jaxequiv train --out runs/lm                        # defaults: a few minutes on a laptop CPU
    python -m jaxequiv train --objective classification --out runs/cls
    python -m jaxequiv train --data synthetic --steps 3000 --out runs/syn
    python -m jaxequiv train --out runs/lm --resume               # continue after a kill
    python -m jaxequiv train --data tfds:tiny_shakespeare --layers 6 --width 384 --heads 6 \\
        --seq-len 256 --batch-size 64 --dtype bfloat16 --steps 20000 --out runs/big   # accelerator

The flags become a ``jaxequiv.lm.experiment.ExperimentConfig`` and the run is
``jaxequiv.lm.experiment.run`` (it writes the run directory: ``config.json``,
``metrics.jsonl``, ``checkpoints/<step>/``); this module only prints its summary.

Every flag is checked before any data is read (one line and exit status 2 if
bad), then the backend's determinism XLA flags are set before JAX starts (the
paired trajectory is the LM's bit for bit; ``--no-determinism-flags`` skips
them).
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import sys

from jaxequiv import cli
from jaxequiv.lm import train as tr

DEFAULT_OUT = "runs/{objective}-{mode}"


def add_arguments(parser: argparse.ArgumentParser) -> None:
  """Adds the ``train`` subcommand's flags (``--help`` lists them with defaults)."""
  for name in (None, "store"):  # remember which flags were given (--resume compares those)
    parser.register("action", name, _explicit(argparse._StoreAction))  # pylint: disable=protected-access
  d, m = tr.TrainConfig(), _default_model()
  g = parser.add_argument_group("objective and data")
  g.add_argument("--objective", choices=tr.OBJECTIVES, default=d.objective,
                 help="lm: sentence NLL; classification: next-character cross-entropy on prefix examples")
  g.add_argument("--mode", choices=tr.MODES, default=d.mode,
                 help="classification examples: paired (every prefix of the LM's sentences, packed; same"
                      " trajectory as the LM bit for bit) or iid (random prefixes, one row each)")
  g.add_argument("--data", default="builtin",
                 help="corpus: builtin (English prose shipped with the package), synthetic (the toy grammar),"
                      " tfds:NAME[/CONFIG][:SPLIT] (e.g. tfds:tiny_shakespeare, tfds:lm1b:train[:1%%]; reading"
                      " needs pip install 'jaxequiv[tfds]', preparing the data the first time needs TensorFlow:"
                      " pip install 'jaxequiv[tfds-prepare]') or a UTF-8 text file PATH; normalised to"
                      " sentences, over-long ones split at spaces")
  g.add_argument("--val-fraction", type=cli.finite_float(0.0, 1.0, hi_open=True), default=0.1,
                 help="share of distinct sentences held out, in [0, 1)")
  g.add_argument("--num-synthetic", type=cli.positive_int, default=20000, help="sentences sampled for --data synthetic")
  g.add_argument("--max-examples", type=cli.nonnegative_int, default=None,
                 help="tfds only: examples read (default: all, but 1000000 for lm1b's 30M; 0: all)")
  g.add_argument("--data-dir", default=None, help="tfds only: its data directory")

  g = parser.add_argument_group("model")
  g.add_argument("--seq-len", type=cli.int_range(2), default=m.seq_len,
                 help="context length T (longest sentence, >= 2)")
  g.add_argument("--layers", type=cli.positive_int, default=m.num_layers, help="transformer blocks")
  g.add_argument("--width", type=cli.positive_int, default=m.width, help="model width D")
  g.add_argument("--heads", type=cli.positive_int, default=m.num_heads, help="attention heads (must divide --width)")
  g.add_argument("--mlp-ratio", type=cli.positive_int, default=m.mlp_ratio, help="MLP hidden width / D")
  g.add_argument("--activation", choices=("relu", "tanh", "gelu"), default=m.activation, help="MLP activation")
  g.add_argument("--dtype", choices=("float32", "bfloat16"), default=m.dtype,
                 help="compute dtype; bfloat16 = mixed precision (params, optimizer and loss stay float32)")

  g = parser.add_argument_group("optimisation")
  g.add_argument("--steps", type=cli.positive_int, default=600, help="optimizer steps (the cosine schedule's length)")
  g.add_argument("--batch-size", type=cli.positive_int, default=d.batch_size,
                 help="rows of --seq-len tokens per step (packed: several sentences per row); the classifier"
                      " trains on as many predictions per step (paired: the same rows)")
  g.add_argument("--lr", type=cli.positive_float, default=d.learning_rate, help="peak learning rate (AdamW), > 0")
  g.add_argument("--warmup", type=cli.nonnegative_int, default=d.warmup_steps, help="linear warm-up steps")
  g.add_argument("--end-lr-fraction", type=cli.unit_interval, default=d.end_lr_fraction,
                 help="final lr / peak lr (cosine), in [0, 1]")
  g.add_argument("--weight-decay", type=cli.nonnegative_float, default=d.weight_decay,
                 help="AdamW weight decay (matrices only), >= 0")
  g.add_argument("--clip-norm", type=cli.finite_float(0.0, note=" (0: off)"), default=d.clip_norm,
                 help="global gradient-norm clip, > 0 (0: off)")
  g.add_argument("--b1", type=cli.finite_float(0.0, 1.0, hi_open=True), default=d.b1, help="Adam beta1, in [0, 1)")
  g.add_argument("--b2", type=cli.finite_float(0.0, 1.0, hi_open=True), default=d.b2, help="Adam beta2, in [0, 1)")
  g.add_argument("--seed", type=cli.seed_int, default=d.seed,
                 help=f"seeds init, data order and the train/val split; in [0, {cli.SEED_MAX}]")

  g = parser.add_argument_group("run")
  g.add_argument("--out", default=None, help=f"run directory (default {DEFAULT_OUT})")
  g.add_argument("--resume", action="store_true",
                 help="continue the run in --out from its latest checkpoint, with the settings saved in its"
                      " config.json; bitwise the same result as an uninterrupted run. A model/optimisation/data"
                      " flag passed with another value than the recorded one is refused, naming it. --steps"
                      " cannot grow on resume (it is the cosine schedule's length): train longer in a new --out")
  g.add_argument("--eval-every", type=cli.nonnegative_int, default=d.eval_every,
                 help="validate every N steps (0: only at the end)")
  g.add_argument("--checkpoint-every", type=cli.nonnegative_int, default=d.checkpoint_every,
                 help="checkpoint every N steps (0: only at the end)")
  g.add_argument("--log-every", type=cli.positive_int, default=d.log_every,
                 help="log the mean training loss every N steps")
  g.add_argument("--max-steps-this-run", type=cli.positive_int, default=None,
                 help="stop after N steps of this invocation without a final checkpoint (as if killed)")
  g.add_argument("--num-samples", type=cli.nonnegative_int, default=5,
                 help="sentences to sample from the trained model (0: none)")
  g.add_argument("--no-progress", action="store_true", help="no tqdm progress bar")
  g.add_argument("--data-parallel", action="store_true",
                 help="split batch rows over all local devices (jax.sharding mesh, params replicated);"
                      " --batch-size must be divisible by the device count")
  g.add_argument("--distributed", action="store_true",
                 help="multi-host: call jax.distributed.initialize() first (also env JAXEQUIV_DISTRIBUTED=1);"
                      " implies --data-parallel")
  cli.add_determinism_flag(g)


def _default_model():
  from jaxequiv.model import ModelConfig  # pylint: disable=import-outside-toplevel
  return ModelConfig(num_layers=2, width=128, num_heads=4, seq_len=64)


def config_from_args(args: argparse.Namespace):
  """The ``jaxequiv.lm.experiment.ExperimentConfig`` of parsed flags."""
  from jaxequiv.lm import experiment  # pylint: disable=import-outside-toplevel
  from jaxequiv.model import ModelConfig  # pylint: disable=import-outside-toplevel
  return experiment.ExperimentConfig(
      model=ModelConfig(num_layers=args.layers, width=args.width, num_heads=args.heads, seq_len=args.seq_len,
                        activation=args.activation, dtype=args.dtype, mlp_ratio=args.mlp_ratio),
      train=tr.TrainConfig(
          steps=args.steps, batch_size=args.batch_size, learning_rate=args.lr, warmup_steps=args.warmup,
          end_lr_fraction=args.end_lr_fraction, weight_decay=args.weight_decay, clip_norm=args.clip_norm or None,
          b1=args.b1, b2=args.b2, eval_every=args.eval_every, checkpoint_every=args.checkpoint_every,
          log_every=args.log_every, seed=args.seed, objective=args.objective, mode=args.mode),
      data=experiment.DataConfig(args.data, args.val_fraction, args.num_synthetic, args.max_examples, args.data_dir),
      out_dir=args.out or DEFAULT_OUT.format(objective=args.objective, mode=args.mode), resume=args.resume,
      max_steps_this_run=args.max_steps_this_run, num_samples=args.num_samples, progress=not args.no_progress,
      data_parallel=args.data_parallel, distributed=True if args.distributed else None)


def _fields(config) -> dict:
  """The recorded settings of an ``ExperimentConfig``, flattened: ``{"train.learning_rate": ..., ...}``."""
  import dataclasses  # pylint: disable=import-outside-toplevel
  from jaxequiv import rundir  # pylint: disable=import-outside-toplevel
  return rundir.flatten({"model": dataclasses.asdict(config.model), "train": dataclasses.asdict(config.train),
                         "data": config.data.to_dict()})


# The recorded field each model/optimisation/data flag sets (``--resume`` compares them).
FLAG_FIELDS = {
    "objective": "train.objective", "mode": "train.mode", "data": "data.spec", "val_fraction": "data.val_fraction",
    "num_synthetic": "data.num_synthetic", "max_examples": "data.max_examples", "data_dir": "data.data_dir",
    "seq_len": "model.seq_len", "layers": "model.num_layers", "width": "model.width", "heads": "model.num_heads",
    "mlp_ratio": "model.mlp_ratio", "activation": "model.activation", "dtype": "model.dtype",
    "steps": "train.steps", "batch_size": "train.batch_size", "lr": "train.learning_rate",
    "warmup": "train.warmup_steps", "end_lr_fraction": "train.end_lr_fraction",
    "weight_decay": "train.weight_decay", "clip_norm": "train.clip_norm", "b1": "train.b1", "b2": "train.b2",
    "seed": "train.seed", "eval_every": "train.eval_every", "checkpoint_every": "train.checkpoint_every",
    "log_every": "train.log_every"}


def _explicit(cls: type[argparse.Action]) -> type[argparse.Action]:
  """``cls`` that also adds its ``dest`` to ``args.explicit``: the flags given on the command line."""
  class Explicit(cls):
    def __call__(self, parser, namespace, values, option_string=None):
      super().__call__(parser, namespace, values, option_string)
      namespace.explicit = getattr(namespace, "explicit", frozenset()) | {self.dest}
  return Explicit


def check_resume(args: argparse.Namespace, config) -> None:
  """``--resume`` keeps the recorded settings: a flag given on the command line with another value is refused.

  Raises:
    cli.UsageError: one line naming the flag, its value and the recorded one.
  """
  from jaxequiv.lm import experiment  # pylint: disable=import-outside-toplevel
  recorded, asked = _fields(experiment.recorded(config)), _fields(config)
  for dest in sorted(set(getattr(args, "explicit", ())) & set(FLAG_FIELDS)):
    f = FLAG_FIELDS[dest]
    if asked.get(f) != recorded.get(f):
      raise cli.UsageError(f"argument --{dest.replace('_', '-')}: {getattr(args, dest)} differs from the run's {f}"
                           f" = {recorded.get(f)!r}; --resume continues {config.out_dir} with its recorded settings:"
                           " drop the flag or choose another --out")


def check_args(args: argparse.Namespace) -> None:
  """Cross-flag checks, before any data is read. Raises ``cli.UsageError`` naming the flag."""
  from jaxequiv.lm import corpus  # pylint: disable=import-outside-toplevel
  cli.check_heads(args.width, args.heads)
  if args.out is not None and os.path.exists(args.out) and not os.path.isdir(args.out):
    raise cli.UsageError(f"argument --out: {args.out!r} exists and is not a directory")
  if not args.resume:
    try:
      kind, _, _ = corpus.parse_spec(args.data)
    except ValueError as e:
      raise cli.UsageError(f"argument --data: {e}") from None
    if kind != "tfds" and (args.max_examples is not None or args.data_dir is not None):
      raise cli.UsageError("arguments --max-examples and --data-dir apply to --data tfds:NAME only,"
                           f" not {args.data!r}")


def run(args: argparse.Namespace) -> int:
  """Runs ``train``; prints the final validation NLL (nats and bits per character) and samples."""
  check_args(args)
  cli.set_determinism_flags(args)  # before anything (orbax included) starts JAX
  from jaxequiv.lm import experiment, runs  # pylint: disable=import-outside-toplevel
  from jaxequiv.training import NonFiniteLossError  # pylint: disable=import-outside-toplevel
  config = config_from_args(args)
  out = config.out_dir
  if not args.resume and runs.latest_step(out) is not None:
    raise cli.UsageError(f"{out} already holds checkpoints; pass --resume to continue it or choose another --out")
  if experiment.resuming(config):
    check_resume(args, config)
  try:
    summary = experiment.run(config)
  except NonFiniteLossError as e:  # the run failed, not the input: one line naming the step, exit status 1
    print(f"jaxequiv train: error: {cli.one_line(e)}", file=sys.stderr)
    return 1
  if summary["signal"] is not None:  # ended at a step boundary with a checkpoint: one line, 128 + the signal
    print(f"jaxequiv train: stopped by {summary['signal']} at step {summary['step']} of {summary['steps']};"
          f" resume with: python -m jaxequiv train --resume --out {shlex.quote(out)}", file=sys.stderr)
    return 128 + signal.Signals[summary["signal"]]
  if not summary["completed"]:
    print(f"stopped at step {summary['step']} of {summary['steps']} (resume with --resume --out {out})")
    return 0
  print(f"step {summary['step']}: {summary['predictions_seen']} predictions seen in {summary['wall_seconds']:.1f} s"
        " this run")
  for name, r in (("final", summary["final"]), ("best", summary["best"])):
    if r is not None:
      print(f"{name} validation at step {r['step']}: {r['val_nats_per_char']:.4f} nats/char"
            f" ({r['val_bits_per_char']:.4f} bits/char)")
  if summary["best"] is not None and summary["best"]["step"] != summary["step"]:
    print(f"  its checkpoint is kept: jaxequiv sample --checkpoint {shlex.quote(out)} --step {summary['best']['step']}")
  for s in summary["samples"]:
    print(f"  sample: {s}")
  print(f"run directory: {out}")
  return 0
