"""One-hot head vs string head on a compositional, long-tailed image set: frequent, rare and held-out classes.

  python scripts/labels_compositional.py --seeds 5 --steps 1200 --out results/labels_compositional

The classes are ``jaxequiv.labels.compositional``'s 144 names "<size> <texture> <colour> <shape>." (Zipf training
counts over a seeded ranking; ``--heldout`` classes never trained on, their words all seen). Both heads share the
encoder architecture and are trained on the same minibatches per seed (``jaxequiv.labels.seeds``, all seeds in one
vmapped step); the data is fixed (``--data-seed``), the seeds change the initialisation and the minibatch order.

Per class group (by training count) and seed: accuracy (one-hot: argmax over its trained classes; string: rank
classification over all 144 labels), NLL per image (one-hot: over its classes; string: over the 144 labels,
renormalised, and over all strings, i.e. spelling exactly the label), the fraction of the 4 words right in the
predicted label, and the string head's accuracy with its label prior divided out (``accuracy_pmi``: scores minus
those of a content-free grey image). The one-hot head has no output for a held-out class: its accuracy there is 0 and its NLL undefined.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from jaxequiv import provenance
from jaxequiv.labels import compositional, seeds
from jaxequiv.labels.experiment import decoder_config_for
from jaxequiv.labels.heads import ImageModelConfig

GROUPS = ("frequent", "rare", "heldout")


def _logsumexp(x: np.ndarray) -> np.ndarray:
  m = x.max(-1, keepdims=True)
  return (m + np.log(np.exp(x - m).sum(-1, keepdims=True)))[..., 0]


def group_metrics(onehot_SxNxC: np.ndarray, onehot_classes: np.ndarray, string_SxNxK: np.ndarray,
                  labels_N: np.ndarray, classes: np.ndarray, prior_SxK: np.ndarray | None = None) -> dict:
  """Per-seed metrics ``[S]`` of both heads on the test images whose class is in ``classes``.

  With ``prior_SxK`` (the string head's label scores of a content-free image), ``accuracy_pmi`` ranks labels by
  ``log p(label | x) - log p(label | blank)``, as ``jaxequiv.labels.evaluate.zero_shot`` does for the shapes.
  """
  sel = np.isin(labels_N, classes)
  y = labels_N[sel]
  words_y = compositional.factor_ids(y)
  o, s = onehot_SxNxC[:, sel].astype(np.float64), string_SxNxK[:, sel].astype(np.float64)
  o_pred = onehot_classes[o.argmax(-1)]
  s_pred = s.argmax(-1)
  trained = np.isin(y, onehot_classes)
  local = np.searchsorted(onehot_classes, y)
  idx = np.arange(len(y))
  s_true = s[:, idx, y]
  onehot_nll = (-o[:, idx, local].mean(-1)).tolist() if trained.all() else None
  words = lambda pred: (compositional.factor_ids(pred) == words_y).mean((-1, -2)).tolist()  # noqa: E731
  out = {
      "classes": int(len(classes)), "images": int(len(y)),
      "onehot": {"accuracy": (o_pred == y).mean(-1).tolist(), "nll": onehot_nll, "words_correct": words(o_pred)},
      "string": {"accuracy": (s_pred == y).mean(-1).tolist(), "nll": (_logsumexp(s) - s_true).mean(-1).tolist(),
                 "nll_free": (-s_true).mean(-1).tolist(), "words_correct": words(s_pred)},
      "onehot_has_output": float(np.mean(np.isin(classes, onehot_classes))),
  }
  if prior_SxK is not None:
    out["string"]["accuracy_pmi"] = ((s - prior_SxK[:, None]).argmax(-1) == y).mean(-1).tolist()
  return out


def mean_std(x) -> list[float] | None:
  """``[mean, sample std]`` over seeds (None stays None)."""
  if x is None:
    return None
  x = np.asarray(x, np.float64)
  return [float(x.mean()), float(x.std(ddof=1)) if len(x) > 1 else 0.0]


def _pm(ms, fmt=".3f") -> str:
  return "none (no output)" if ms is None else f"{ms[0]:{fmt}} ± {ms[1]:{fmt}}"


def headline(data: dict) -> list[tuple[str, str]]:
  """One line per group and metric, each read from the data: both heads and their per-seed difference."""
  out, n = [], data["num_seeds"]
  for g in GROUPS:
    r = data["groups"][g]
    where = f"{g} classes ({r['classes']} classes, {r['images']} test images), {n} seeds"
    for metric, better in (("accuracy", 1), ("nll", -1)):
      o, s = r["onehot"][metric], r["string"][metric]
      o = o if r["onehot_has_output"] > 0 else None
      line = f"one-hot {_pm(mean_std(o))}, string {_pm(mean_std(s))}"
      if metric == "accuracy" and "accuracy_pmi" in r["string"]:
        line += f" (prior-corrected {_pm(mean_std(r['string']['accuracy_pmi']))})"
      if o is not None:
        diff = np.asarray(s) - np.asarray(o)
        wins = int(np.sum(better * diff > 0))
        line += f"; string − one-hot {_pm(mean_std(diff), '+.3f')}, string better in {wins}/{n} seeds"
      out.append((f"{metric} ({'nats per image over the labels' if metric == 'nll' else 'top-1'}), {where}", line))
  return out


def _progress(steps: int):
  """Prints each head's mean training loss over the seeds ten times per run."""
  every = max(1, steps // 10)

  def show(head: str, i: int, losses_S: np.ndarray) -> None:
    if (i + 1) % every == 0 or i + 1 == steps:
      print(f"{head} step {i + 1}/{steps}: loss {float(np.mean(losses_S)):.4f} (mean of {len(losses_S)} seeds)",
            flush=True)

  return show


def model(a: dict) -> str:
  """The architecture and training budget, from the recorded arguments."""
  return (f"CNN encoder (3x3 convs, channels {a['channels']}, mean pool, embedding {a['width']}); one-hot head: MLP"
          f" {a['width']}-{4 * a['width']}-K_train; string head: {a['layers']}-layer causal transformer decoder (width"
          f" {a['width']}, {a['heads']} heads) conditioned by adding the image embedding at every position, trained"
          f" with lm_nll; Adam lr {a['lr']} constant, batch {a['batch_size']}, {a['steps']} steps per head,"
          f" {a['seeds']} seeds (vmapped); images {a['image_size']}x{a['image_size']}x3")


def render(rec: dict) -> str:
  """results/labels_compositional.md from its record."""
  d, a = rec["data"], rec["data"]["args"]
  lines = ["# Labels as strings where spelling is shared: one-hot vs string head, long tail and held-out classes", "",
           *provenance.header(rec),
           f"- data: {d['num_classes']} classes '<size> <texture> <colour> <shape>.', Zipf training counts (max"
           f" {a['max_count']}, exponent {a['exponent']}, {d['num_train']} training images), {a['heldout']} held-out"
           f" classes, {a['test_per_class']} test images per class; frequent: >= {a['frequent_min']} training images,"
           f" rare: <= {a['rare_max']}",
           f"- time (wall): training both heads {d['seconds']['train_both_heads']:.0f} s, scoring the test set"
           f" {d['seconds']['score_test']:.0f} s", "",
           "| group | metric | one-hot | string |", "|---|---|---:|---:|"]
  for g in GROUPS:
    r = d["groups"][g]
    for m in ("accuracy", "accuracy_pmi", "nll", "words_correct"):
      onehot = "" if m == "accuracy_pmi" else _pm(mean_std(r["onehot"][m]))
      lines.append(f"| {g} ({r['classes']} classes) | {m} | {onehot} |"
                   f" {_pm(mean_std(r['string'].get(m)))} |")
    lines.append(f"| {g} | nll over all strings | | {_pm(mean_std(r['string']['nll_free']))} |")
  lines += ["", "mean ± sample std over seeds; NLL in nats per image (one-hot: over its trained classes; string: over"
            " the 144 labels, renormalised). Headline:", ""]
  lines += [f"- {h['what']}: {h['result']}" for h in rec["headline"]]
  return "\n".join(lines)


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--seeds", type=int, default=5)
  p.add_argument("--steps", type=int, default=1200)
  p.add_argument("--batch-size", type=int, default=64)
  p.add_argument("--lr", type=float, default=3e-3)
  p.add_argument("--width", type=int, default=64)
  p.add_argument("--layers", type=int, default=1)
  p.add_argument("--heads", type=int, default=4)
  p.add_argument("--channels", default="16,32,64")
  p.add_argument("--image-size", type=int, default=20)
  p.add_argument("--max-count", type=int, default=200)
  p.add_argument("--exponent", type=float, default=1.0)
  p.add_argument("--heldout", type=int, default=16)
  p.add_argument("--test-per-class", type=int, default=10)
  p.add_argument("--frequent-min", type=int, default=20)
  p.add_argument("--rare-max", type=int, default=5)
  p.add_argument("--data-seed", type=int, default=0)
  p.add_argument("--out", default="results/labels_compositional")
  args = p.parse_args(argv)
  run = provenance.start([sys.argv[0], *(sys.argv[1:] if argv is None else argv)])
  try:
    ds = compositional.make_compositional(max_count=args.max_count, exponent=args.exponent, num_heldout=args.heldout,
                                          test_per_class=args.test_per_class, image_size=args.image_size,
                                          seed=args.data_seed)
  except ValueError as e:
    raise SystemExit(f"labels_compositional: {e}") from None
  groups = compositional.class_groups(ds.counts, frequent_min=args.frequent_min, rare_max=args.rare_max)
  empty = [g for g, c in groups.items() if not len(c)]
  if empty:
    raise SystemExit(f"no {' and no '.join(empty)} classes at --max-count {args.max_count} --frequent-min"
                     f" {args.frequent_min} --rare-max {args.rare_max} --heldout {args.heldout}; change those flags")
  channels = tuple(int(c) for c in args.channels.split(","))
  config = ImageModelConfig(channels=channels, embed_dim=args.width, decoder=decoder_config_for(
      compositional.CLASS_NAMES, layers=args.layers, width=args.width, heads=args.heads))
  seed_list = list(range(args.seeds))
  t0, c0 = time.perf_counter(), time.process_time()
  t = seeds.train_seeds(ds.train.images, ds.train.labels, ds.train.class_names, config, seeds=seed_list,
                        steps=args.steps, batch_size=args.batch_size, learning_rate=args.lr,
                        progress=_progress(args.steps))
  t1, c1 = time.perf_counter(), time.process_time()
  onehot = seeds.onehot_logprobs(t, ds.test.images, config)
  string = seeds.string_logprobs(t, ds.test.images, compositional.CLASS_NAMES, config)
  blank = np.full((1, *ds.test.images.shape[1:]), ds.test.images.mean(), np.float32)  # a content-free grey image
  prior = seeds.string_logprobs(t, blank, compositional.CLASS_NAMES, config)[:, 0]
  t2, c2 = time.perf_counter(), time.process_time()
  a = {**vars(args), "channels": list(channels)}
  data = {"args": a, "num_seeds": args.seeds, "num_classes": len(compositional.CLASS_NAMES),
          "num_train": int(len(ds.train.labels)), "counts": ds.counts.tolist(),
          "heldout": [compositional.CLASS_NAMES[i] for i in ds.heldout],
          "groups": {g: group_metrics(onehot, t.onehot_classes, string, ds.test.labels, c, prior) for g, c in groups.items()},
          "final_train_loss": {"onehot": t.onehot_curve[:, -1].tolist(), "string": t.string_curve[:, -1].tolist()},
          "seconds": {"train_both_heads": round(t1 - t0, 1), "score_test": round(t2 - t1, 1),
                      "cpu_train_both_heads": round(c1 - c0, 1), "cpu_score_test": round(c2 - c1, 1)}}
  rec = provenance.write(run, args.out, data, model=model(a), seeds=seed_list, headline=headline(data), render=render)
  for h in rec["headline"]:
    print(f"{h['what']}: {h['result']}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
