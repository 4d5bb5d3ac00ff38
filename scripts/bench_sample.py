"""Sampling speed with and without the KV cache: characters per second.

A randomly initialised transformer (4 layers, width 128 by default) samples 64
sentences at once. The '.' logit is pushed down by 1e9 so that every sample runs
to the character budget (otherwise random models stop at random lengths).

Both samplers do fixed-shape work at every step, independent of the position:
the cached step attends over the whole ``[B, T]`` cache (masked) and the
no-cache step runs the model on the whole ``[B, T]`` padded row. So characters/s
measured over the first ``max_len`` positions is the rate of a full-context run;
the no-cache sampler is timed over fewer positions to keep the benchmark short.

Usage:
  python scripts/bench_sample.py                      # contexts 64 and 256
  python scripts/bench_sample.py --contexts 256 --repeats 3 --out results/bench_sample
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import jax
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from jaxequiv import alphabet, model, provenance  # noqa: E402
from jaxequiv.lm import sample as sampling  # noqa: E402


def _time(fn, repeats: int) -> tuple[float, list[float]]:
  """(median seconds, all times) over ``repeats`` calls (call once before, to compile)."""
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(fn())
    times.append(time.perf_counter() - start)
  return float(np.median(times)), times


def bench(seq_len: int, batch: int, args) -> list[dict]:
  config = model.ModelConfig(num_layers=args.layers, width=args.width, num_heads=args.heads, seq_len=seq_len)
  params = model.init(jax.random.key(0), config)
  params = {**params, "head": dict(params["head"], bias=params["head"]["bias"].at[alphabet.PERIOD].add(-1e9))}
  rows = []
  for use_cache in (True, False):
    max_len = seq_len if use_cache else min(seq_len, args.no_cache_positions)
    key = jax.random.key(1)
    fn = lambda: sampling.sample_ids(params, config, key, batch, max_len=max_len, use_cache=use_cache)  # noqa: E731
    samples = jax.block_until_ready(fn())  # compiles
    chars = int(np.sum(np.asarray(samples.lengths)))
    assert chars == batch * max_len, "every sample runs to max_len"
    seconds, times = _time(fn, args.repeats)
    row = dict(seq_len=seq_len, use_cache=use_cache, positions=max_len, batch=batch, chars=chars,
               seconds=seconds, times=[round(t, 4) for t in times], chars_per_s=chars / seconds)
    print(json.dumps(row), flush=True)
    rows.append(row)
  return rows


def render(rec: dict) -> str:
  """results/bench_sample.md from its record."""
  d = rec["data"]
  lines = ["# Sampling speed: KV cache vs no cache", "", *provenance.header(rec), "",
           "| context T | batch | sampler | positions timed | chars | median s | chars/s | speed-up |",
           "|---:|---:|---|---:|---:|---:|---:|---:|"]
  for r in d["rows"]:
    key = str(r["seq_len"]) + "/" + str(r["batch"])
    s = f"{d['speedups'][key]:.1f}x" if r["use_cache"] else ""
    lines.append(f"| {r['seq_len']} | {r['batch']} | {'KV cache' if r['use_cache'] else 'no cache'} | {r['positions']} |"
                 f" {r['chars']} | {r['seconds']:.3f} | {r['chars_per_s']:.0f} | {s} |")
  lines += ["", "Both samplers do the same work at every position (fixed shapes), so chars/s over the first"
            " positions is the full-context rate; the no-cache sampler is timed over fewer positions to keep"
            " the run short. Median of the timed repeats after one compile call. The CPU is shared with other jobs"
            " (load average above): timings are noisy."]
  return "\n".join(lines)


def main() -> int:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--contexts", type=int, nargs="+", default=[64, 256])
  p.add_argument("--layers", type=int, default=4)
  p.add_argument("--width", type=int, default=128)
  p.add_argument("--heads", type=int, default=4)
  p.add_argument("--batch", type=int, nargs="+", default=[64], help="samples per call; several values: one run each")
  p.add_argument("--repeats", type=int, default=3)
  p.add_argument("--no-cache-positions", type=int, default=32,
                 help="positions the no-cache sampler is timed over (its per-step cost does not depend on position)")
  p.add_argument("--out", default=None, help="write OUT.json and OUT.md")
  args = p.parse_args()

  run = provenance.start()
  rows = [r for t in args.contexts for b in args.batch for r in bench(t, b, args)]
  speedups = {}
  for t in args.contexts:
    for b in args.batch:
      cached, full = (next(r for r in rows if r["seq_len"] == t and r["batch"] == b and r["use_cache"] == c)
                      for c in (True, False))
      speedups[f"{t}/{b}"] = cached["chars_per_s"] / full["chars_per_s"]
      print(f"context {t}, batch {b}: KV cache {cached['chars_per_s']:.0f} chars/s, no cache"
            f" {full['chars_per_s']:.0f} chars/s, speed-up {speedups[f'{t}/{b}']:.1f}x")
  if args.out:
    provenance.write(
        run, args.out, dict(args=vars(args), rows=rows, speedups=speedups), seeds=[0, 1], render=render,
        model=f"jaxequiv.model transformer, {args.layers} layers, width {args.width}, {args.heads} heads, float32,"
              " random init (untrained) with '.' suppressed so every sample runs to its budget",
        headline=[(f"sampling, T={k.split('/')[0]}, batch {k.split('/')[1]}: KV cache vs none",
                   f"{v:.3g}x faster") for k, v in speedups.items()])
  return 0


if __name__ == "__main__":
  sys.exit(main())
