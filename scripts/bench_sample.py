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
import datetime
import json
import os
import platform
import subprocess
import sys
import time

import jax
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from jaxequiv import alphabet, model  # noqa: E402
from jaxequiv.lm import sample as sampling  # noqa: E402


def _cpu_model() -> str:
  try:
    out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    return next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name"))
  except Exception:  # pylint: disable=broad-except
    return platform.processor() or "unknown"


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

  info = dict(date=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
              command="python " + " ".join(sys.argv), jax=jax.__version__, backend=jax.default_backend(),
              devices=str(jax.devices()), nproc=os.cpu_count(), cpu=_cpu_model(),
              loadavg_start=os.getloadavg())
  print(json.dumps(info), flush=True)
  rows = [r for t in args.contexts for b in args.batch for r in bench(t, b, args)]
  info["loadavg_end"] = os.getloadavg()
  speedups = {}
  for t in args.contexts:
    for b in args.batch:
      cached, full = (next(r for r in rows if r["seq_len"] == t and r["batch"] == b and r["use_cache"] == c)
                      for c in (True, False))
      speedups[f"{t}/{b}"] = cached["chars_per_s"] / full["chars_per_s"]
      print(f"context {t}, batch {b}: KV cache {cached['chars_per_s']:.0f} chars/s, no cache"
            f" {full['chars_per_s']:.0f} chars/s, speed-up {speedups[f'{t}/{b}']:.1f}x")
  if args.out:
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out + ".json", "w") as f:
      json.dump(dict(info=info, args=vars(args), rows=rows, speedups=speedups), f, indent=2)
    lines = [
        "# Sampling speed: KV cache vs no cache", "",
        f"- date: {info['date']}", f"- command: `{info['command']}`",
        f"- machine: {info['nproc']} CPUs, {info['cpu']}; backend {info['backend']} ({info['devices']})",
        f"- jax {info['jax']}; load average (1, 5, 15 min) at start {tuple(round(x, 1) for x in info['loadavg_start'])},"
        f" end {tuple(round(x, 1) for x in info['loadavg_end'])}"
        " (the CPU is shared with other jobs: timings are noisy)",
        f"- model: {args.layers} layers, width {args.width}, {args.heads} heads, float32, random init with '.'"
        f" suppressed so every sample runs to its budget; {args.batch} samples per batch", "",
        "| context T | batch | sampler | positions timed | chars | median s | chars/s | speed-up |",
        "|---:|---:|---|---:|---:|---:|---:|---:|"]
    for r in rows:
      key = str(r["seq_len"]) + "/" + str(r["batch"])
      s = f"{speedups[key]:.1f}x" if r["use_cache"] else ""
      lines.append(f"| {r['seq_len']} | {r['batch']} | {'KV cache' if r['use_cache'] else 'no cache'} | {r['positions']} |"
                   f" {r['chars']} | {r['seconds']:.3f} | {r['chars_per_s']:.0f} | {s} |")
    lines += ["", "Both samplers do the same work at every position (fixed shapes), so chars/s over the first"
              " positions is the full-context rate; the no-cache sampler is timed over fewer positions to keep"
              " the run short. Median of the timed repeats after one compile call."]
    with open(args.out + ".md", "w") as f:
      f.write("\n".join(lines) + "\n")
  return 0


if __name__ == "__main__":
  sys.exit(main())
