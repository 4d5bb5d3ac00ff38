"""``python -m jaxequiv labels``: image classifiers whose labels are strings.

Trains a one-hot head (K-way softmax) and a string head (character decoder,
``jaxequiv.lm_nll`` of the label sentence) on the same images, then reports for
both: accuracy, NLL per image, ECE (15 bins); for the string head also rank
classification, leakage, and trie-constrained greedy and beam decoding.
``--zero-shot`` (shapes) holds out colour-shape combinations from training and
measures how the string head scores and names them; the one-hot head cannot.

Example:
  python -m jaxequiv labels --data shapes --steps 600 --zero-shot --out runs/labels
  python -m jaxequiv labels --data digits            # scikit-learn's 8x8 digits, "zero." .. "nine."
  python -m jaxequiv labels --data tfds:cifar100 --download --num-train 10000 --num-test 2000
"""

from __future__ import annotations

import argparse
import json
import os

import jax

from jaxequiv.labels.experiment import metrics_table, run_experiment, zero_shot_table

def add_arguments(parser: argparse.ArgumentParser) -> None:
  """Flags of ``python -m jaxequiv labels``."""
  parser.add_argument("--data", default="shapes", help="shapes | digits | tfds:cifar10 | tfds:cifar100 | "
                      "tfds:imagenette | tfds:imagenet2012")
  parser.add_argument("--steps", type=int, default=600, help="training steps per head")
  parser.add_argument("--batch-size", type=int, default=64)
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--lr", type=float, default=3e-3, help="Adam learning rate")
  parser.add_argument("--zero-shot", action="store_true",
                      help="shapes only: hold out colour-shape combinations from training and measure them")
  parser.add_argument("--beam-size", type=int, default=4)
  parser.add_argument("--token-dropout", type=float, default=0.0,
                      help="string head: replace input characters by PAD with this probability while training")
  parser.add_argument("--num-train", type=int, default=None, help="training images; omitted: the loader's own number")
  parser.add_argument("--num-test", type=int, default=None, help="test images; omitted: the loader's own number")
  parser.add_argument("--layers", type=int, default=1, help="string decoder layers")
  parser.add_argument("--width", type=int, default=64, help="embedding and decoder width")
  parser.add_argument("--heads", type=int, default=4, help="string decoder attention heads")
  parser.add_argument("--channels", default="16,32,64", help="CNN channels per stage, comma-separated")
  parser.add_argument("--encoder", default="cnn", choices=("cnn", "vit"), help="image encoder: CNN or patch ViT")
  parser.add_argument("--patch", type=int, default=4, help="ViT patch side")
  parser.add_argument("--image-size", type=int, default=None, help="shapes side / tfds resize")
  parser.add_argument("--data-dir", default=None, help="tfds data_dir")
  parser.add_argument("--download", action="store_true", help="let tfds download and prepare the data")
  parser.add_argument("--out", default=None, help="directory for metrics.json and metrics.md")


def run(args: argparse.Namespace) -> int:
  """Trains both heads, prints the metrics table (and zero-shot table), optionally writes ``--out``."""
  if args.zero_shot and args.data != "shapes":
    raise SystemExit(f"--zero-shot needs --data shapes (compositional labels), not {args.data!r}")
  every = max(1, args.steps // 4)

  def progress(head, i, loss):
    if (i + 1) % every == 0 or i == 0:
      print(f"  {head:6s} step {i + 1:5d}/{args.steps}  loss {loss:.4f}", flush=True)

  res = run_experiment(args.data, steps=args.steps, batch_size=args.batch_size, seed=args.seed,
                       learning_rate=args.lr, zero_shot_holdout=args.zero_shot, beam_size=args.beam_size,
                       num_train=args.num_train, num_test=args.num_test, layers=args.layers, width=args.width,
                       heads=args.heads, token_dropout=args.token_dropout,
                       channels=tuple(int(c) for c in args.channels.split(",")), encoder=args.encoder,
                       patch=args.patch, image_size=args.image_size,
                       data_dir=args.data_dir, download=args.download,
                       progress=progress)
  sec = res["seconds"]
  head = (f"data={args.data} train={res['num_train']} test={res['num_test']} K={len(res['test'].class_names)}"
          f" steps={args.steps} batch={args.batch_size} seed={args.seed} token_dropout={args.token_dropout}"
          f" backend={jax.default_backend()}"
          f" (load {sec['load']:.1f}s, train {sec['train']:.1f}s, eval {sec['eval']:.1f}s)")
  text = [head, "", metrics_table(res["metrics"])]
  if res["zero_shot"] is not None:
    zs = res["zero_shot"]
    text += ["", f"zero-shot: held out {', '.join(zs['heldout'])}", "", zero_shot_table(zs),
             "", f"free greedy outputs on held-out images (top 5): {zs['free_greedy_top']}"]
  print("\n".join(text))
  if args.out:
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "metrics.md"), "w") as f:
      f.write("\n".join(text) + "\n")
    summary = {k: res[k] for k in ("data", "steps", "batch_size", "seed", "num_train", "num_test", "metrics",
                                   "zero_shot", "seconds")}
    summary["onehot_curve"] = res["trained"].onehot_curve.tolist()
    summary["string_curve"] = res["trained"].string_curve.tolist()
    with open(os.path.join(args.out, "metrics.json"), "w") as f:
      json.dump(summary, f, indent=1)
    print(f"wrote {args.out}/metrics.md and metrics.json")
  return 0
