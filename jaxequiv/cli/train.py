"""``python -m jaxequiv train``: train a character model as an LM or as a next-character classifier.

The two objectives train the same transformer: ``--objective lm`` minimises the
NLL of sentences, ``--objective classification`` the cross-entropy of (prefix,
next character) examples, either every prefix of the LM's sentences packed into
the same rows (``--mode paired``: the identical trajectory, bit for bit) or
examples drawn i.i.d. from all prefixes (``--mode iid``: it prints its cost first).

Examples::

    python -m jaxequiv train --out runs/lm                        # defaults: a few minutes on a laptop CPU
    python -m jaxequiv train --objective classification --out runs/cls
    python -m jaxequiv train --data synthetic --steps 3000 --out runs/syn
    python -m jaxequiv train --out runs/lm --resume               # continue after a kill
    python -m jaxequiv train --data tfds:tiny_shakespeare --layers 6 --width 384 --heads 6 \\
        --seq-len 256 --batch-size 64 --dtype bfloat16 --steps 20000 --out runs/big   # accelerator

Flags -> ``jaxequiv.lm.experiment.ExperimentConfig`` (each setting flag's
``dest`` is the recorded field it sets, e.g. ``train.learning_rate``) ->
``jaxequiv.lm.experiment.run`` -> printed summary. Every flag is checked before
any data is read (one line, exit status 2), then the backend's determinism XLA
flags are set before JAX starts (``--no-determinism-flags`` skips them).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shlex
import signal
import sys

from jaxequiv import cli, limits
from jaxequiv.alphabet import NUM_CLASSES
from jaxequiv.configs import ACTIVATIONS, DTYPES, ModelConfig
from jaxequiv.lm.configs import MODES, OBJECTIVES, DataConfig, TrainConfig

DEFAULT_OUT = "runs/{objective}-{mode}"


class _Given(argparse._StoreAction):  # pylint: disable=protected-access
  """Stores the value and records the flag as given: ``args.given[dest] = "--flag"`` (``--resume`` checks those)."""

  def __call__(self, parser, namespace, values, option_string=None):
    super().__call__(parser, namespace, values, option_string)
    namespace.given = {**getattr(namespace, "given", {}), self.dest: option_string}


def add_arguments(parser: argparse.ArgumentParser) -> None:
  """Adds the ``train`` subcommand's flags (``--help`` lists them with defaults)."""
  defaults = {f"{group}.{k}": v for group, c in (("model", ModelConfig(width=128)), ("train", TrainConfig(steps=600)),
                                                 ("data", DataConfig())) for k, v in dataclasses.asdict(c).items()}

  def flag(g, name: str, field: str, **kw):  # sets the recorded ``field``, with its default
    metavar = None if "choices" in kw else name[2:].upper().replace("-", "_")
    g.add_argument(name, dest=field, default=defaults[field], action=_Given, metavar=metavar, **kw)

  g = parser.add_argument_group("objective and data")
  flag(g, "--objective", "train.objective", choices=OBJECTIVES,
       help="lm: sentence NLL; classification: next-character cross-entropy on prefix examples")
  flag(g, "--mode", "train.mode", choices=MODES,
       help="classification examples: paired (every prefix of the LM's sentences, packed; same trajectory as the LM"
            " bit for bit) or iid (random prefixes, one context chain each: many more rows per step; the run prints"
            " its measured time per step against the LM's and its estimated duration first)")
  flag(g, "--data", "data.spec",
       help="corpus: builtin (English prose shipped with the package), synthetic (the toy grammar),"
            " tfds:NAME[/CONFIG][:SPLIT] (e.g. tfds:tiny_shakespeare, tfds:lm1b:train[:1%%]; reading"
            " needs pip install 'jaxequiv[tfds]', preparing the data the first time needs TensorFlow:"
            " pip install 'jaxequiv[tfds-prepare]') or a UTF-8 text file PATH; normalised to"
            " sentences, over-long ones split at spaces")
  flag(g, "--val-fraction", "data.val_fraction", type=cli.finite_float(0.0, 1.0, hi_open=True),
       help="share of distinct sentences held out, in [0, 1)")
  flag(g, "--num-synthetic", "data.num_synthetic", type=cli.positive_int, help="sentences sampled for --data synthetic")
  flag(g, "--max-examples", "data.max_examples", type=cli.nonnegative_int,
       help="tfds only: examples read (default: all, but 1000000 for lm1b's 30M; 0: all)")
  flag(g, "--data-dir", "data.data_dir", help="tfds only: its data directory")

  g = parser.add_argument_group("model")
  flag(g, "--seq-len", "model.seq_len", type=cli.int_range(2), help="context length T (longest sentence, >= 2)")
  flag(g, "--layers", "model.num_layers", type=cli.positive_int, help="transformer blocks")
  flag(g, "--width", "model.width", type=cli.positive_int, help="model width D")
  flag(g, "--heads", "model.num_heads", type=cli.positive_int, help="attention heads (must divide --width)")
  flag(g, "--mlp-ratio", "model.mlp_ratio", type=cli.positive_int, help="MLP hidden width / D")
  flag(g, "--activation", "model.activation", choices=ACTIVATIONS, help="MLP activation")
  flag(g, "--dtype", "model.dtype", choices=DTYPES,
       help="compute dtype; bfloat16 = mixed precision (params, optimizer and loss stay float32)")

  g = parser.add_argument_group("optimisation")
  flag(g, "--steps", "train.steps", type=cli.positive_int,
       help="optimizer steps to train. With --resume, a value larger than the recorded one extends the run: the"
            " learning-rate schedule keeps its recorded length and holds its final value after it (bitwise the"
            " same as one run with --schedule-steps at that length); a value below the step reached is refused")
  flag(g, "--schedule-steps", "train.schedule_steps", type=cli.positive_int,
       help="length of the learning-rate schedule (warm-up + cosine; default: --steps); after it the learning rate"
            " stays at its final value. --steps 30 --schedule-steps 20 trains what 20 steps extended to 30 by"
            " --resume --steps 30 train, bit for bit")
  flag(g, "--batch-size", "train.batch_size", type=cli.positive_int,
       help="rows of --seq-len tokens per step (packed: several sentences per row); the classifier"
            " trains on as many predictions per step (paired: the same rows)")
  flag(g, "--lr", "train.learning_rate", type=cli.positive_float, help="peak learning rate (AdamW), > 0")
  flag(g, "--warmup", "train.warmup_steps", type=cli.nonnegative_int, help="linear warm-up steps")
  flag(g, "--end-lr-fraction", "train.end_lr_fraction", type=cli.unit_interval,
       help="final lr / peak lr (cosine), in [0, 1]")
  flag(g, "--weight-decay", "train.weight_decay", type=cli.nonnegative_float,
       help="AdamW weight decay (matrices only), >= 0")
  flag(g, "--clip-norm", "train.clip_norm", type=cli.finite_float(0.0, note=" (0: off)"),
       help="global gradient-norm clip, > 0 (0: off)")
  flag(g, "--b1", "train.b1", type=cli.finite_float(0.0, 1.0, hi_open=True), help="Adam beta1, in [0, 1)")
  flag(g, "--b2", "train.b2", type=cli.finite_float(0.0, 1.0, hi_open=True), help="Adam beta2, in [0, 1)")
  flag(g, "--seed", "train.seed", type=cli.seed_int,
       help=f"seeds init, data order and the train/val split; in [0, {cli.SEED_MAX}]")

  g = parser.add_argument_group("run")
  g.add_argument("--out", default=None, help=f"run directory (default {DEFAULT_OUT})")
  g.add_argument("--resume", action="store_true",
                 help="continue the run in --out from its latest checkpoint, with the settings saved in its"
                      " config.json; bitwise the same result as an uninterrupted run. A model/optimisation/data"
                      " flag passed with another value than the recorded one is refused, naming it, except --steps:"
                      " a larger --steps extends the run (said in one line; see --steps)")
  flag(g, "--eval-every", "train.eval_every", type=cli.nonnegative_int,
       help="validate (and print the validation NLL) every N steps (0: only at the end); the best validation's"
            " checkpoint is kept")
  flag(g, "--checkpoint-every", "train.checkpoint_every", type=cli.nonnegative_int,
       help="checkpoint every N steps (0: only at the end)")
  flag(g, "--log-every", "train.log_every", type=cli.positive_int, help="log the mean training loss every N steps")
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


def out_dir(args: argparse.Namespace) -> str:
  """``--out``, or its default for the objective and mode."""
  return args.out or DEFAULT_OUT.format(objective=vars(args)["train.objective"], mode=vars(args)["train.mode"])


def config_from_args(args: argparse.Namespace):
  """The ``jaxequiv.lm.experiment.ExperimentConfig`` of parsed flags."""
  from jaxequiv.lm import experiment  # pylint: disable=import-outside-toplevel
  fields = {k: v for k, v in vars(args).items() if "." in k}
  fields["train.clip_norm"] = fields["train.clip_norm"] or None  # 0: off
  given = "train.steps" in getattr(args, "given", {})
  return experiment.from_fields(fields, out_dir=out_dir(args), resume=args.resume,
                                resume_steps=fields["train.steps"] if args.resume and given else None,
                                max_steps_this_run=args.max_steps_this_run, num_samples=args.num_samples,
                                progress=not args.no_progress,
                                data_parallel=args.data_parallel, distributed=True if args.distributed else None)


def check_args(args: argparse.Namespace) -> None:
  """Cross-flag checks, before any data is read. Raises ``cli.UsageError`` naming the flag."""
  from jaxequiv.lm import corpus  # pylint: disable=import-outside-toplevel
  f = vars(args)
  cli.check_heads(f["model.width"], f["model.num_heads"])
  if args.out is not None and os.path.exists(args.out) and not os.path.isdir(args.out):
    raise cli.UsageError(f"argument --out: {args.out!r} exists and is not a directory")
  if not args.resume:
    try:
      kind, _, _ = corpus.parse_spec(f["data.spec"])
    except ValueError as e:
      raise cli.UsageError(f"argument --data: {e}") from None
    if kind != "tfds" and (f["data.max_examples"] is not None or f["data.data_dir"] is not None):
      raise cli.UsageError("arguments --max-examples and --data-dir apply to --data tfds:NAME only,"
                           f" not {f['data.spec']!r}")
    if kind == "file":
      try:
        limits.check_file(f["data.spec"], corpus.MAX_TEXT_FILE_BYTES)
      except limits.TooLargeError as e:
        raise cli.UsageError(f"argument --data: {e}") from None
  check_memory(args)


def check_memory(args: argparse.Namespace) -> None:
  """Refuses sizes whose step cannot fit in this machine's memory (``limits.estimate_bytes``), naming the flags.

  An iid classification step has ``--batch-size x --seq-len`` rows (one per example, padded).
  """
  f = vars(args)
  batch, seq_len, width, layers = (f[k] for k in ("train.batch_size", "model.seq_len", "model.width",
                                                   "model.num_layers"))
  iid = f["train.objective"] == "classification" and f["train.mode"] == "iid"
  rows = batch * seq_len if iid else batch
  estimate = limits.estimate_bytes(rows=rows, seq_len=seq_len, width=width, layers=layers,
                                   heads=f["model.num_heads"], vocab=NUM_CLASSES, mlp_ratio=f["model.mlp_ratio"])
  limits.check_fits(estimate, {
      "activations": f"--batch-size {batch} x --seq-len {seq_len}" + (f" (--mode iid: {rows} rows)" if iid else "")
                     + f" at --width {width}, --layers {layers}",
      "parameters": f"--width {width} x --layers {layers} (with --mlp-ratio {f['model.mlp_ratio']})"})


def state_note(args: argparse.Namespace) -> str:
  """For ``cli.main``'s one line on a full disk or a signal outside the loop: the last good checkpoint, the resume."""
  from jaxequiv import checkpoint  # pylint: disable=import-outside-toplevel
  out = out_dir(args)
  step = checkpoint.latest_step(out, log=None) if os.path.isdir(out) else None
  if step is None:
    return f"no good checkpoint in {out}"
  return f"the last good checkpoint is step {step} in {out}; resume with: python -m jaxequiv train --resume --out" \
         f" {shlex.quote(out)}"


def run(args: argparse.Namespace) -> int:
  """Runs ``train``; prints the final and best validation NLL (nats and bits per character) and samples."""
  check_args(args)
  cli.set_determinism_flags(args)  # before anything (orbax included) starts JAX
  from jaxequiv.lm import experiment  # pylint: disable=import-outside-toplevel
  from jaxequiv.training import NonFiniteLossError  # pylint: disable=import-outside-toplevel
  config = config_from_args(args)
  out = config.out_dir
  experiment.check_out_dir(config, {"resume": "argument --resume",
                                    **{k: f"argument {v}" for k, v in getattr(args, "given", {}).items()}})
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
