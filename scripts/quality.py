"""Model quality benchmarks: grammar entropy floor, Tiny Shakespeare NLL, iid classifier vs LM.

Subcommands (each writes results/<name>.json through jaxequiv.provenance, and the markdown rendered from it):

  synthetic     Train the LM on sentences of the toy grammar until the validation
                NLL is <= 1.01 x the grammar's entropy rate (nats/char), or the step
                budget runs out; report steps and wall time (or how close it got).
  shakespeare   Train the LM on ../shared/data/tinyshakespeare.txt (normalised to
                sentences by corpus.text_file_sentences) for a fixed budget and
                report the validation NLL in nats/char.
  iid_vs_lm     Train the LM, the paired classifier and the iid classifier on the
                grammar and record validation NLL vs number of predictions seen;
                writes results/iid_vs_lm.png and results/iid_vs_lm.md.

Usage:
  python scripts/quality.py synthetic
  python scripts/quality.py shakespeare --text ../shared/data/tinyshakespeare.txt
  python scripts/quality.py iid_vs_lm
  python scripts/quality.py synthetic --steps 2 --num-train 64 --num-val 16 --layers 1 --width 16 \
      --results /tmp/quality   # smoke
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import jax

import jaxequiv
from jaxequiv import bitwise, provenance
from jaxequiv.lm import corpus
from jaxequiv.lm import grammar
from jaxequiv.lm import runs
from jaxequiv.lm import train as tr



def model_text(a: dict) -> str:
  """The architecture and training budget, from the recorded arguments."""
  return (f"jaxequiv.model transformer, {a['layers']} layers, width {a['width']}, {a['heads']} heads, context"
          f" {a['seq_len']}; AdamW lr {a['lr']}, {a['warmup']} warm-up steps, cosine over {a['steps']} steps of"
          f" {a['batch_size']} rows (packed sentences, the training default)")


def write(name: str, started: provenance.Run, args, data: dict, render, headline, inputs=()) -> None:
  rec = provenance.write(started, os.path.join(args.results, name), {"args": vars(args), **data}, model=model_text(vars(args)),
                         seeds=[args.seed], headline=headline, inputs=inputs, render=render)
  print(render(rec))


def model_config(args) -> jaxequiv.ModelConfig:
  return jaxequiv.ModelConfig(num_layers=args.layers, width=args.width, num_heads=args.heads, seq_len=args.seq_len)


# ----------------------------------------------------------------------------- synthetic


def run_synthetic(args, started: provenance.Run) -> None:
  g = grammar.default_grammar()
  h = grammar.entropy_rate(g)
  target = args.target_ratio * h
  train_s = grammar.sample_sentences(g, args.num_train, seed=args.seed)
  val_s = grammar.sample_sentences(g, args.num_val, seed=args.seed + 1_000_003)
  # The grammar's own NLL on this validation sample (the sample's noise around the entropy rate).
  oracle = -sum(grammar.sentence_log_prob(g, s) for s in val_s) / sum(len(s) for s in val_s)
  mcfg = model_config(args)
  tcfg = tr.TrainConfig(steps=args.steps, batch_size=args.batch_size, learning_rate=args.lr,
                        warmup_steps=args.warmup, eval_every=args.eval_every, checkpoint_every=0, seed=args.seed)
  reached = {}

  def stop_at_target(step, state, rec):
    if "val_nats_per_char" in rec and rec["val_nats_per_char"] <= target and not reached:
      reached.update(step=step, time=time.time() - t0, val=rec["val_nats_per_char"])
      raise tr.StopTraining

  t0 = time.time()
  try:
    res = tr.train(mcfg, tcfg, tr.sentence_batches(train_s, mcfg, tcfg), val_sentences=val_s,
                   callbacks=[stop_at_target], progress=args.progress)
    history = res.history
  except tr.StopTraining:
    history = None
  wall = time.time() - t0
  vals = [r for r in (history or [])] if history else []
  payload = {"entropy_rate_nats_per_char": h, "target": target, "oracle_nll_on_val": oracle,
             "model": mcfg.__dict__, "train": tcfg.__dict__, "num_train": len(train_s), "num_val": len(val_s),
             "reached": reached or None, "wall_s": wall}
  if not reached:
    payload["best"] = min((r for r in vals if "val_nats_per_char" in r), key=lambda r: r["val_nats_per_char"])
  ratio = (reached or {}).get("val", payload.get("best", {}).get("val_nats_per_char", float("nan"))) / h
  write("quality_synthetic", started, args, payload, render_synthetic,
        [("synthetic grammar: validation NLL ÷ entropy rate", f"{ratio:.4f} ("
          + (f"target reached at step {reached['step']}" if reached else f"target not reached in {args.steps} steps")
          + ")")])


def render_synthetic(rec: dict) -> str:
  d, a = rec["data"], rec["data"]["args"]
  h, target, oracle, reached = d["entropy_rate_nats_per_char"], d["target"], d["oracle_nll_on_val"], d["reached"]
  md = ["# Synthetic grammar: steps to reach the target ratio of the entropy rate", "", *provenance.header(rec), "",
        f"- Grammar entropy rate H = {h:.4f} nats/char; target {a['target_ratio']} x H = {target:.4f}.",
        f"- The grammar's own NLL on the {d['num_val']} validation sentences: {oracle:.4f} nats/char"
        " (the sample's deviation from H).",
        f"- {d['num_train']} training sentences (fresh samples, seed {a['seed']}).", ""]
  if reached:
    md.append(f"**Reached** validation NLL {reached['val']:.4f} <= {target:.4f} nats/char at step"
              f" {reached['step']} after {reached['time']:.0f} s wall"
              f" ({reached['val'] / h:.4f} x H; {reached['val'] / oracle:.4f} x the grammar's NLL on the same"
              " sentences).")
  else:
    best = d["best"]
    md.append(f"**Not reached** in {a['steps']} steps ({d['wall_s']:.0f} s): best validation NLL"
              f" {best['val_nats_per_char']:.4f} nats/char at step {best['step']} = {best['val_nats_per_char'] / h:.4f}"
              f" x H ({best['val_nats_per_char'] / oracle:.4f} x the grammar's NLL on the same sentences).")
  return "\n".join(md)


# ----------------------------------------------------------------------------- shakespeare


def run_shakespeare(args, started: provenance.Run) -> None:
  provenance.require(args.text, "the Tiny Shakespeare text (pass --text PATH)")
  sentences = alphabet_split(corpus.text_file_sentences(args.text), args.seq_len)
  train_s, val_s = corpus.train_val_split(sentences, args.val_fraction, args.seed)
  mcfg = model_config(args)
  tcfg = tr.TrainConfig(steps=args.steps, batch_size=args.batch_size, learning_rate=args.lr,
                        warmup_steps=args.warmup, eval_every=args.eval_every, checkpoint_every=0, seed=args.seed)
  t0 = time.time()
  res = tr.train(mcfg, tcfg, tr.sentence_batches(train_s, mcfg, tcfg), val_sentences=val_s, progress=args.progress)
  wall = time.time() - t0
  final = runs.final_validation(res.history)
  from jaxequiv.lm import sample  # pylint: disable=import-outside-toplevel
  samples = sample.sample(res.state.params, mcfg, jax.random.key(0), 5, temperature=0.8)
  n_train = sum(len(s) for s in train_s)
  payload = {"final": final, "wall_s": wall, "model": mcfg.__dict__, "train": tcfg.__dict__,
             "train_sentences": len(train_s), "train_chars": n_train, "val_sentences": len(val_s),
             "val_chars": sum(len(s) for s in val_s), "samples": samples,
             "curve": [r for r in res.history if "val_nats_per_char" in r]}
  write("quality_shakespeare", started, args, payload, render_shakespeare,
        [(f"Tiny Shakespeare (normalised): validation NLL after {args.steps} steps",
          f"{final['val_nats_per_char']:.3f} nats/char")], inputs=[args.text])


def render_shakespeare(rec: dict) -> str:
  d, a = rec["data"], rec["data"]["args"]
  final = d["final"]
  md = ["# Tiny Shakespeare: validation NLL after a fixed budget", "", *provenance.header(rec), "",
        f"- Data: {a['text']} via `corpus.text_file_sentences`, sentences over {a['seq_len']} characters split at"
        f" spaces; hashed train/val split ({a['val_fraction']}): {d['train_sentences']} train sentences"
        f" ({d['train_chars']} characters), {d['val_sentences']} validation ({d['val_chars']} characters).",
        f"- Budget: {a['steps']} steps of {a['batch_size']} packed rows, {d['wall_s']:.0f} s wall.", "",
        f"**Validation NLL: {final['val_nats_per_char']:.4f} nats/char ({final['val_bits_per_char']:.4f}"
        " bits/char)** over every character of the validation sentences, final period included.", "",
        "| step | val nats/char | val bits/char |", "|---|---|---|"]
  md += [f"| {r['step']} | {r['val_nats_per_char']:.4f} | {r['val_bits_per_char']:.4f} |" for r in d["curve"]]
  md += ["", "Samples (temperature 0.8):", ""] + [f"- `{x}`" for x in d["samples"]]
  return "\n".join(md)


def alphabet_split(sentences, max_len):
  return jaxequiv.validate_sentences(sentences, max_len=max_len, too_long="split")


# ----------------------------------------------------------------------------- iid vs LM


def run_iid_vs_lm(args, started: provenance.Run) -> None:
  g = grammar.default_grammar()
  h = grammar.entropy_rate(g)
  train_s = grammar.sample_sentences(g, args.num_train, seed=args.seed)
  val_s = grammar.sample_sentences(g, args.num_val, seed=args.seed + 1_000_003)
  mcfg = model_config(args)
  runs = {}
  for label, objective, mode in (("LM", "lm", "paired"), ("classifier, paired", "classification", "paired"),
                                 ("classifier, iid", "classification", "iid")):
    tcfg = tr.TrainConfig(steps=args.steps, batch_size=args.batch_size, learning_rate=args.lr,
                          warmup_steps=args.warmup, eval_every=args.eval_every, checkpoint_every=0,
                          seed=args.seed, objective=objective, mode=mode)
    t0 = time.time()
    res = tr.train(mcfg, tcfg, tr.sentence_batches(train_s, mcfg, tcfg), val_sentences=val_s,
                   progress=args.progress)
    runs[label] = {"wall_s": time.time() - t0, "predictions_seen": res.predictions_seen,
                   "curve": [r for r in res.history if "val_nats_per_char" in r], "params": res.state.params}
    print(label, runs[label]["wall_s"], runs[label]["curve"][-1], flush=True)
  paired_equal = bitwise.compare_bits(runs["LM"]["params"], runs["classifier, paired"]["params"]).equal
  for r in runs.values():
    del r["params"]

  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  fig, ax = plt.subplots(figsize=(5, 3.2), dpi=80)
  styles = {"LM": dict(lw=3, alpha=0.5), "classifier, paired": dict(ls="--", lw=1.5), "classifier, iid": dict(lw=1.5)}
  for label, r in runs.items():
    ax.plot([c["predictions_seen"] for c in r["curve"]], [c["val_nats_per_char"] for c in r["curve"]],
            label=label, **styles[label])
  ax.axhline(h, color="gray", lw=0.8, ls=":", label="entropy rate")
  ax.set_xlabel("next-character predictions seen")
  ax.set_ylabel("validation NLL (nats/char)")
  ax.set_ylim(h * 0.9, 1.05 * max(c["val_nats_per_char"] for r in runs.values() for c in r["curve"][1:]))
  ax.legend(fontsize=8)
  ax.set_title("LM vs classifier on the toy grammar", fontsize=9)
  fig.tight_layout()
  os.makedirs(args.results, exist_ok=True)
  fig.savefig(os.path.join(args.results, "iid_vs_lm.png"))

  final = {k: r["curve"][-1]["val_nats_per_char"] for k, r in runs.items()}
  write("iid_vs_lm", started, args, {"entropy_rate": h, "paired_bitwise_equal": paired_equal, "runs": runs,
                                     "num_train": len(train_s), "num_val": len(val_s)}, render_iid_vs_lm,
        [(f"toy grammar, final validation NLL after {args.steps} steps (one seed): " + ", ".join(final),
          ", ".join(f"{v:.4f}" for v in final.values()) + f"; paired classifier bitwise equal to the LM: {paired_equal}")])


def render_iid_vs_lm(rec: dict) -> str:
  d, a = rec["data"], rec["data"]["args"]
  runs = d["runs"]
  md = ["# iid classifier vs LM: validation NLL vs predictions seen", "", *provenance.header(rec), "",
        f"- Data: toy grammar, {d['num_train']} training sentences, {d['num_val']} validation (independent samples);"
        f" entropy rate {d['entropy_rate']:.4f} nats/char.",
        f"- Each step of every run trains on the same number of next-character predictions (the LM batch of"
        f" {a['batch_size']} rows; `data.classification_batches` matches it).",
        "- LM: rows are sentences. Paired classifier: every prefix of the same sentences, packed into the same rows."
        " iid classifier: the same number of (prefix, next character) examples drawn without replacement from all"
        " prefixes of all training sentences, packed (about one row per example, so ~mean-length x the LM's"
        " compute per step).",
        f"- Paired classifier's final params bitwise equal to the LM's: **{d['paired_bitwise_equal']}**.", "",
        "![curves](iid_vs_lm.png)", "",
        "| predictions seen | " + " | ".join(runs) + " |", "|---" * (len(runs) + 1) + "|"]
  curves = list(runs.values())
  for i, c in enumerate(curves[0]["curve"]):
    md.append(f"| {c['predictions_seen']} | " + " | ".join(
        f"{r['curve'][i]['val_nats_per_char']:.4f}" + (f" ({r['curve'][i]['predictions_seen']})"
                                                     if r["curve"][i]["predictions_seen"] != c["predictions_seen"]
                                                     else "") for r in curves) + " |")
  md += ["", "Wall time (s): " + ", ".join(f"{k} {v['wall_s']:.0f}" for k, v in runs.items()) + ".",
         "", f"- One seed per run ({a['seed']}): run-to-run noise is not measured here. Each iid example needs its"
         " own row, so its steps cost more compute and time for the same number of predictions."]
  return "\n".join(md)


# ----------------------------------------------------------------------------- main


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("which", choices=("synthetic", "shakespeare", "iid_vs_lm"))
  p.add_argument("--layers", type=int, default=2)
  p.add_argument("--width", type=int, default=128)
  p.add_argument("--heads", type=int, default=4)
  p.add_argument("--seq-len", type=int, default=None, help="default 48 (synthetic, iid_vs_lm) or 64 (shakespeare)")
  p.add_argument("--steps", type=int, default=None)
  p.add_argument("--batch-size", type=int, default=None)
  p.add_argument("--lr", type=float, default=3e-3)
  p.add_argument("--warmup", type=int, default=100)
  p.add_argument("--eval-every", type=int, default=None)
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--num-train", type=int, default=100_000)
  p.add_argument("--num-val", type=int, default=2000)
  p.add_argument("--target-ratio", type=float, default=1.01)
  p.add_argument("--text", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data",
                                                "tinyshakespeare.txt"))
  p.add_argument("--val-fraction", type=float, default=0.1)
  p.add_argument("--progress", action="store_true")
  p.add_argument("--results", default="results", help="the folder that receives NAME.json and NAME.md (and the plot)")
  args = p.parse_args(argv)
  defaults = {"synthetic": dict(seq_len=48, steps=3000, batch_size=32, eval_every=100),
              "shakespeare": dict(seq_len=64, steps=1500, batch_size=32, eval_every=250),
              "iid_vs_lm": dict(seq_len=48, steps=400, batch_size=4, eval_every=25)}[args.which]
  for k, v in defaults.items():
    if getattr(args, k) is None:
      setattr(args, k, v)
  started = provenance.start([sys.argv[0], *(argv if argv is not None else sys.argv[1:])])
  {"synthetic": run_synthetic, "shakespeare": run_shakespeare, "iid_vs_lm": run_iid_vs_lm}[args.which](args, started)
  return 0


if __name__ == "__main__":
  sys.exit(main())
