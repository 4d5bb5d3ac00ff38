"""Where the CPU training step's time goes: ops, forward against backward against the optimizer, dispatch.

At nanoGPT's CPU config (``bench_peers.PRESETS["cpu"][0]``: 4 layers, width 128,
4 heads, T=64, batch 12, float32; the same AdamW settings) and on one packed LM
batch of the builtin corpus (``jaxequiv.lm.corpus`` / ``jaxequiv.lm.data``), compiles
three programs of the library's own loss and step:

* forward: ``jit(loss)`` (``jaxequiv.lm.train.make_loss_fn("lm", ...)``);
* forward + backward: ``jit(value_and_grad(loss))``;
* full step: ``training.jit_train_step(training.make_train_step(loss, AdamW))``
  (state donated), and the same with ``steps_per_call=8`` (one ``lax.scan``
  dispatch runs 8 steps).

For each it counts the optimized HLO's instructions by opcode (fused
computations included; ``show_lowering.opcodes``), the top-level instructions
of the entry computation (on CPU each one that is not plumbing -- parameter,
constant, tuple, get-tuple-element, bitcast -- is one kernel / thunk run per
step), and XLA's ``cost_analysis()`` flops and bytes; then times each program
``--repeats`` times (median and interquartile range, compile excluded), and a
trivial jitted function (the floor of one dispatch). Load averages are recorded
before and after: the machine is shared, so absolute times move with the load;
read the ratios. Writes ``results/profile_step.{json,md}``.

  python scripts/profile_step.py --repeats 30
"""

from __future__ import annotations

import argparse
import collections
import glob
import json
import os
import re
import sys
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_peers import BETAS, CLIP, LR, PRESETS, WD  # noqa: E402  (the benchmark's config, not a copy)
from show_lowering import opcodes  # noqa: E402

import jaxequiv  # noqa: E402
from jaxequiv import provenance, training  # noqa: E402
from jaxequiv.lm import corpus, data  # noqa: E402
from jaxequiv.lm import train as tr  # noqa: E402

PLUMBING = {"parameter", "constant", "tuple", "get-tuple-element", "bitcast"}
_ENTRY_OP = re.compile(r"^\s*(?:ROOT\s+)?%?[\w.\-]+\s*=\s*[^=]*?\s(\w[\w-]*)\(")
BENCH_PEERS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "results", "bench_peers.json")


def entry_opcodes(hlo_text: str) -> collections.Counter:
  """Opcode counts of the ENTRY computation's top-level instructions (what the CPU runtime dispatches)."""
  counts, inside = collections.Counter(), False
  for line in hlo_text.splitlines():
    if line.startswith("ENTRY"):
      inside = True
    elif inside and line.startswith("}"):
      break
    elif inside and (m := _ENTRY_OP.search(line)):
      counts[m.group(1)] += 1
  return counts


def cost(compiled) -> dict:
  """XLA's flops and bytes accessed of a compiled program."""
  c = compiled.cost_analysis()
  c = c[0] if isinstance(c, (list, tuple)) else c
  return {"flops": float(c.get("flops", 0.0)), "bytes_accessed": float(c.get("bytes accessed", 0.0))}


def describe(compiled) -> dict:
  text = compiled.as_text()
  all_ops, entry = opcodes(text), entry_opcodes(text)
  kernels = {op: n for op, n in entry.items() if op not in PLUMBING}
  return {"instructions": sum(all_ops.values()), "ops": dict(all_ops.most_common()),
          "entry_ops": dict(entry.most_common()), "kernels": sum(kernels.values()),
          "kernel_ops": dict(collections.Counter(kernels).most_common()), **cost(compiled)}


_META = re.compile(r'op_name="([^"]*)"')
_BLOCK = re.compile(r"block_\d+/")


def entry_metadata(hlo_text: str) -> dict[str, str]:
  """ENTRY instruction name -> its ``op_name`` metadata (the JAX source op; "" if none)."""
  names, inside = {}, False
  for line in hlo_text.splitlines():
    if line.startswith("ENTRY"):
      inside = True
    elif inside and line.startswith("}"):
      break
    elif inside and (m := re.match(r"^\s*(?:ROOT\s+)?%?([\w.\-]+)\s*=", line)):
      meta = _META.search(line)
      names[m.group(1)] = meta.group(1) if meta else ""
  return names


def phase(op_name: str) -> str:
  """forward (``jvp``), backward (``transpose(jvp(...))``) or optimizer (neither) of a step's source op."""
  if "transpose(" in op_name:
    return "backward"
  return "forward" if "jvp(" in op_name else "optimizer and metrics"


def kernel_times(call, hlo_text: str, calls: int) -> dict:
  """Per-kernel time (ms per call, summed over the runtime's threads) from a ``jax.profiler`` trace of ``calls`` calls.

  Trace events are matched to the ENTRY instructions by name; each is labelled
  with its phase and its source op (``op_name`` without the layer index, so
  the 4 blocks' copies of one op add up).
  """
  from jax.profiler import ProfileData  # pylint: disable=import-outside-toplevel
  meta = entry_metadata(hlo_text)
  with tempfile.TemporaryDirectory() as d:
    with jax.profiler.trace(d):
      for _ in range(calls):
        jax.block_until_ready(call())
    data = ProfileData.from_file(glob.glob(os.path.join(d, "**", "*.xplane.pb"), recursive=True)[0])
  ns = collections.Counter()
  for plane in data.planes:
    for line in plane.lines:
      for ev in line.events:
        if ev.name in meta:
          ns[ev.name] += ev.duration_ns
  by_phase, by_op, kernels = collections.Counter(), collections.Counter(), collections.Counter()
  for name, t in ns.items():
    op = meta[name]
    kernels[phase(op)] += 1
    by_phase[phase(op)] += t / calls / 1e6
    label = _BLOCK.sub("", op.split(")/", 1)[-1] if ")/" in op else op) or name
    by_op[f"{phase(op)}: {label}"] += t / calls / 1e6
  return {"calls": calls, "kernels_seen": len(ns), "kernels_in_entry": len(meta),
          "kernels_by_phase": dict(kernels),
          "by_phase_ms": dict(by_phase.most_common()), "by_op_ms": dict(by_op.most_common())}


def timed(calls: dict, repeats: int) -> dict:
  """Median and quartiles (ms) of ``repeats`` rounds; each round calls every ``calls[name]()`` once, in turn.

  Interleaving spreads changes of the shared machine's load over all programs
  alike, so their ratios hold better than their absolute times. One warm-up
  call each first; every call is blocked until ready.
  """
  for call in calls.values():
    jax.block_until_ready(call())
  ms = {name: [] for name in calls}
  for _ in range(repeats):
    for name, call in calls.items():
      t = time.perf_counter()
      jax.block_until_ready(call())
      ms[name].append(1e3 * (time.perf_counter() - t))
  out = {}
  for name, xs in ms.items():
    q1, med, q3 = np.percentile(xs, [25, 50, 75])
    out[name] = {"median_ms": float(med), "q1_ms": float(q1), "q3_ms": float(q3), "all_ms": [round(x, 3) for x in xs]}
  return out


def profile(cfg: dict, repeats: int, k: int) -> dict:
  mcfg = jaxequiv.ModelConfig(num_layers=cfg["layers"], width=cfg["width"], num_heads=cfg["heads"],
                              seq_len=cfg["seq_len"], dtype=cfg["dtype"])
  tcfg = tr.TrainConfig(steps=1000, batch_size=cfg["batch"], learning_rate=LR, weight_decay=WD, b1=BETAS[0],
                        b2=BETAS[1], clip_norm=CLIP, warmup_steps=1, seed=0)
  sentences = corpus.load_sentences("builtin", max_len=cfg["seq_len"])
  it = data.lm_batches(sentences, cfg["batch"], cfg["seq_len"], seed=0, packed=True)
  host = [next(it) for _ in range(k)]
  batch = jax.device_put(host[0])
  batch_k = jax.device_put(jax.tree.map(lambda *xs: np.stack(xs), *host))
  loss_fn = tr.make_loss_fn("lm", mcfg)
  step_fn = training.make_train_step(loss_fn, training.make_optimizer(tcfg))
  state = tr.init_state(jax.random.key(0), mcfg, tcfg)
  params = jax.tree.map(jnp.copy, state.params)

  fwd, fwd_bwd = jax.jit(loss_fn), jax.jit(jax.value_and_grad(loss_fn))
  step1, step_k = training.jit_train_step(step_fn), training.jit_train_step(step_fn, steps_per_call=k)
  noop = jax.jit(lambda x: x + 1)
  scalar = jnp.zeros((), jnp.float32)
  programs = {"forward": fwd.lower(params, batch).compile(), "forward+backward": fwd_bwd.lower(params, batch).compile(),
              "step": step1.lower(state, batch).compile(), f"step K={k}": step_k.lower(state, batch_k).compile()}
  hlo = {name: describe(c) for name, c in programs.items()}

  holder = {"state": state}

  def run_step1():
    holder["state"], m = step1(holder["state"], batch)
    return m

  def run_step_k():
    holder["state"], m = step_k(holder["state"], batch_k)
    return m

  load_before = os.getloadavg()
  times = timed({"dispatch floor (jit(x + 1))": lambda: noop(scalar), "forward": lambda: fwd(params, batch),
                 "forward+backward": lambda: fwd_bwd(params, batch), "step": run_step1, f"step K={k}": run_step_k},
                repeats)
  for name, v in times.items():
    print(name, json.dumps({x: round(y, 2) for x, y in v.items() if x != "all_ms"}), flush=True)
  times[f"step K={k}"]["per_step_median_ms"] = times[f"step K={k}"]["median_ms"] / k
  trace = kernel_times(run_step1, programs["step"].as_text(), repeats)
  return {"config": cfg, "k": k, "repeats": repeats, "real_predictions_per_step": int(np.sum(host[0].mask)),
          "real_predictions_per_batch": [int(np.sum(b.mask)) for b in host],
          "positions_per_step": int(np.size(host[0].mask)), "hlo": hlo, "times": times, "trace": trace,
          "load_before": list(load_before), "load_after": list(os.getloadavg()), "cores": os.cpu_count()}


def paired(times: dict, a: str, b: str, scale: float = 1.0) -> float:
  """Median over rounds of ``scale * time[a] / time[b]`` within a round (both run back to back, under one load)."""
  return float(np.median(scale * np.asarray(times[a]["all_ms"]) / np.asarray(times[b]["all_ms"])))


def findings(d: dict, peers: dict | None) -> list[tuple[str, str]]:
  """Headline findings, each computed from the record's data; ratios are medians of within-round ratios."""
  t, h, k = d["times"], d["hlo"], d["k"]
  ph = d["trace"]["by_phase_ms"]
  dots = sum(v for op, v in d["trace"]["by_op_ms"].items() if op.endswith("dot_general"))
  f, fb, s, sk = (t[n]["median_ms"] for n in ("forward", "forward+backward", "step", f"step K={k}"))
  fb_f, s_fb, sk_s = paired(t, "forward+backward", "forward"), paired(t, "step", "forward+backward"), paired(
      t, f"step K={k}", "step", 1 / k)
  out = [
      ("HLO per training step (optimized, CPU)",
       f"{h['step']['instructions']} instructions, {h['step']['kernels']} top-level kernels"
       f" ({h['step']['kernel_ops'].get('fusion', 0)} fusions); kernels by phase: "
       + ", ".join(f"{p} {n}" for p, n in d["trace"]["kernels_by_phase"].items())),
      ("forward / forward+backward / full step, median ms", f"{f:.1f} / {fb:.1f} / {s:.1f}"),
      ("forward+backward program against the forward program (wall time; flops)",
       f"{fb_f:.1f}x ({h['forward+backward']['flops'] / h['forward']['flops']:.1f}x the flops)"),
      ("full step against forward+backward (AdamW, clipping, metrics added)",
       f"{s_fb:.2f}x ({h['step']['kernels'] - h['forward+backward']['kernels']} more kernels)"),
      (f"K={k} steps per dispatch against K=1, per step", f"{100 * (1 - sk_s):.0f}% less time"
       f" (medians {sk / k:.1f} vs {s:.1f} ms)"),
      ("traced kernel time per step by phase (ms, summed over threads)",
       ", ".join(f"{p} {v:.1f}" for p, v in d["trace"]["by_phase_ms"].items())
       + f"; backward {ph['backward'] / ph['forward']:.1f}x forward"),
      ("matrix products (dot_general) share of the step's traced kernel time",
       f"{100 * dots / sum(ph.values()):.0f}%; the rest is elementwise ops, reductions and layout copies"),
      ("most expensive source op of the step (4 blocks summed)",
       "{} ({:.1f} ms)".format(*next(iter(d["trace"]["by_op_ms"].items())))),
      ("achieved compute rate of the step", f"{h['step']['flops'] / (s * 1e-3) / 1e9:.1f} GFLOP/s"),
  ]
  if peers:
    real = float(np.mean(d["real_predictions_per_batch"]))
    out.append((f"step time that 1.0x nanoGPT's quiet-machine (p90) rate in results/bench_peers.json needs at"
                f" {real:.0f} real predictions per step (mean of {k} batches)",
                f"{1e3 * real / peers['p90']:.1f} ms (here: median {s:.1f} ms, fastest round"
                f" {min(t['step']['all_ms']):.1f} ms)"))
  return out


def nanogpt_rate(path: str) -> dict | None:
  """nanoGPT's base-config rates from results/bench_peers.json (None if absent)."""
  if not os.path.exists(path):
    return None
  with open(path, encoding="utf-8") as fh:
    rec = json.load(fh)
  rows = rec.get("data", rec)["rows"]  # older records hold the rows at the top level
  res = [r["results"]["nanoGPT"] for r in rows if r["config"]["name"] == "base" and "nanoGPT" in r["results"]]
  return {"median": res[0]["predictions_per_s_median"], "p90": res[0]["predictions_per_s_p90"]} if res else None


def render(rec: dict) -> str:
  """results/profile_step.md from its record."""
  d = rec["data"]
  c, h, t, k = d["config"], d["hlo"], d["times"], d["k"]
  lines = ["# Where the CPU training step's time goes (`scripts/profile_step.py`)", "", *provenance.header(rec),
           f"- Config: {c['layers']} layers, width {c['width']}, {c['heads']} heads, T={c['seq_len']}, batch"
           f" {c['batch']}, {c['dtype']} (nanoGPT's CPU config in `bench_peers.py`); one packed LM batch of the builtin"
           f" corpus: {d['real_predictions_per_step']} real predictions of {d['positions_per_step']} positions"
           f" ({100 * d['real_predictions_per_step'] / d['positions_per_step']:.0f}%).",
           f"- Load average (1, 5, 15 min) before {', '.join(f'{x:.1f}' for x in d['load_before'])}; after"
           f" {', '.join(f'{x:.1f}' for x in d['load_after'])}; {d['cores']} cores. The machine is shared: times are"
           f" medians of {d['repeats']} calls, and the ratios matter more than the absolute numbers.", "",
           "## Findings", ""]
  lines += [f"- {w}: **{r}**" for w, r in (x.values() for x in rec["headline"])]
  lines += ["", "Ratios are medians over rounds of the ratio within a round (each round runs every program once,"
            " back to back, so both sides of a ratio share the load of the moment).",
            "", "## Time (ms; compile excluded)", "", "| program | median | IQR (q1-q3) | fastest round |",
            "|---|---|---|---|"]
  lines += [f"| {name} | {v['median_ms']:.2f} | {v['q1_ms']:.2f}-{v['q3_ms']:.2f} | {min(v['all_ms']):.2f} |"
            for name, v in t.items()]
  per_step = t[f"step K={k}"]["per_step_median_ms"]
  lines += ["", f"`step K={k}` is one dispatch of {k} steps (per step: {per_step:.2f} ms).",
            "", "## Compiled programs (optimized HLO, CPU)", "",
            "| program | instructions (fused bodies included) | top-level kernels | fusions | dots (all) |"
            " GFLOP (cost_analysis) | MB accessed |", "|---|---|---|---|---|---|---|"]
  lines += [f"| {name} | {v['instructions']} | {v['kernels']} | {v['kernel_ops'].get('fusion', 0)} |"
            f" {v['ops'].get('dot', 0)} | {v['flops'] / 1e9:.3f} | {v['bytes_accessed'] / 1e6:.1f} |"
            for name, v in h.items()]
  lines += ["", f"`step K={k}`: the per-step kernels sit in the `while` loop's body, so its top-level count is the"
            " loop's plumbing, not a step's work.", "", "### Top-level kernels of the full step, by opcode", "",
            "| opcode | count |", "|---|---|"]
  lines += [f"| {op} | {n} |" for op, n in h["step"]["kernel_ops"].items()]
  lines += ["", "### Most frequent opcodes in the full step (fused bodies included)", "", "| opcode | count |",
            "|---|---|"]
  lines += [f"| {op} | {n} |" for op, n in list(h["step"]["ops"].items())[:15]]
  tr_ = d["trace"]
  total = sum(tr_["by_phase_ms"].values())
  lines += ["", f"## Kernel time of the full step from a `jax.profiler` trace ({tr_['calls']} calls)", "",
            f"Trace events matched to {tr_['kernels_seen']} of the step's {tr_['kernels_in_entry']} ENTRY instructions"
            " (the rest is plumbing: parameters, tuples, bitcasts). Times are per step, summed over XLA's threads, so"
            f" they may add up to more or less than the wall time ({t['step']['median_ms']:.1f} ms median above):"
            f" {total:.1f} ms in all. Phases come from each kernel's JAX source: `transpose(jvp(...))` is the"
            " backward pass; `jvp(...)` is the forward pass as differentiation runs it (the primal plus the"
            " residuals the backward pass needs, so more than the forward program alone); the rest is AdamW,"
            " clipping and the metrics.",
            "", "| phase | ms per step | share |", "|---|---|---|"]
  lines += [f"| {p} | {v:.2f} | {100 * v / total:.0f}% |" for p, v in tr_["by_phase_ms"].items()]
  lines += ["", "### Source ops by kernel time (the 4 blocks' copies added up; top 25)", "",
            "| phase: source op | ms per step | share |", "|---|---|---|"]
  lines += [f"| {op} | {v:.2f} | {100 * v / total:.0f}% |" for op, v in list(tr_["by_op_ms"].items())[:25]]
  return "\n".join(lines)


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--repeats", type=int, default=30)
  p.add_argument("--steps-per-call", type=int, default=8, help="K of the scanned step")
  p.add_argument("--out", default="results/profile_step")
  args = p.parse_args(argv)
  run = provenance.start([sys.argv[0], *(argv if argv is not None else sys.argv[1:])])
  cfg = PRESETS["cpu"][0]
  d = profile(cfg, args.repeats, args.steps_per_call)
  peers = nanogpt_rate(BENCH_PEERS)
  d["nanogpt_predictions_per_s"] = peers
  rec = provenance.write(
      run, args.out, d, seeds=[0], render=render, inputs=[BENCH_PEERS] if peers else [],
      model=f"jaxequiv.model transformer, {cfg['layers']} layers, width {cfg['width']}, {cfg['heads']} heads,"
            f" T={cfg['seq_len']}, batch {cfg['batch']}, {cfg['dtype']}, AdamW lr {LR} with clipping {CLIP}; random"
            f" init, no training: each program is timed {args.repeats} times on one packed builtin-corpus batch"
            f" (the step K={args.steps_per_call} on {args.steps_per_call} batches)",
      headline=findings(d, peers))
  print(render(rec))
  return 0


if __name__ == "__main__":
  sys.exit(main())
