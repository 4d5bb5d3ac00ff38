"""How often the three samplers produce the same sentence from the same key, on a trained run.

* no-cache LM sampler vs generation by classification: expected identical (same logits, bit for bit).
* KV-cached vs no-cache LM sampler: logits differ by float32 rounding, so a sample can differ
  where two candidates' perturbed scores tie to within ~1e-6.

The script trains its model itself, through the LM wing's ``jaxequiv.lm.experiment.run`` (the same run as
``python -m jaxequiv train --data synthetic --steps 300 --layers 2 --width 64 --seq-len 48``), in a temporary
directory, so a rerun needs nothing but the command:

  python scripts/sample_agreement.py --out results/sample_agreement
  python scripts/sample_agreement.py --steps 2 --width 16 --num-samples 4 --out /tmp/sample_agreement   # smoke
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile

import jax

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from jaxequiv import model, provenance, rundir  # noqa: E402
from jaxequiv.lm import experiment, runs  # noqa: E402
from jaxequiv.lm import sample as sampling  # noqa: E402
from jaxequiv.lm import train as train_lib  # noqa: E402
from jaxequiv.lm.configs import DataConfig  # noqa: E402


def render(rec: dict) -> str:
  """results/sample_agreement.md from its record."""
  d = rec["data"]
  lines = ["# Sampler agreement on a trained model", "", *provenance.header(rec),
           f"- training run (its recorded config, trained by this script in a temporary directory): {d['train']}", "",
           "| temperature | top_k | samples | KV cache == no cache | by classification == no cache | finished |",
           "|---:|---:|---:|---:|---:|---:|"]
  for r in d["rows"]:
    lines.append(f"| {r['temperature']} | {r['top_k']} | {r['n']} | {r['cached_eq_nocache']} |"
                 f" {r['classification_eq_nocache']} | {r['finished']} |")
  lines += ["", f"Examples (no cache, temperature 1): {d['rows'][0]['examples']}"]
  return "\n".join(lines)


def train_run(out_dir: str, args: argparse.Namespace) -> dict:
  """Trains the LM that the samplers are compared on into ``out_dir``; returns ``experiment.run``'s summary."""
  cfg = experiment.ExperimentConfig(
      model=model.ModelConfig(num_layers=args.layers, width=args.width, num_heads=args.heads, seq_len=args.seq_len),
      train=train_lib.TrainConfig(steps=args.steps, eval_every=0, seed=args.train_seed),
      data=DataConfig("synthetic"), out_dir=out_dir, num_samples=0, progress=False)
  return experiment.run(cfg, log=None)


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--steps", type=int, default=300, help="training steps of the LM (synthetic grammar, batch 32)")
  p.add_argument("--layers", type=int, default=2)
  p.add_argument("--width", type=int, default=64)
  p.add_argument("--heads", type=int, default=4)
  p.add_argument("--seq-len", type=int, default=48)
  p.add_argument("--train-seed", type=int, default=0)
  p.add_argument("--num-samples", type=int, default=512)
  p.add_argument("--seed", type=int, default=42, help="the sampling key")
  p.add_argument("--out", default="results/sample_agreement", help="writes OUT.json and OUT.md")
  args = p.parse_args(argv)
  run = provenance.start([sys.argv[0], *(argv if argv is not None else sys.argv[1:])])
  with tempfile.TemporaryDirectory(prefix="sample_agreement_") as tmp:
    out_dir = os.path.join(tmp, "run")
    summary = train_run(out_dir, args)
    params, config = runs.load_params(out_dir)
    train_cfg = {k: v for k, v in rundir.read_config(out_dir).items() if k != "model"}
  apply_fn = model.make_apply(config)
  rows = []
  for temperature, top_k in [(1.0, None), (0.7, 5), (1.5, None), (0.0, None)]:
    key = jax.random.key(args.seed)
    kw = dict(temperature=temperature, top_k=top_k)
    cached = sampling.sample(params, config, key, args.num_samples, use_cache=True, **kw)
    full = sampling.sample(params, config, key, args.num_samples, use_cache=False, **kw)
    clf = sampling.generate_by_classification(params, apply_fn, key, args.num_samples, seq_len=config.seq_len, **kw)
    row = dict(temperature=temperature, top_k=top_k, n=args.num_samples,
               cached_eq_nocache=sum(a == b for a, b in zip(cached, full)),
               classification_eq_nocache=sum(a == b for a, b in zip(clf, full)),
               finished=sum(s.endswith(".") for s in full), examples=full[:3])
    print(json.dumps(row), flush=True)
    rows.append(row)
  t = train_cfg.get("train", {})
  final = summary["final"] or {}
  provenance.write(
      run, args.out, {"config": str(config), "train": train_cfg, "final_validation": final, "rows": rows},
      seeds=[args.train_seed, args.seed], render=render,
      model=f"jaxequiv.model transformer {config.num_layers} layers, width {config.width}, {config.num_heads} heads,"
            f" T={config.seq_len}, trained {t['steps']} steps of {t['batch_size']} rows on the synthetic grammar"
            f" (final validation {final.get('val_nats_per_char', float('nan')):.4f} nats/char)",
      headline=[("same key, same sentence: by classification == no-cache LM sampler", ", ".join(
          f"{r['classification_eq_nocache']}/{r['n']}" for r in rows)),
                ("KV-cached == no-cache LM sampler", ", ".join(f"{r['cached_eq_nocache']}/{r['n']}" for r in rows))])
  return 0


if __name__ == "__main__":
  sys.exit(main())
