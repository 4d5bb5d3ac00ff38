"""Multi-process drill: `jaxequiv train --data-parallel` under N local processes on JAX's own runtime, for real.

For each process count N (devices D per process), at a tiny size (1 layer, width 16, T=16):

* reference: one process with N*D host devices trains K steps (``--data-parallel``);
* lm / paired: ``python -m jaxequiv.lm.launch --processes N`` trains the LM and the paired classifier; each process
  builds only its rows; the final params are compared bit for bit with the reference and with each other;
* kill: N processes started directly (no launcher to stop them), the last one SIGKILLed once a checkpoint exists;
  the time the others take to exit and their last line are recorded; then all N restart with ``--resume`` through
  the launcher and the final params are compared bit for bit with the reference;
* bad job: a process with an id outside 0..N-1, and one whose coordinator never comes: the one line they print and
  how long they took.

Writes ``<out>.md`` and ``<out>.json`` (``jaxequiv.provenance``). Every subprocess has a timeout.

Usage:
  python scripts/multiprocess_drill.py                                 # N=2 and N=4, D=1 (several minutes)
  python scripts/multiprocess_drill.py --topologies 2x1 4x1 2x2 --quick    # results/multiprocess.md
  python scripts/multiprocess_drill.py --processes 2 --out /tmp/mp    # the CI case (tests/lm/multiprocess_test.py)
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from jaxequiv import bitwise, checkpoint, provenance  # noqa: E402
from jaxequiv.lm import launch, parallel, runs  # noqa: E402

TINY = ["--data", "synthetic", "--num-synthetic", "200", "--seq-len", "16", "--layers", "1", "--width", "16",
        "--heads", "2", "--warmup", "1", "--eval-every", "0", "--log-every", "2", "--num-samples", "0",
        "--no-progress", "--no-determinism-flags", "--data-parallel"]
MODEL = "1-layer transformer, width 16, 2 heads, T=16, synthetic corpus (200 sentences), batch 2 rows per device"
KILL_EXIT_BOUND_S = 60  # the others must exit within this after a process is SIGKILLed (heartbeat timeout 20 s)
HEARTBEAT_S = 20
# With several devices per process the cross-process all-reduce adds partial sums in another order than one process
# with all the devices: params after K steps may differ in the last bits. Bound per leaf on max|a - b| / max|a|:
RTOL_ACROSS_PROCESSES = 1e-5


def train_argv(out: str, steps: int, batch: int, *extra: str) -> list[str]:
  return ["train", *TINY, "--steps", str(steps), "--batch-size", str(batch), "--checkpoint-every", "2", "--out", out,
          *extra]


def sh(argv: list[str], env: dict, timeout: float) -> tuple[int, str, float]:
  t0 = time.monotonic()
  p = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout)
  return p.returncode, p.stdout + p.stderr, time.monotonic() - t0


def launched(n: int, d: int, command: list[str], env: dict, timeout: float) -> tuple[int, str, float]:
  return sh([sys.executable, "-m", "jaxequiv.lm.launch", "--processes", str(n), "--devices-per-process", str(d),
             "--heartbeat-timeout", str(HEARTBEAT_S), "--timeout", str(timeout - 10), "--", *command], env, timeout)


def mismatches(a: str, b: str) -> dict:
  """Mismatched elements (raw bits) and the max per-leaf relative error between two runs' final params."""
  pa, _ = runs.load_params(a)
  pb, _ = runs.load_params(b)
  return {"mismatched": bitwise.compare_bits(pa, pb).mismatched_elements,
          "max_rel_err": bitwise.max_relative_error(pa, pb)}


def last_line(text: str) -> str:
  lines = [l for l in text.splitlines() if l.startswith("jaxequiv")]
  return lines[-1] if lines else (text.strip().splitlines() or [""])[-1][:200]


def kill_case(n: int, d: int, out: str, steps: int, batch: int, env: dict, timeout: float) -> dict:
  """Starts n processes directly, SIGKILLs the last once checkpoint 2 exists, times the others' exit."""
  address = f"127.0.0.1:{launch.free_port()}"
  procs = []
  for i in range(n):
    e = launch.child_env(env, address, n, i, d, 60, HEARTBEAT_S)
    procs.append(subprocess.Popen([sys.executable, "-m", "jaxequiv", *train_argv(out, steps, batch)], env=e,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True))
  t0 = time.monotonic()
  while not checkpoint.steps(out) and time.monotonic() - t0 < timeout and all(p.poll() is None for p in procs):
    time.sleep(0.2)
  killed_at = checkpoint.steps(out)
  victim = procs[-1]
  alive_before = victim.poll() is None
  if alive_before:
    os.killpg(victim.pid, signal.SIGKILL)
  t_kill = time.monotonic()
  exits = []
  for p in procs[:-1]:
    try:
      _, err = p.communicate(timeout=KILL_EXIT_BOUND_S + 30)
      exits.append({"status": p.returncode, "seconds": round(time.monotonic() - t_kill, 1), "last_line": last_line(err),
                    "traceback": "Traceback" in err or "Check failure" in err})
    except subprocess.TimeoutExpired:
      os.killpg(p.pid, signal.SIGKILL)
      p.communicate()
      exits.append({"status": None, "seconds": None, "last_line": "hung: killed by the drill"})
  victim.communicate()
  return {"killed_process": n - 1, "victim_was_running": alive_before, "checkpoints_at_kill": killed_at,
          "others": exits}


def bad_job_cases(env: dict, work: str) -> list[dict]:
  out = []
  port = launch.free_port()
  e = {**env, parallel.COORDINATOR_ENV: f"127.0.0.1:{port}", parallel.NUM_PROCESSES_ENV: "2",
       parallel.PROCESS_ID_ENV: "2"}
  rc, text, wall = sh([sys.executable, "-m", "jaxequiv", "train", "--no-determinism-flags", "--out", os.path.join(work, "bad")], e, 120)
  out.append({"case": "process id 2 of 2", "status": rc, "seconds": round(wall, 1), "line": last_line(text),
              "lines_on_stderr": len([l for l in text.splitlines() if l.strip()])})
  e = {**e, parallel.PROCESS_ID_ENV: "1", parallel.INIT_TIMEOUT_ENV: "5"}
  rc, text, wall = sh([sys.executable, "-m", "jaxequiv", "train", "--no-determinism-flags", "--out", os.path.join(work, "bad")], e, 180)
  out.append({"case": "no coordinator (init timeout 5 s)", "status": rc, "seconds": round(wall, 1),
              "line": last_line(text), "lines_on_stderr": len([l for l in text.splitlines() if l.strip()])})
  return out


def drill(n: int, d: int, steps: int, work: str, env: dict, timeout: float, quick: bool = False) -> dict:
  batch = 2 * n * d
  row = {"processes": n, "devices_per_process": d, "devices": n * d, "steps": steps, "batch_rows": batch}
  t0 = time.monotonic()
  ref = os.path.join(work, f"ref{n}x{d}")
  rc, text, wall = sh([sys.executable, "-m", "jaxequiv", *train_argv(ref, steps, batch)],
                      {**env, "XLA_FLAGS": f"--xla_force_host_platform_device_count={n * d}"}, timeout)
  row["reference"] = {"status": rc, "seconds": round(wall, 1), "tail": "" if rc == 0 else text[-500:]}
  runs_ = (("paired", ("--objective", "classification", "--mode", "paired")),) if quick else (
      ("lm", ()), ("paired", ("--objective", "classification", "--mode", "paired")))
  for name, extra in runs_:
    out = os.path.join(work, f"{name}{n}x{d}")
    rc, text, wall = launched(n, d, train_argv(out, steps, batch, *extra), env, timeout)
    row[name] = {"status": rc, "seconds": round(wall, 1), "tail": "" if rc == 0 else text[-800:]}
  kill_dir = os.path.join(work, f"kill{n}x{d}")
  row["kill"] = kill_case(n, d, kill_dir, steps, batch, env, timeout)
  rc, text, wall = launched(n, d, train_argv(kill_dir, steps, batch, "--resume"), env, timeout)
  row["resume"] = {"status": rc, "seconds": round(wall, 1), "tail": "" if rc == 0 else text[-800:]}
  # --quick: the resumed multi-process LM run stands in for the uninterrupted one.
  lm = kill_dir if quick else os.path.join(work, f"lm{n}x{d}")
  ok = lambda *names: all(row[k]["status"] == 0 for k in names)  # noqa: E731
  lm_ok = ok("resume") if quick else ok("lm")
  row["lm_run"] = "resumed after the kill" if quick else "uninterrupted"
  row["lm_vs_reference_mismatched"] = mismatches(lm, ref) if lm_ok and ok("reference") else None
  row["lm_vs_paired_mismatched"] = mismatches(lm, os.path.join(work, f"paired{n}x{d}")) if lm_ok and ok("paired") else None
  row["resumed_vs_reference_mismatched"] = mismatches(kill_dir, ref) if ok("resume", "reference") else None
  row["elements"] = int(sum(x.size for x in __import__("jax").tree.leaves(runs.load_params(ref)[0])))
  row["seconds"] = round(time.monotonic() - t0, 1)
  return row


def _bits(v, total) -> str:
  if v is None:
    return "not run"
  if v["mismatched"] == 0:
    return "all bits"
  return (f"{v['mismatched']} of {total} elements differ, max rel. err {v['max_rel_err']:.2e}"
          f" (bound {RTOL_ACROSS_PROCESSES:g})")


def render(record: dict) -> str:
  data = record["data"]
  lines = ["# Multi-process drill", "",
           f"`{record['provenance'].get('command', 'python scripts/multiprocess_drill.py')}`; {record['model']}.",
           "Each process is `python -m jaxequiv train --data-parallel` on JAX's multi-controller runtime"
           " (`jax.distributed`, coordinator on 127.0.0.1, gloo collectives), started by `jaxequiv.lm.launch`;"
           " each builds only its own batch rows. Bits compared as raw uint32 of every parameter after the last step.",
           "", "| processes | devices | steps | kills | multi-process LM vs 1 process with the same devices |"
           " multi-process LM vs paired classifier | multi-process LM resumed after a kill vs 1 process | others exited after the kill |",
           "|---:|---:|---:|---:|---|---|---|---|"]
  for r in data["rows"]:
    others = "; ".join(f"status {o['status']} in {o['seconds']} s{', traceback' if o.get('traceback') else ''}"
                       for o in r["kill"]["others"])
    lines.append(f"| {r['processes']} | {r['devices']} | {r['steps']} | 1 | {_bits(r['lm_vs_reference_mismatched'], r['elements'])}"
                 f" | {_bits(r['lm_vs_paired_mismatched'], r['elements'])}{' (LM resumed)' if r.get('lm_run', '').startswith('resumed') else ''}"
                 f" | {_bits(r['resumed_vs_reference_mismatched'], r['elements'])} | {others} |")
  lines += ["", f"Bound where bits differ: max over leaves of max|a - b| / max|a| <= {RTOL_ACROSS_PROCESSES:g}"
            " (with several devices per process the cross-process all-reduce sums in another order)."
            " A survivor of the kill exits through a one-line `lost a peer process` error when its collective"
            " fails (gloo, one device per process), or is stopped by JAX's runtime after the heartbeat timeout"
            f" ({HEARTBEAT_S} s here) when its collective waits instead (status -6, C++ log; the launcher drops"
            " those lines).", "", "Lines the surviving processes printed last after the kill:", ""]
  for r in data["rows"]:
    for o in r["kill"]["others"]:
      lines.append(f"- {r['processes']} processes: `{o['last_line']}`")
  lines += ["", "Bad jobs (one process started alone):", "", "| case | status | seconds | stderr lines | message |",
            "|---|---:|---:|---:|---|"]
  for b in data["bad_jobs"]:
    lines.append(f"| {b['case']} | {b['status']} | {b['seconds']} | {b['lines_on_stderr']} | `{b['line']}` |")
  return "\n".join(lines) + "\n"


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--processes", type=int, nargs="+", default=[2, 4])
  parser.add_argument("--devices-per-process", type=int, nargs="+", default=[1])
  parser.add_argument("--topologies", nargs="+", default=None,
                      help="NxD pairs (N processes of D devices), instead of --processes x --devices-per-process")
  parser.add_argument("--steps", type=int, default=4)
  parser.add_argument("--timeout", type=float, default=300, help="seconds per subprocess")
  parser.add_argument("--out", default="results/multiprocess")
  parser.add_argument("--quick", action="store_true",
                      help="skip the uninterrupted multi-process LM run (the resumed one is compared instead)")
  args = parser.parse_args(argv)
  run = provenance.start()
  work = tempfile.mkdtemp(prefix="mp_drill_")
  env = {**os.environ, "JAX_PLATFORMS": "cpu", "JAX_COMPILATION_CACHE_DIR": os.path.join(work, "jax_cache"),
         "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0", "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0"}
  rows = []
  pairs = ([tuple(int(v) for v in t.split("x")) for t in args.topologies] if args.topologies
           else [(n, d) for d in args.devices_per_process for n in args.processes])
  for n, d in pairs:
    rows.append(drill(n, d, args.steps, work, env, args.timeout, args.quick))
    print(f"{n} processes x {d} devices: {rows[-1]['seconds']} s", flush=True)
  bad = bad_job_cases(env, work)
  data = {"rows": rows, "bad_jobs": bad, "kill_exit_bound_s": KILL_EXIT_BOUND_S, "heartbeat_timeout_s": HEARTBEAT_S,
          "rtol_across_processes": RTOL_ACROSS_PROCESSES}
  record = provenance.write(run, args.out, data, model=MODEL, seeds=[0], render=render, headline=[
      (f"{r['processes']} processes vs 1 process, {r['devices']} devices in all",
       _bits(r["lm_vs_reference_mismatched"], r["elements"])) for r in rows])
  print(render(record))
  return 0


if __name__ == "__main__":
  sys.exit(main())
