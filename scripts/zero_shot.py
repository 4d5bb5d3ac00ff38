"""Compositional zero-shot on ``shapes``: a string head scores labels it never saw; a one-hot head cannot.

Each seed is one labels run (``jaxequiv.labels.experiment.run``, the same thing as
``python -m jaxequiv labels --data shapes --zero-shot --steps 1500 --seed S``): four colour-shape combinations are held
out of training (a Latin square, so every word still appears with three partners), both heads train on the same
minibatches, then both are tested on the seen combinations and the string head on the held-out ones, scored against
the trie of all 16 labels. The seeds run one after another; the report gives each seed, the mean and the spread.

  python scripts/zero_shot.py --out results/zero_shot                      # 3 seeds x 1500 steps
  python scripts/zero_shot.py --seeds 0 --steps 2 --num-train 64 --num-test 64 --channels 4,8 --width 16 \\
      --heads 2 --out /tmp/zero_shot                                         # smoke
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from jaxequiv import provenance  # noqa: E402
from jaxequiv.labels import experiment  # noqa: E402

HELDOUT_ROWS = (  # (key in the zero_shot dict, what it is, format)
    ("p_true_mean", "string: mean p(true label string)", ".4f"),
    ("p_true_median", "string: median p(true label string)", ".1e"),
    ("p_true_constrained_mean", "string: mean p(true label), trie-constrained over all labels", ".4f"),
    ("rank_mean", "string: mean rank of the true label (chance {chance_rank})", ".2f"),
    ("rank1", "string: rank 1, i.e. rank classification names it (chance {chance_rank1})", ".3f"),
    ("rank_le3", "string: rank <= 3", ".3f"),
    ("named_free_greedy", "string: names it exactly, free greedy", ".3f"),
    ("named_trie_greedy", "string: names it exactly, trie greedy", ".3f"),
    ("named_trie_beam", "string: names it exactly, trie beam", ".3f"),
    ("colour_word_correct", "string: colour word right (free greedy)", ".3f"),
    ("shape_word_correct", "string: shape word right (free greedy)", ".3f"),
    ("pmi_rank1", "string, prior-corrected (PMI against a blank image): rank 1", ".3f"),
    ("pmi_rank_mean", "string, prior-corrected: mean rank", ".2f"),
    ("onehot_accuracy", "one-hot head: accuracy (it has no output for a held-out label)", ".3f"),
)
SEEN_ROWS = (("accuracy", "accuracy (string: rank classification)"), ("nll_per_image", "NLL per image, nats"),
             ("ece", "ECE, 15 bins"), ("leakage", "leakage (mass on strings that are not labels)"))


def _mean_sd(xs) -> tuple[float, float]:
  xs = np.asarray(xs, np.float64)
  return float(xs.mean()), float(xs.std(ddof=1)) if len(xs) > 1 else 0.0


def _spread(xs, fmt: str) -> str:
  m, sd = _mean_sd(xs)
  return f"{m:{fmt}}" + (f" ± {sd:{fmt}}" if len(xs) > 1 else "")


def summary(runs: list[dict]) -> dict:
  """Per metric, the values over seeds: ``{"heldout": {key: [...]}, "seen": {head: {key: [...]}}}``."""
  return {"heldout": {k: [r["zero_shot"][k] for r in runs] for k, _, _ in HELDOUT_ROWS},
          "seen": {h: {k: [r["metrics"][h].get(k) for r in runs] for k, _ in SEEN_ROWS}
                   for h in ("onehot", "string")},
          "pmi_accuracy_seen": [r["zero_shot"]["pmi_accuracy_seen"] for r in runs]}


def headline(data: dict) -> list[tuple[str, str]]:
  """The findings, read from the data."""
  s, n = data["summary"], len(data["runs"])
  z0 = data["runs"][0]["zero_shot"]
  seen = s["seen"]
  onehot_acc, string_acc = _mean_sd(seen["onehot"]["accuracy"])[0], _mean_sd(seen["string"]["accuracy"])[0]
  better = "string" if string_acc > onehot_acc else "one-hot" if onehot_acc > string_acc else "neither"
  return [
      (f"shapes zero-shot, {len(z0['heldout'])} held-out combinations, {data['steps']} steps, {n} seed(s):"
       f" rank of the true label among {z0['num_labels']} (chance {(z0['num_labels'] + 1) / 2:g}),"
       " string head; prior-corrected",
       f"{_spread(s['heldout']['rank_mean'], '.2f')}; {_spread(s['heldout']['pmi_rank_mean'], '.2f')}"
       f" (one-hot head: accuracy {_spread(s['heldout']['onehot_accuracy'], '.1f')}, no output for them)"),
      (f"shapes zero-shot, seen combinations: accuracy, one-hot vs string head ({n} seed(s))",
       f"{_spread(seen['onehot']['accuracy'], '.3f')} vs {_spread(seen['string']['accuracy'], '.3f')}"
       f" (higher mean: {better})"),
  ]


def render(rec: dict) -> str:
  """results/zero_shot.md from its record."""
  d = rec["data"]
  runs, s = d["runs"], d["summary"]
  z0 = runs[0]["zero_shot"]
  k = z0["num_labels"]
  fill = dict(chance_rank=f"{(k + 1) / 2:g}", chance_rank1=f"{1 / k:.4f}")
  seeds = [r["seed"] for r in runs]
  lines = ["# Compositional zero-shot: a string head can score labels it never saw; a one-hot head cannot", "",
           *provenance.header(rec), "",
           f"Held out of training: {', '.join(f'`{h}`' for h in z0['heldout'])} (of {k} labels).",
           "Training images: " + ", ".join(f"{r['num_train']}" for r in runs) + "; test images: "
           + ", ".join(f"{r['num_test']}" for r in runs) + ", of which held-out: "
           + ", ".join(f"{r['zero_shot']['images']}" for r in runs) + " (per seed).", "",
           f"## Held-out-combination test images ({d['steps']} steps)", "",
           "| metric | " + " | ".join(f"seed {x}" for x in seeds) + " | mean ± sd |",
           "|---|" + "---:|" * (len(seeds) + 1)]
  for key, what, fmt in HELDOUT_ROWS:
    vals = s["heldout"][key]
    lines.append(f"| {what.format(**fill)} | " + " | ".join(f"{v:{fmt}}" for v in vals) + f" | {_spread(vals, fmt)} |")
  lines += ["", f"## Seen combinations of the same test sets (mean ± sd over {len(seeds)} seed(s))", "",
            "| metric | one-hot head | string head |", "|---|---:|---:|"]
  for key, what in SEEN_ROWS:
    pair = (s["seen"]["onehot"][key], s["seen"]["string"][key])
    cells = [_spread(v, ".3f") if None not in v else "—" for v in pair]
    lines.append(f"| {what} | {cells[0]} | {cells[1]} |")
  lines.append(f"| accuracy with the prior correction | — | {_spread(s['pmi_accuracy_seen'], '.3f')} |")
  lines += ["", "Free greedy outputs on held-out images (top 5, seed " + f"{seeds[0]}): {z0['free_greedy_top']}",
            "", "Wall time per seed (load, train, evaluate; s): " + "; ".join(
                f"seed {r['seed']}: {r['seconds']['load']:.0f}, {r['seconds']['train']:.0f}, {r['seconds']['eval']:.0f}"
                for r in runs)]
  return "\n".join(lines)


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--seeds", default="0,1,2", help="comma-separated seeds, one labels run each")
  p.add_argument("--steps", type=int, default=1500)
  p.add_argument("--num-train", type=int, default=None, help="training images (default: the loader's 4096)")
  p.add_argument("--num-test", type=int, default=None, help="test images (default: the loader's 1024)")
  p.add_argument("--channels", default="16,32,64", help="CNN channels per stage")
  p.add_argument("--width", type=int, default=64)
  p.add_argument("--heads", type=int, default=4)
  p.add_argument("--out", default="results/zero_shot", help="writes OUT.json and OUT.md")
  args = p.parse_args(argv)
  try:
    seeds = [int(x) for x in args.seeds.split(",")]
    channels = tuple(int(x) for x in args.channels.split(","))
  except ValueError:
    p.error(f"--seeds and --channels take comma-separated integers, got {args.seeds!r} and {args.channels!r}")
  run = provenance.start([sys.argv[0], *(argv if argv is not None else sys.argv[1:])])
  runs = []
  for seed in seeds:
    cfg = experiment.ExperimentConfig(data="shapes", steps=args.steps, seed=seed, zero_shot_holdout=True,
                                      num_train=args.num_train, num_test=args.num_test, channels=channels,
                                      width=args.width, heads=args.heads)
    res = experiment.run(cfg)
    runs.append({"seed": seed, "num_train": res["num_train"], "num_test": res["num_test"], "metrics": res["metrics"],
                 "zero_shot": res["zero_shot"], "seconds": res["seconds"]})
    print(f"seed {seed}: held-out rank {res['zero_shot']['rank_mean']:.2f}, seen accuracy one-hot"
          f" {res['metrics']['onehot']['accuracy']:.3f}, string {res['metrics']['string']['accuracy']:.3f}", flush=True)
  c = experiment.ExperimentConfig(steps=args.steps, channels=channels, width=args.width, heads=args.heads)
  settings = {k: v for k, v in dataclasses.asdict(c).items() if k not in ("out_dir", "seed")}
  data = {"steps": args.steps, "config": settings, "runs": runs}
  data["summary"] = summary(runs)
  rec = provenance.write(
      run, args.out, data, seeds=seeds, render=render, headline=headline(data),
      model=f"per seed two heads on one CNN encoder (channels {channels}, embedding {args.width}): a one-hot head"
            f" (MLP, softmax over the seen classes) and a string head (causal character decoder, {c.layers} layer,"
            f" width {args.width}, {args.heads} heads); each trained {args.steps} Adam steps (lr {c.learning_rate})"
            f" of {c.batch_size} images")
  print(render(rec))
  return 0


if __name__ == "__main__":
  sys.exit(main())
