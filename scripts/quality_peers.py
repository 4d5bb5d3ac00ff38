"""LM quality side by side with nanoGPT: validation bits per character on the same Tiny Shakespeare sentences.

Both systems train the same shape (nanoGPT's CPU anchor: 4 layers, width 128, 4 heads, T=64, no dropout, no biases in
nanoGPT) with AdamW (lr 1e-3, betas (0.9, 0.99), weight decay 0.1 on matrices, gradient clipping 1.0) for the same
number of steps of batch 12 x 64 on the same training sentences, ``--seeds`` seeds each, and both follow one learning
rate schedule (``jaxequiv.training.make_schedule``: linear warm-up, cosine to ``--end-lr-fraction``; the torch
optimizer's lr is set from it before every step; nanoGPT's Shakespeare-char config has the same shape: warm-up 100,
cosine to lr/10).

* Data: ``--text`` through ``corpus.text_file_sentences`` (``alphabet.normalize``), sentences over T characters split
  at spaces, ``corpus.train_val_split``. jaxequiv trains on packed rows (``data.lm_batches``: whole sentences, each
  segment starting with BOS; the mask's count of real predictions, about 95% of 12 x 64). nanoGPT (``--nanogpt-data
  stream``, its own recipe) trains on random 64-character windows of the training sentences joined as
  ``BOS sentence BOS sentence ...`` (all 768 positions are predictions, the BOS after each period included);
  ``packed`` feeds it jaxequiv's very batches instead (targets -1 off the mask; it attends across the BOS boundaries
  that jaxequiv masks).
* Evaluation: the same validation sentences, one per row from its start (BOS, then the sentence; padding targets -1,
  nanoGPT's ``ignore_index``), NLL summed over every character (final period included) / characters, in bits.
* The iid classifier (``objective="classification", mode="iid"``): the same model trained on independent (prefix,
  next character) examples, as many per step as the LM batch of that step has predictions, for ``--iid-steps`` steps,
  beside the LM trained for the same steps and schedule (equal predictions seen).

jaxequiv's seeds run at once (``training.vmap_train_step``); nanoGPT's in a loop. Writes OUT.json (through
``jaxequiv.provenance``), OUT.md and OUT.png. Refuses in one line without the text, torch or nanoGPT's model.py.

Usage:
  python scripts/quality_peers.py     # the full comparison: 800 steps, 3 seeds each; iid and its LM 50 steps
  python scripts/quality_peers.py --steps 100 --seeds 1 --eval-every 50 --iid-steps 20 --out /tmp/qp   # medium
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time

import jax
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_peers import BETAS, CLIP, LR, NANOGPT, WD, NanoGPTRunner, load_nanogpt, torch_info  # noqa: E402

import jaxequiv  # noqa: E402
from jaxequiv import alphabet, provenance, training  # noqa: E402
from jaxequiv import model as model_lib  # noqa: E402
from jaxequiv.batches import ClassificationBatch, LMBatch  # noqa: E402
from jaxequiv.lm import corpus, data, evaluate  # noqa: E402
from jaxequiv.lm import train as tr  # noqa: E402

TEXT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data", "tinyshakespeare.txt")


def mean_std(xs) -> dict:
  """Mean and sample standard deviation (0 for one seed) of per-seed values."""
  xs = np.asarray(xs, np.float64)
  return {"mean": float(xs.mean()), "std": float(xs.std(ddof=1)) if len(xs) > 1 else 0.0, "seeds": xs.tolist()}


# ----------------------------------------------------------------------------- jaxequiv, seeds vmapped


def stack(batches):
  """One batch per seed -> one batch with a leading seeds axis on every leaf."""
  return type(batches[0])(*(np.stack(leaves) for leaves in zip(*batches)))


def trim_rows(b: ClassificationBatch, rows: int) -> ClassificationBatch:
  """An iid batch cut to its first ``rows`` token rows (the rest are PAD); padding examples point at the new end."""
  r = b.tokens.shape[-2]
  return b._replace(tokens=b.tokens[..., :rows, :], rows=np.where(b.rows == r, rows, b.rows))


def used_rows(b: ClassificationBatch, bucket: int = 32) -> int:
  """Rows holding any token, rounded up to ``bucket`` (few distinct shapes, so few compiles)."""
  used = int(np.max(np.nonzero((b.tokens != alphabet.PAD).any(-1))[-1], initial=0)) + 1
  return min(b.tokens.shape[-2], -(-used // bucket) * bucket)


def run_jaxequiv(mcfg, ocfg, objective: str, mode: str, train_s, eval_batches, seeds, steps, eval_at, progress):
  """Trains one run per seed at once; returns the curve of validation bits/char per seed at ``eval_at`` steps."""
  keys = jax.vmap(jax.random.key)(np.asarray(seeds))
  params = jax.jit(jax.vmap(lambda k: model_lib.init(k, mcfg)))(keys)
  opt = training.make_optimizer(ocfg)
  state = training.init_train_state(params, opt)
  step = training.jit_train_step(training.vmap_train_step(
      training.make_train_step(tr.make_loss_fn(objective, mcfg), opt), state))
  b, t = ocfg.batch_size, mcfg.seq_len
  if objective == "lm":
    its = [data.lm_batches(train_s, b, t, seed=s) for s in seeds]
  else:
    its = [data.classification_batches(train_s, b, t, mode=mode, seed=s) for s in seeds]
  apply_fn = tr.cached_apply_fn(mcfg)
  curve, seen, t0 = [], 0, time.time()
  for k in range(1, steps + 1):
    batch = stack([next(it) for it in its])
    seen += tr.num_predictions(type(batch)(*(x[0] for x in batch)))  # seed 0's count (each seed's LM step differs)
    if objective != "lm":
      batch = trim_rows(batch, used_rows(batch))
    state, metrics = step(state, batch)
    if k in eval_at:
      bits = [evaluate.evaluate_batches(jax.tree.map(lambda x, i=i: x[i], state.params), eval_batches,
                                        apply_fn).bits_per_char for i in range(len(seeds))]
      curve.append({"step": k, "predictions_seen_seed0": seen, "time_s": time.time() - t0, **mean_std(bits)})
      if progress:
        print(f"jaxequiv {objective}/{mode} step {k}: {curve[-1]['mean']:.4f} bits/char", flush=True)
  return curve


# ----------------------------------------------------------------------------- nanoGPT, seeds in a loop


def nanogpt_rows(b: LMBatch):
  """An LMBatch as nanoGPT's (x, y, predictions): PAD inputs become BOS (causal: unseen), targets -1 off the mask."""
  import torch  # pylint: disable=import-outside-toplevel
  x = np.where(b.inputs == alphabet.PAD, alphabet.BOS, b.inputs).astype(np.int64)
  y = np.where(b.mask, b.targets, -1).astype(np.int64)
  return torch.from_numpy(x), torch.from_numpy(y), int(b.mask.sum())


def nanogpt_bits(runner: NanoGPTRunner, eval_rows) -> float:
  """Validation NLL in bits/char: summed cross-entropy over every target != -1, over their count."""
  torch = runner.torch
  runner.model.eval()
  total, count = 0.0, 0
  with torch.no_grad():
    for x, y, n in eval_rows:
      logits, _ = runner.model(x, y)
      total += float(torch.nn.functional.cross_entropy(logits.view(-1, logits.size(-1)).double(), y.view(-1),
                                                       ignore_index=-1, reduction="sum"))
      count += n
  runner.model.train()
  return total / count / math.log(2)


def nanogpt_stream(train_s, seed: int = 0) -> np.ndarray:
  """The training sentences in a shuffled order, each preceded by BOS, as one stream of ids."""
  order = np.random.default_rng(seed).permutation(len(train_s))
  return np.concatenate([np.concatenate([[alphabet.BOS], alphabet.encode(train_s[i])]) for i in order])


def run_nanogpt(module, cfg, ocfg, train_s, eval_rows, seeds, steps, eval_at, how, progress):
  """nanoGPT per seed; its lr set from jaxequiv's schedule before every step. Curve as ``run_jaxequiv``'s."""
  schedule = training.make_schedule(ocfg)
  stream = nanogpt_stream(train_s)
  per_seed, seen_per_step = [], []
  for s in seeds:
    runner = NanoGPTRunner(module, cfg, stream, "cpu", seed=s)
    packed = data.lm_batches(train_s, cfg["batch"], cfg["seq_len"], seed=s) if how == "packed" else None
    points, t0 = [], time.time()
    for k in range(1, steps + 1):
      for g in runner.opt.param_groups:
        g["lr"] = float(schedule(k - 1))
      batch = runner.batch() if packed is None else nanogpt_rows(next(packed))
      if s == seeds[0]:
        seen_per_step.append(batch[-1])
      runner.step(batch)
      if k in eval_at:
        points.append((k, nanogpt_bits(runner, eval_rows), time.time() - t0))
        if progress:
          print(f"nanoGPT seed {s} step {k}: {points[-1][1]:.4f} bits/char", flush=True)
    per_seed.append(points)
  seen = np.cumsum(seen_per_step)
  return [{"step": k, "predictions_seen_seed0": int(seen[k - 1]), "time_s": float(np.sum([p[j][2] for p in per_seed])),
           **mean_std([p[j][1] for p in per_seed])} for j, (k, _, _) in enumerate(per_seed[0])]


# ----------------------------------------------------------------------------- the run


def eval_steps(steps: int, every: int) -> list[int]:
  """Validation steps: every ``every`` steps and the last.

  >>> eval_steps(10, 4)
  [4, 8, 10]
  """
  return sorted({*range(every, steps + 1, every), steps}) if every else [steps]


def compare(a: str, xa: dict, b: str, xb: dict) -> str:
  """'A lower by D bits/char (P%)' read from two mean_std records (each mean ± std beside it)."""
  lo, hi = (a, b) if xa["mean"] <= xb["mean"] else (b, a)
  d = abs(xa["mean"] - xb["mean"])
  ref = max(xa["mean"], xb["mean"])
  return (f"{a} {xa['mean']:.4f} ± {xa['std']:.4f}, {b} {xb['mean']:.4f} ± {xb['std']:.4f} bits/char:"
          f" {lo} lower by {d:.4f} bits/char ({100 * d / ref:.1f}% of {hi}'s)")


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--text", default=TEXT, help="Tiny Shakespeare (or any text file)")
  p.add_argument("--nanogpt", default=NANOGPT, help="path of nanoGPT's model.py")
  p.add_argument("--layers", type=int, default=4)
  p.add_argument("--width", type=int, default=128)
  p.add_argument("--heads", type=int, default=4)
  p.add_argument("--seq-len", type=int, default=64)
  p.add_argument("--batch", type=int, default=12, help="rows per step (nanoGPT: batch x T predictions)")
  p.add_argument("--steps", type=int, default=800)
  p.add_argument("--warmup", type=int, default=100)
  p.add_argument("--end-lr-fraction", type=float, default=0.1)
  p.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 per system")
  p.add_argument("--eval-every", type=int, default=160)
  p.add_argument("--val-fraction", type=float, default=0.1)
  p.add_argument("--val-sentences", type=int, default=500, help="the first N validation sentences (0: all)")
  p.add_argument("--iid-steps", type=int, default=50, help="steps of the iid classifier and its LM (0: skip)")
  p.add_argument("--iid-seeds", type=int, default=None, help="default: --seeds")
  p.add_argument("--nanogpt-data", choices=("stream", "packed"), default="stream")
  p.add_argument("--torch-threads", type=int, default=0, help="torch.set_num_threads (0: torch's default)")
  p.add_argument("--out", default="results/quality_peers", help="writes OUT.json, OUT.md and OUT.png")
  p.add_argument("--progress", action="store_true")
  args = p.parse_args(argv)
  started = provenance.start([sys.argv[0], *(argv if argv is not None else sys.argv[1:])])
  provenance.require(args.text, "the Tiny Shakespeare text (pass --text PATH)")
  module, why = load_nanogpt(args.nanogpt)
  if module is None:
    raise SystemExit(why)
  if args.torch_threads:
    module.torch.set_num_threads(args.torch_threads)

  sentences = jaxequiv.validate_sentences(corpus.text_file_sentences(args.text), max_len=args.seq_len,
                                          too_long="split")
  train_s, val_s = corpus.train_val_split(sentences, args.val_fraction, 0)
  val_s = val_s[: args.val_sentences] if args.val_sentences else val_s
  mcfg = jaxequiv.ModelConfig(num_layers=args.layers, width=args.width, num_heads=args.heads, seq_len=args.seq_len)
  cfg = dict(layers=args.layers, width=args.width, heads=args.heads, seq_len=args.seq_len, batch=args.batch,
             dtype="float32")
  seeds = list(range(args.seeds))
  eval_batches = evaluate.make_eval_batches(val_s, args.seq_len)
  eval_rows = [nanogpt_rows(b) for b in eval_batches]

  def ocfg(steps):  # the optimizer's settings and the rows per step
    return tr.TrainConfig(steps=steps, batch_size=args.batch, learning_rate=LR, warmup_steps=args.warmup,
                          end_lr_fraction=args.end_lr_fraction, weight_decay=WD, clip_norm=CLIP, b1=BETAS[0],
                          b2=BETAS[1])

  at = eval_steps(args.steps, args.eval_every)
  t0 = time.time()
  curves = {"jaxequiv": run_jaxequiv(mcfg, ocfg(args.steps), "lm", "paired", train_s, eval_batches, seeds,
                                     args.steps, at, args.progress)}
  wall = {"jaxequiv": time.time() - t0}
  t0 = time.time()
  curves["nanoGPT"] = run_nanogpt(module, cfg, ocfg(args.steps), train_s, eval_rows, seeds, args.steps, at,
                                  args.nanogpt_data, args.progress)
  wall["nanoGPT"] = time.time() - t0
  iid = None
  if args.iid_steps:
    iid_seeds = list(range(args.iid_seeds or args.seeds))
    iid_at = eval_steps(args.iid_steps, max(1, args.iid_steps // 5))
    iid, t0 = {}, time.time()
    iid["LM"] = run_jaxequiv(mcfg, ocfg(args.iid_steps), "lm", "paired", train_s, eval_batches, iid_seeds,
                             args.iid_steps, iid_at, args.progress)
    wall["LM (iid budget)"], t0 = time.time() - t0, time.time()
    iid["iid classifier"] = run_jaxequiv(mcfg, ocfg(args.iid_steps), "classification", "iid", train_s, eval_batches,
                                         iid_seeds, args.iid_steps, iid_at, args.progress)
    wall["iid classifier"] = time.time() - t0

  payload = {"args": vars(args), "torch": torch_info(), "curves": curves, "iid": iid, "wall_s": wall,
             "final": {k: c[-1] for k, c in curves.items()},
             "data": {"train": data.corpus_stats(train_s), "val": data.corpus_stats(val_s),
                      "val_characters_scored": int(sum(int(b.mask.sum()) for b in eval_batches))},
             "predictions_per_step_seed0": {k: c[-1]["predictions_seen_seed0"] / c[-1]["step"]
                                            for k, c in curves.items()}}
  payload["differences"] = differences(args, payload["predictions_per_step_seed0"],
                                       len(train_s) / (len(train_s) + payload["data"]["train"]["characters"]))
  fa, fb = payload["final"]["jaxequiv"], payload["final"]["nanoGPT"]
  headline = [(f"Tiny Shakespeare validation bits/char after {args.steps} steps of {args.batch} x {args.seq_len},"
               f" mean ± std over {len(seeds)} seed{'s' * (len(seeds) > 1)}", compare("jaxequiv", fa, "nanoGPT", fb))]
  if iid:
    a, b = iid["LM"][-1], iid["iid classifier"][-1]
    headline.append((f"the LM vs the same model trained as the iid classifier, {args.iid_steps} steps"
                     f" ({a['predictions_seen_seed0']:,} predictions seen each, seed 0)",
                     compare("LM", a, "iid classifier", b)))
  plot(payload, args.out + ".png")
  rec = provenance.write(started, args.out, payload, seeds=seeds, render=render, headline=headline,
                         inputs=[args.text, args.nanogpt],
                         model=f"transformer {args.layers} layers, width {args.width}, {args.heads} heads,"
                               f" T={args.seq_len} (jaxequiv.model and nanoGPT's GPT, no dropout); AdamW lr {LR},"
                               f" betas {BETAS}, weight decay {WD}, clip {CLIP}; warm-up {args.warmup}, cosine to"
                               f" {args.end_lr_fraction} x lr over {args.steps} steps of {args.batch} rows"
                               + (f"; iid classifier and its LM: {args.iid_steps} steps" if iid else ""))
  print(render(rec))
  return 0


def differences(args, per_step: dict, bos_share: float) -> list[str]:
  """What still differs between the two systems, in words (``per_step``: mean predictions per step by system)."""
  return [
      "architecture: both pre-LayerNorm transformers with a 4x GELU MLP (nanoGPT exact, jaxequiv tanh-approximate)"
      " and learned positions; nanoGPT has no biases (bias=False), ties its output layer to the input embedding (65"
      " logits: it keeps some probability for BOS, which validation never asks for) and counts positions"
      " along the row; jaxequiv.model has biases (no key bias), an untied 64-way head, and positions restarting at"
      " each BOS with attention masked at segment boundaries",
      (f"nanoGPT trains on random windows of the BOS-joined training stream ({per_step['nanoGPT']:.0f} predictions"
       f" per step, {100 * bos_share:.1f}% of them the BOS after a period; context crosses sentences); jaxequiv on"
       f" packed whole sentences ({per_step['jaxequiv']:.0f} real predictions per step on average, seed 0)")
      if args.nanogpt_data == "stream" else
      ("nanoGPT trains on jaxequiv's packed batches (same predictions), attending across the BOS boundaries that"
       " jaxequiv masks"),
      "initialisation: each library's own (nanoGPT: N(0, 0.02), scaled residual projections)",
      f"learning-rate schedule: one for both (jaxequiv's linear warm-up over {args.warmup} steps, then cosine to"
      f" {args.end_lr_fraction} x lr at the last step; set on torch's optimizer before every step); nanoGPT's"
      " Shakespeare-char config has the same shape (warm-up 100, cosine to min_lr = lr/10 at lr_decay_iters ="
      " max_iters)",
      f"{args.steps} steps here vs nanoGPT's Shakespeare-char recipe of 2,000 (CPU) to 5,000 (GPU) iterations",
      "float32 on CPU for both; dropout 0 for both",
  ]


def plot(payload: dict, path: str) -> None:
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  groups = [("jaxequiv vs nanoGPT", payload["curves"])] + ([("LM vs iid classifier", payload["iid"])]
                                                          if payload["iid"] else [])
  fig, axes = plt.subplots(1, len(groups), figsize=(5 * len(groups), 3.2), dpi=80, squeeze=False)
  for ax, (title, curves) in zip(axes[0], groups):
    for name, c in curves.items():
      x = [r["step"] for r in c]
      m, s = np.array([r["mean"] for r in c]), np.array([r["std"] for r in c])
      ax.plot(x, m, marker=".", label=name)
      ax.fill_between(x, m - s, m + s, alpha=0.25)
    ax.set_xlabel("step")
    ax.set_ylabel("validation bits/char (mean ± std)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
  fig.tight_layout()
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  fig.savefig(path)
  plt.close(fig)


def render(rec: dict) -> str:
  """OUT.md from the record."""
  d, a = rec["data"], rec["data"]["args"]
  md = ["# jaxequiv vs nanoGPT: validation bits/char on Tiny Shakespeare (`scripts/quality_peers.py`)", "",
        *provenance.header(rec), "",
        f"- Data: {d['data']['train']['sentences']} training sentences ({d['data']['train']['characters']} characters);"
        f" {d['data']['val']['sentences']} validation sentences, {d['data']['val_characters_scored']} characters"
        " scored,"
        " each sentence from its start (BOS, then the sentence), final period included.",
        f"- nanoGPT data: {a['nanogpt_data']}; wall time (s): "
        + ", ".join(f"{k} {v:.0f}" for k, v in d["wall_s"].items()), "",
        *[f"**{h['what']}**: {h['result']}" + "  " for h in rec["headline"]], "",
        f"![curves]({os.path.basename(a['out'])}.png)", "",
        "| step | " + " | ".join(f"{k} (bits/char)" for k in d["curves"]) + " |", "|---" * (len(d["curves"]) + 1) + "|"]
  rows = zip(*d["curves"].values())
  md += [f"| {r[0]['step']} | " + " | ".join(f"{x['mean']:.4f} ± {x['std']:.4f}" for x in r) + " |" for r in rows]
  if d["iid"]:
    md += ["", "| step | predictions seen (seed 0) | " + " | ".join(d["iid"]) + " |",
           "|---" * (len(d["iid"]) + 2) + "|"]
    md += [f"| {r[0]['step']} | {r[0]['predictions_seen_seed0']:,} | "
           + " | ".join(f"{x['mean']:.4f} ± {x['std']:.4f}" for x in r) + " |" for r in zip(*d["iid"].values())]
  md += ["", "What still differs:", ""] + [f"- {x}" for x in d["differences"]]
  return "\n".join(md)


if __name__ == "__main__":
  sys.exit(main())
