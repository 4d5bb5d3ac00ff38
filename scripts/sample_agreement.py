"""How often the three samplers produce the same sentence from the same key, on a trained run.

* no-cache LM sampler vs generation by classification: expected identical (same logits, bit for bit).
* KV-cached vs no-cache LM sampler: logits differ by float32 rounding, so a sample can differ
  where two candidates' perturbed scores tie to within ~1e-6.

Usage:
  python -m jaxequiv train --data synthetic --steps 300 --layers 2 --width 64 --seq-len 48 --out /tmp/run_s
  python scripts/sample_agreement.py --checkpoint /tmp/run_s --out results/sample_agreement
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys

import jax

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from jaxequiv import checkpoint, model  # noqa: E402
from jaxequiv.lm import sample as sampling  # noqa: E402
from jaxequiv.lm import train  # noqa: E402


def main() -> int:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--checkpoint", required=True)
  p.add_argument("--num-samples", type=int, default=512)
  p.add_argument("--seed", type=int, default=42)
  p.add_argument("--out", default=None)
  args = p.parse_args()
  params, config = train.load_params(args.checkpoint)
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
  if args.out:
    info = dict(date=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                command="python " + " ".join(sys.argv), jax=jax.__version__, backend=jax.default_backend(),
                config=str(config))
    info["train"] = {k: v for k, v in checkpoint.read_config(args.checkpoint).items() if k != "model"}
    with open(args.out + ".json", "w") as f:
      json.dump(dict(info=info, rows=rows), f, indent=2)
    lines = ["# Sampler agreement on a trained model", "",
             f"- date: {info['date']}; jax {info['jax']}, backend {info['backend']} (no GPU lent)",
             f"- command: `{info['command']}`", f"- model: {info['config']}",
             f"- training run (its config.json, e.g. from the command in this script's docstring): {info['train']}", "",
             "| temperature | top_k | samples | KV cache == no cache | by classification == no cache | finished |",
             "|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
      lines.append(f"| {r['temperature']} | {r['top_k']} | {r['n']} | {r['cached_eq_nocache']} |"
                   f" {r['classification_eq_nocache']} | {r['finished']} |")
    lines += ["", f"Examples (no cache, temperature 1): {rows[0]['examples']}"]
    with open(args.out + ".md", "w") as f:
      f.write("\n".join(lines) + "\n")
  return 0


if __name__ == "__main__":
  sys.exit(main())
