"""``python -m jaxequiv labels``: image classifiers whose labels are strings.

Trains a one-hot head (K-way softmax) and a string head (character decoder,
``jaxequiv.lm_nll`` of the label sentence) on the same images, then reports for
both: accuracy, NLL per image, ECE (15 bins); for the string head also rank
classification, leakage, and trie-constrained greedy and beam decoding.
``--zero-shot`` (shapes) holds out colour-shape combinations from training and
measures how the string head scores and names them; the one-hot head cannot.

Examples:
  python -m jaxequiv labels --data shapes --steps 600 --zero-shot --out runs/labels
  python -m jaxequiv labels --data digits            # scikit-learn's 8x8 digits, "zero." .. "nine."
  python -m jaxequiv labels --data tfds:cifar100 --download --num-train 10000 --num-test 2000
  python -m jaxequiv labels --data tfds:imagenette/160px-v2 --image-size 64
  python -m jaxequiv labels --data tfds:imagenet2012:train[:5%] --class-names LOC_synset_mapping.txt

TFDS data is read with tensorflow-datasets alone (``pip install 'jaxequiv[tfds]'``);
preparing it the first time (``--download``) needs TensorFlow as well
(``pip install 'jaxequiv[tfds-prepare]'``).
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from jaxequiv import cli, limits
from jaxequiv.alphabet import NUM_CLASSES

if TYPE_CHECKING:
  from jaxequiv.labels.experiment import ExperimentConfig

MAX_CLASS_NAMES_BYTES = 64 * 2**20  # imagenet2012's 1000 names take 31 KiB
DATA_HELP = ("shapes | digits | tfds:NAME[/CONFIG][:TRAIN_SPLIT[,TEST_SPLIT]] with NAME one of cifar10, cifar100,"
             " imagenette, imagenet2012 (e.g. tfds:imagenette/160px-v2, tfds:cifar10:train[:1000])")


def add_arguments(parser: argparse.ArgumentParser) -> None:
  """Flags of ``python -m jaxequiv labels``."""
  parser.add_argument("--data", default="shapes", help=DATA_HELP.replace("%", "%%") + " (default: %(default)s)")
  parser.add_argument("--steps", type=cli.positive_int, default=600,
                      help="training steps per head, >= 1 (default: %(default)s)")
  parser.add_argument("--batch-size", type=cli.positive_int, default=64,
                      help="images per training step, >= 1 (default: %(default)s)")
  parser.add_argument("--seed", type=cli.seed_int, default=0,
                      help=f"seed of the data, the parameters and the batch order, in [0, {cli.SEED_MAX}]"
                           " (default: %(default)s)")
  parser.add_argument("--lr", type=cli.positive_float, default=3e-3,
                      help="Adam learning rate (constant), > 0 (default: %(default)s)")
  parser.add_argument("--zero-shot", action="store_true",
                      help="shapes only: hold out colour-shape combinations from training and measure them"
                           " (default: off)")
  parser.add_argument("--beam-size", type=cli.positive_int, default=4,
                      help="beams of the trie-constrained beam search, >= 1 (default: %(default)s)")
  parser.add_argument("--token-dropout", type=cli.finite_float(0.0, 1.0, hi_open=True), default=0.0,
                      help="string head: probability of replacing an input character by PAD while training,"
                           " in [0, 1) (default: %(default)s)")
  parser.add_argument("--num-train", type=cli.positive_int, default=None,
                      help="training images, >= 1 (default: the loader's own number)")
  parser.add_argument("--num-test", type=cli.positive_int, default=None,
                      help="test images, >= 1 (default: the loader's own number)")
  parser.add_argument("--layers", type=cli.positive_int, default=1,
                      help="string decoder layers, >= 1 (default: %(default)s)")
  parser.add_argument("--width", type=cli.positive_int, default=64,
                      help="image embedding and decoder width (features), >= 1 (default: %(default)s)")
  parser.add_argument("--heads", type=cli.positive_int, default=4,
                      help="string decoder attention heads, must divide --width (default: %(default)s)")
  parser.add_argument("--channels", type=cli.int_list, default=(16, 32, 64),
                      help="CNN channels per stage, comma-separated (default: 16,32,64)")
  parser.add_argument("--encoder", default="cnn", choices=("cnn", "vit"),
                      help="image encoder: CNN or patch ViT (default: %(default)s)")
  parser.add_argument("--patch", type=cli.positive_int, default=4,
                      help="ViT patch side in pixels, must divide the image side (default: %(default)s)")
  parser.add_argument("--image-size", type=cli.positive_int, default=None,
                      help="image side in pixels: shapes (>= 8; default 16) / tfds resize (default 32 for"
                           " imagenette, imagenet2012; else the data set's own)")
  parser.add_argument("--class-names", default=None, metavar="FILE",
                      help="one class name per line, in label order, replacing the data set's own (e.g. words for"
                           " imagenet2012's WordNet ids: LOC_synset_mapping.txt lines 'n01440764 tench, Tinca"
                           " tinca' give 'tench.'; default: the data set's names)")
  parser.add_argument("--data-dir", default=None, help="tfds data_dir (default: tfds's own)")
  parser.add_argument("--download", action="store_true",
                      help="let tfds download and prepare the data (preparing needs TensorFlow:"
                           " pip install 'jaxequiv[tfds-prepare]'; default: off)")
  parser.add_argument("--out", default=None,
                      help="run directory to write: config.json, both heads' checkpoint, metrics.json, metrics.md"
                           " (default: write nothing)")
  cli.add_determinism_flag(parser)


def read_class_names(path: str) -> list[str]:
  """Class names from a text file: one per line, blank lines and ``#`` comments skipped.

  The file must be a regular file of at most ``MAX_CLASS_NAMES_BYTES`` (not a FIFO or a device).
  """
  try:
    lines = limits.read_limited(path, MAX_CLASS_NAMES_BYTES).decode("utf-8").splitlines()
  except UnicodeDecodeError as e:
    raise cli.UsageError(f"argument --class-names: {path!r} is not UTF-8 text (offset {e.start})") from None
  except limits.TooLargeError as e:
    raise cli.UsageError(f"argument --class-names: {e}") from None
  except OSError as e:
    raise cli.UsageError(f"argument --class-names: cannot read {path!r} ({e.strerror or e})") from None
  names = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
  if not names:
    raise cli.UsageError(f"argument --class-names: {path!r} holds no class names (one per line)")
  return names


def check_args(args: argparse.Namespace) -> None:
  """Cross-flag checks, before any data is read. Raises ``cli.UsageError`` naming the flag."""
  cli.check_heads(args.width, args.heads)
  if args.zero_shot and args.data != "shapes":
    raise cli.UsageError(f"argument --zero-shot: needs --data shapes (compositional labels), not {args.data!r}")
  if args.data == "shapes" and args.image_size is not None and args.image_size < 8:
    raise cli.UsageError(f"argument --image-size: must be >= 8 for --data shapes, got {args.image_size}")
  if args.data == "digits" and args.image_size is not None:
    raise cli.UsageError("argument --image-size: digits are 8x8; the flag applies to shapes and tfds:*")
  side = image_side(args)
  if args.encoder == "vit":
    if side % args.patch:
      raise cli.UsageError(f"argument --patch: must divide the image side {side}, got {args.patch}")
  if args.data.startswith("tfds:"):
    from jaxequiv.labels import tfds_images  # pylint: disable=import-outside-toplevel  # imports JAX: tfds only
    try:
      tfds_images.parse_tfds_spec(args.data[len("tfds:"):])
    except ValueError as e:
      raise cli.UsageError(f"argument --data: {e}") from None
  elif args.data not in ("shapes", "digits"):
    raise cli.UsageError(f"argument --data: unknown image data {args.data!r}; use {DATA_HELP}")
  elif args.data_dir is not None or args.download:
    raise cli.UsageError(f"arguments --data-dir and --download apply to --data tfds:* only, not {args.data!r}")
  check_memory(args)


def image_side(args: argparse.Namespace) -> int:
  """The image side in pixels: ``--image-size``, else the data's own (shapes 16, digits 8, tfds resized to 32)."""
  return args.image_size or {"shapes": 16, "digits": 8}.get(args.data, 32)


def check_memory(args: argparse.Namespace) -> None:
  """Refuses sizes that cannot fit here (``limits.estimate_bytes``): the images held (float32), one step of the
  string decoder on ``--batch-size`` images, its labels counted at the shortest decoder length (8).

  The loader's own image count is unknown before loading: unless given, the
  training images count as one batch and the test images as none.
  """
  side = image_side(args)
  pixels = side * side * (1 if args.data == "digits" else 3)
  images = (args.num_train or args.batch_size) + (args.num_test or 0)
  estimate = limits.estimate_bytes(rows=args.batch_size, seq_len=8, width=args.width, layers=args.layers,
                                   heads=args.heads, vocab=NUM_CLASSES, row_values=pixels, data_values=images * pixels)
  limits.check_fits(estimate, {
      "data": f"--num-train {args.num_train or 'unset'} + --num-test {args.num_test or 'unset'} images of"
              f" {side}x{side} pixels (--image-size)",
      "activations": f"--batch-size {args.batch_size} x --width {args.width} x --layers {args.layers}"
                     f" (images of {side}x{side} pixels)",
      "parameters": f"--width {args.width} x --layers {args.layers}"})


def experiment_config(args: argparse.Namespace) -> "ExperimentConfig":
  """The flags as a ``jaxequiv.labels.experiment.ExperimentConfig`` (reads the ``--class-names`` file)."""
  class_names = None if args.class_names is None else read_class_names(args.class_names)  # before JAX is imported
  from jaxequiv.labels.experiment import ExperimentConfig  # pylint: disable=import-outside-toplevel
  return ExperimentConfig(
      data=args.data, steps=args.steps, batch_size=args.batch_size, seed=args.seed, learning_rate=args.lr,
      zero_shot_holdout=args.zero_shot, beam_size=args.beam_size, num_train=args.num_train, num_test=args.num_test,
      layers=args.layers, width=args.width, heads=args.heads, token_dropout=args.token_dropout,
      channels=tuple(args.channels), encoder=args.encoder, patch=args.patch, image_size=args.image_size,
      data_dir=args.data_dir, download=args.download, class_names=class_names, out_dir=args.out)


def run(args: argparse.Namespace) -> int:
  """Flags -> ``ExperimentConfig`` -> ``experiment.run`` (trains, measures, writes ``--out``) -> printed report."""
  check_args(args)
  config = experiment_config(args)
  cli.set_determinism_flags(args)
  from jaxequiv.labels import experiment  # pylint: disable=import-outside-toplevel
  every = max(1, args.steps // 4)

  units = {"onehot": "nats per label", "string": "nats per character"}

  def progress(head, i, loss):
    if (i + 1) % every == 0 or i == 0:
      print(f"  {head:6s} step {i + 1:5d}/{args.steps}  loss {loss:.4f} {units[head]}", flush=True)

  res = experiment.run(config, progress)
  print(res["report"])
  if res["files"]:
    print(f"wrote {', '.join(res['files'])}")
  return 0
