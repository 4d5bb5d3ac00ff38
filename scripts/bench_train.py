"""Training throughput: tokens/s of the jitted train step, LM vs packed classification.

Presets:
  cpu  : 4 layers, 4 heads, width 128, context 64, batch 12, float32 (default).
  h100 : 6 layers, 6 heads, width 384, context 256, batch 64, bfloat16 (for a GPU).

Tokens/s counts every ``[R, T]`` input position processed (R*T per step);
predictions/s counts the real next-character predictions (the LM mask; the
same number of examples for the packed classifier). MFU uses

    FLOPs per token ~ 6 * N + 12 * L * D * T

(N: parameters excluding the embedding lookups; the second term is attention's
QK^T and AV matmuls, forward + backward, as in the PaLM paper's appendix B),
against a peak of 989 TFLOP/s (H100 SXM, bf16 dense) on GPU. On CPU the
achieved GFLOP/s are reported instead.

Usage:
  python scripts/bench_train.py                      # CPU preset, writes results/bench_train.{md,json}
  python scripts/bench_train.py --preset h100 --out results/bench_train_h100
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import jax
import numpy as np

import jaxequiv
from jaxequiv import provenance, training
from jaxequiv.lm import corpus
from jaxequiv.lm import data
from jaxequiv.lm import train as tr

PRESETS = {
    "cpu": dict(num_layers=4, num_heads=4, width=128, seq_len=64, batch_size=12, dtype="float32"),
    "h100": dict(num_layers=6, num_heads=6, width=384, seq_len=256, batch_size=64, dtype="bfloat16"),
    "tiny": dict(num_layers=1, num_heads=2, width=32, seq_len=32, batch_size=4, dtype="float32"),  # smoke test
}
H100_BF16_PEAK = 989e12


def flops_per_token(params, cfg: jaxequiv.ModelConfig) -> float:
  n = sum(x.size for x in jax.tree.leaves(params))
  n -= params["embed"]["embedding"].size + params["pos_embed"].size
  return 6.0 * n + 12.0 * cfg.num_layers * cfg.width * cfg.seq_len


def prepare(objective: str, preset: dict, steps: int, warmup: int, seed: int = 0) -> dict:
  """Compiles the step (timed with the first step) and builds the batches."""
  cfg = jaxequiv.ModelConfig(num_layers=preset["num_layers"], num_heads=preset["num_heads"], width=preset["width"],
                             seq_len=preset["seq_len"], dtype=preset["dtype"], attention=preset.get("attention", "auto"))
  b = preset["batch_size"]
  tcfg = tr.TrainConfig(steps=steps + warmup, batch_size=b, warmup_steps=1, objective=objective, seed=seed)
  sentences = corpus.load_sentences("builtin", max_len=cfg.seq_len)
  host = list(itertools_islice(tr.sentence_batches(sentences, cfg, tcfg)(0), steps + warmup))
  state = tr.init_state(jax.random.key(seed), cfg, tcfg)
  step = jax.jit(training.make_train_step(tr.make_loss_fn(objective, cfg), training.make_optimizer(tcfg)),
                 donate_argnums=0)
  batches = [jax.device_put(x) for x in host]
  t = time.perf_counter()
  state, m = step(state, batches[0])
  jax.block_until_ready(m)
  return dict(objective=objective, cfg=cfg, step=step, state=state, batches=batches, host=host,
              compile_s=time.perf_counter() - t, times=[])


def run_one(run: dict, i: int, warmup: int) -> None:
  t = time.perf_counter()
  run["state"], m = run["step"](run["state"], run["batches"][i])
  jax.block_until_ready(m)
  if i >= warmup:
    run["times"].append(time.perf_counter() - t)


def summarize(run: dict) -> dict:
  dt = float(np.median(run["times"]))
  r, t_ = np.shape(run["host"][0][0])
  preds = float(np.mean([tr.num_predictions(x) for x in run["host"]]))
  fpt = flops_per_token(run["state"].params, run["cfg"])
  out = {"objective": run["objective"] if run["objective"] == "lm" else "classification (packed)",
         "rows": int(r), "seq_len": int(t_), "median_step_ms": dt * 1e3,
         "tokens_per_s": r * t_ / dt, "predictions_per_s": preds / dt,
         "compile_plus_first_step_s": run["compile_s"], "timed_steps": len(run["times"]),
         "params": int(sum(x.size for x in jax.tree.leaves(run["state"].params))),
         "flops_per_token": fpt, "achieved_tflops": fpt * r * t_ / dt / 1e12}
  if jax.default_backend() == "gpu":
    out["mfu_vs_h100_bf16_peak"] = out["achieved_tflops"] * 1e12 / H100_BF16_PEAK
  return out


def itertools_islice(it, n):
  import itertools  # pylint: disable=import-outside-toplevel
  return itertools.islice(it, n)


def render(rec: dict) -> str:
  """results/bench_train.md from its record."""
  d = rec["data"]
  lines = [
      "# Training throughput (`scripts/bench_train.py`)", "", *provenance.header(rec),
      f"- Preset `{d['preset']}`: {d['config']}",
      "- Tokens/s = R*T input positions per second; predictions/s = real next-character predictions per second;"
      " median step time after warm-up steps; LM and classification steps alternate, so load changes hit both.",
      "", "| objective | R x T | median step (ms) | tokens/s | predictions/s | TFLOP/s | compile+1st step (s) |",
      "|---|---|---|---|---|---|---|",
  ]
  for r in d["results"]:
    lines.append(f"| {r['objective']} | {r['rows']} x {r['seq_len']} | {r['median_step_ms']:.1f} |"
                 f" {r['tokens_per_s']:.0f} | {r['predictions_per_s']:.0f} | {r['achieved_tflops']:.4f} |"
                 f" {r['compile_plus_first_step_s']:.1f} |")
  if any("mfu_vs_h100_bf16_peak" in r for r in d["results"]):
    lines += ["", f"MFU (vs {H100_BF16_PEAK / 1e12:.0f} TFLOP/s bf16 dense): " +
              ", ".join(f"{r['objective']}: {100 * r['mfu_vs_h100_bf16_peak']:.1f}%" for r in d["results"])]
  if rec["provenance"]["backend"] == "cpu":
    h = PRESETS["h100"]
    lines += ["", f"No accelerator in this run (backend cpu). On a GPU: `python scripts/bench_train.py --preset h100"
              f" --out results/bench_train_h100` ({h['num_layers']} layers, width {h['width']}, context {h['seq_len']},"
              f" batch {h['batch_size']}, {h['dtype']}; MFU against {H100_BF16_PEAK / 1e12:.0f} TFLOP/s)."]
  return "\n".join(lines)


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--preset", choices=sorted(PRESETS), default="cpu")
  p.add_argument("--steps", type=int, default=50, help="timed steps per objective")
  p.add_argument("--warmup", type=int, default=3, help="untimed steps after the compiling one")
  p.add_argument("--out", default="results/bench_train", help="writes OUT.md and OUT.json")
  p.add_argument("--attention", default="auto", choices=jaxequiv.model.ATTENTION, help="attention implementation")
  args = p.parse_args(argv)
  preset = dict(PRESETS[args.preset], attention=args.attention)
  started = provenance.start([sys.argv[0], *(argv if argv is not None else sys.argv[1:])])
  runs = [prepare(objective, preset, args.steps, args.warmup) for objective in ("lm", "classification")]
  for i in range(1, args.steps + args.warmup):  # alternate the two, so load changes hit both alike
    for run in runs:
      run_one(run, i, args.warmup)
  rows = [summarize(run) for run in runs]
  for row in rows:
    print(json.dumps(row), flush=True)
  c = preset
  rec = provenance.write(
      started, args.out, {"preset": args.preset, "config": preset, "results": rows}, seeds=[0],
      render=render,
      model=f"jaxequiv.model transformer, {c['num_layers']} layers, width {c['width']}, {c['num_heads']} heads,"
            f" T={c['seq_len']}, {c['batch_size']} rows, {c['dtype']}; {args.warmup} warm-up + {args.steps} timed AdamW"
            " steps per objective (a throughput benchmark: no quality reported)",
      headline=[(f"training step, {c['num_layers']}L/{c['width']}, T={c['seq_len']}, {c['batch_size']} rows: "
                 + ", ".join(r["objective"] for r in rows), ", ".join(f"{r['median_step_ms']:.1f} ms" for r in rows))])
  print(render(rec))
  return 0


if __name__ == "__main__":
  sys.exit(main())
