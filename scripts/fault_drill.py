"""Fault drill: kills and signals, corruption, damaged metadata, locks and links, resume refusals, sizes, files, disks.

Every scenario trains the same tiny LM (1 layer, width 16, T=32, 24 steps, a checkpoint every step) and checks
that the run either finishes with params, optimizer state and metrics.jsonl bitwise equal to an uninterrupted run,
or stops with a one-line message and no traceback. The command-line scenarios (signals, flags) train the same
sizes through ``python -m jaxequiv train`` on synthetic data, against an uninterrupted command-line run.

* kill: a child process trains and is SIGKILLed at a random moment after each new checkpoint, then restarted,
  until it finishes; a kill that leaves a ``.tmp-*`` directory came during a checkpoint write.
* corrupt: a run stopped at step 12 is damaged (a flipped byte in a params file, a truncated file, an emptied
  ``_METADATA``, a removed ``opt_state/``, an empty stray step folder, a garbage line in metrics.jsonl) and resumed.
* none good: every checkpoint damaged: a one-line error naming the directory.
* concurrent: a second writer started on a run in progress is refused in one line, also after ``.lock`` was
  deleted; the first finishes unharmed.
* links: ``.lock`` a symbolic link to a file outside the run, a stray ``.tmp-*`` link to a directory outside it: the
  run finishes and the outside files are untouched.
* metadata: a manifest with wrong types, step folders named with non-ASCII digits, zero padding, a huge number or a
  step past ``--steps`` (a renamed folder): one line each, skipped, the run resumes from the newest good checkpoint.
* signals: SIGINT and SIGTERM mid-run stop at a step boundary with one line and the resume command; resumed, the
  run ends bitwise equal. ``--resume`` with a changed flag, and with an edited config.json, is refused in one line.
* nan: a poisoned batch at step 17 stops the run naming the step; the last good checkpoint stays.
* sizes, files, disk, data, library: the command-line edges of ``scripts/fault_drill_edges.py`` (its docstring):
  huge size flags and unreadable input files refused before JAX; EFBIG, ENOSPC and EROFS on checkpoint writes in one
  line naming the last good checkpoint, which is kept; a changed data file refused on ``--resume``; library edges.

Totals are summed from the rows; the markdown has a table per kind. Writes ``results/fault_drill.{json,md}``
(``jaxequiv.provenance``).

Usage:
  python scripts/fault_drill.py                      # about 5 minutes on 2 quiet CPU cores
  python scripts/fault_drill.py --only sizes,files   # a few kinds (--help lists the groups)

The full- and read-only-disk cases mount a tmpfs in a private mount namespace (``unshare -m``, root); where that is
not possible they are listed as not staged, not counted.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from jaxequiv import determinism  # noqa: E402

determinism.set_xla_flags()

import jax  # noqa: E402
import numpy as np  # noqa: E402

from jaxequiv import checkpoint, model, provenance, rundir, training  # noqa: E402
from jaxequiv.lm import train as tr  # noqa: E402

import fault_drill_edges as edges  # noqa: E402  # pylint: disable=wrong-import-position
from fault_drill_edges import row  # noqa: E402  # pylint: disable=wrong-import-position

SENTENCES = [f"{a} {b} {c}." for a in ("The cat", "A dog", "My friend", "Bob", "She")
             for b in ("sees", "likes", "finds") for c in ("the sea", "a tree", "3 hats")]
VAL = ["The dog sees a hat.", "Bob likes the cat."]
MCFG = model.ModelConfig(num_layers=1, width=16, num_heads=2, seq_len=32)
TCFG = tr.TrainConfig(steps=24, batch_size=8, warmup_steps=4, learning_rate=1e-2, eval_every=8,
                      checkpoint_every=1, log_every=3, max_to_keep=3)
NAN_STEP = 17
CLI_ARGS = ["--data", "synthetic", "--num-synthetic", "50", "--seq-len", "32", "--layers", "1", "--width", "16",
            "--heads", "2", "--steps", "24", "--batch-size", "4", "--checkpoint-every", "1",
            "--num-samples", "0", "--no-progress"]
PROGRESS = re.compile(r"^(jaxequiv: )?step \d+: ")  # progress and validation lines; every other line is a notice
CLI_FINAL = "jaxequiv train: "  # the command line's own closing error or stop line (its notices say "jaxequiv: ")


def notices(lines: list[str]) -> list[str]:
  """The warning and error lines among a run's log lines (not its progress and validation lines)."""
  return [l for l in lines if l.strip() and not PROGRESS.match(l)]


def final_lines(err: str) -> list[str]:
  """The command line's closing error or stop lines in its stderr (one is expected)."""
  return [l for l in err.splitlines() if l.startswith(CLI_FINAL)]


def run(out: str | None, *, max_steps: int | None = None, poison: bool = False, log=None,
        step_seconds: float = 0.0) -> tr.TrainResult:
  batches = tr.sentence_batches(SENTENCES, MCFG, TCFG)
  if poison:
    good = batches

    def batches(start):  # noqa: F811
      for step, b in enumerate(good(start), start + 1):
        yield b._replace(targets=np.where(b.mask, 64, b.targets).astype(np.int32)) if step == NAN_STEP else b

  slow = [lambda *_: time.sleep(step_seconds)] if step_seconds else []
  return tr.train(MCFG, TCFG, batches, val_sentences=VAL, out_dir=out, progress=False, max_steps_this_run=max_steps,
                  log=log or (lambda m: None), callbacks=slow)


def digest(state) -> str:
  h = hashlib.sha256()
  for x in jax.tree.leaves(jax.device_get(state)):
    h.update(np.ascontiguousarray(x).tobytes())
  return h.hexdigest()[:16]


def metrics_of(out: str) -> list[dict]:
  return [{k: v for k, v in r.items() if k != "time"} for r in rundir.read_metrics(out, log=None)]


def child_main(out: str) -> int:
  try:
    res = run(out, log=rundir.say, step_seconds=float(os.environ.get("FAULT_DRILL_STEP_SECONDS", "0")))
  except (rundir.RunDirError, training.NonFiniteLossError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  print(f"DONE {digest(res.state)}", flush=True)
  return 0


CHILD_ENV: dict[str, str] = {}  # main() adds a persistent compilation cache, so restarts skip the compile


def spawn(out: str, step_seconds: float = 0.0) -> subprocess.Popen:
  env = {**os.environ, **CHILD_ENV, "FAULT_DRILL_STEP_SECONDS": str(step_seconds)}
  return subprocess.Popen([sys.executable, os.path.abspath(__file__), "--child", out], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, env=env)


def tmp_dirs(out: str) -> list[str]:
  d = checkpoint.checkpoint_dir(out)
  return [n for n in os.listdir(d) if n.startswith(".tmp-")] if os.path.isdir(d) else []


def kill_chain(out: str, rng: random.Random, max_kills: int) -> dict:
  kills = in_write = tracebacks = starts = 0
  while True:
    starts += 1
    proc = spawn(out)
    newest = max(checkpoint.steps(out), default=-1)
    killed = False
    while proc.poll() is None:
      steps = checkpoint.steps(out)
      if kills < max_kills and steps and steps[0] > newest:
        time.sleep(rng.uniform(0.0, 0.25))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        killed = True
        break
      time.sleep(0.01)
    stdout, stderr = proc.communicate()
    tracebacks += stderr.count("Traceback")
    if killed:
      kills += 1
      in_write += bool(tmp_dirs(out))
      continue
    done = [l for l in stdout.splitlines() if l.startswith("DONE")]
    return {"kills": kills, "in_write": in_write, "starts": starts, "tracebacks": tracebacks,
            "rc": proc.returncode, "digest": done[0].split()[1] if done else None, "stderr": stderr}


def damage_cases(base: str):
  def newest(d):
    return os.path.join(checkpoint.checkpoint_dir(d), str(checkpoint.steps(d)[0]))

  def biggest(d, item="params"):
    files = [os.path.join(r, n) for r, _, ns in os.walk(os.path.join(newest(d), item)) for n in ns]
    return max(files, key=os.path.getsize)

  def flip(d):
    p = biggest(d)
    data = bytearray(open(p, "rb").read())
    data[len(data) // 2] ^= 0xFF
    open(p, "wb").write(bytes(data))

  def truncate(d):
    p = biggest(d)
    os.truncate(p, os.path.getsize(p) // 2)

  def empty_metadata(d):
    open(os.path.join(newest(d), "params", "_METADATA"), "w").close()

  def remove_state(d):
    shutil.rmtree(os.path.join(newest(d), "opt_state"))

  def stray(d):
    os.makedirs(os.path.join(checkpoint.checkpoint_dir(d), "99"))

  def garbage_metrics(d):
    with open(os.path.join(d, rundir.METRICS_FILE), "ab") as f:
      f.write(b"\x00\xff not json\n")

  return {"flipped byte in a params file": flip, "truncated params file": truncate,
          "emptied params _METADATA": empty_metadata, "removed opt_state/": remove_state,
          "empty stray step folder (99)": stray, "garbage line in metrics.jsonl": garbage_metrics}


def resumed_row(kind: str, scenario: str, d: str, want: tuple[str, list], check=lambda: True) -> dict:
  """Resumes ``d`` in-process; the row says whether it ended bitwise equal to ``want`` with one-line notices."""
  lines: list[str] = []
  res = run(d, log=lines.append)
  notes = notices(lines)
  ok = digest(res.state) == want[0] and metrics_of(d) == want[1] and check()
  print(scenario, notes, flush=True)
  return row(kind, scenario, ok, "yes", damaged=sum("is damaged" in l or "not a step folder" in l for l in notes),
             one_line=sum("\n" not in l for l in notes))


def metadata_cases() -> dict:
  """Damaged metadata of a run stopped at step 12: name -> function of the run directory."""
  def newest(d):
    return os.path.join(checkpoint.checkpoint_dir(d), str(checkpoint.steps(d)[0]))

  def wrong_types(d):
    path = os.path.join(newest(d), checkpoint.MANIFEST_FILE)
    m = rundir.read_json(path)
    rundir.write_json(path, {**m, "items": 5, "files": {k: a for k, (a, b) in m["files"].items()}})

  def copy_as(name):
    return lambda d: shutil.copytree(newest(d), os.path.join(checkpoint.checkpoint_dir(d), name))

  def fifo_manifest(d):
    path = os.path.join(newest(d), checkpoint.MANIFEST_FILE)
    os.remove(path)
    os.mkfifo(path)

  def linked_meta(d):  # meta.json moved out of the run and linked back: intact, but not followed
    path = os.path.join(newest(d), checkpoint.META_FILE)
    outside = os.path.join(os.path.dirname(d), f"meta-outside-{os.path.basename(d)}.json")
    shutil.move(path, outside)
    os.symlink(outside, path)

  return {"manifest with wrong types (items a number, sizes for [size, sha256])": wrong_types,
          "manifest.json a FIFO": fifo_manifest,
          "meta.json a symbolic link to a copy outside the run": linked_meta,
          "step folder named in non-ASCII digits (a copy of 12 as '\u0661\u0662')": copy_as("\u0661\u0662"),
          "zero-padded step folder (a copy of 12 as 0012)": copy_as("0012"),
          "step folder named with a huge number (30 digits)": copy_as("9" * 30),
          "step folder past --steps (a copy of 12 as 99)": copy_as("99")}


def concurrent(d: str, want: tuple[str, list], remove_lock: bool) -> dict:
  """A second writer on a run in progress (after deleting ``.lock`` if ``remove_lock``) is refused in one line."""
  first = spawn(d, step_seconds=0.5)  # slow steps: still running when the second writer gets going
  while not checkpoint.steps(d) and first.poll() is None:
    time.sleep(0.05)
  if remove_lock:
    os.remove(os.path.join(d, rundir.LOCK_FILE))
  second = spawn(d)
  out2, err2 = second.communicate()
  out1, err1 = first.communicate()
  refused = second.returncode == 2 and "in use by another writer" in err2 and len(notices(err2.splitlines())) == 1
  ok = f"DONE {want[0]}" in out1 and metrics_of(d) == want[1]
  print("concurrent", remove_lock, err2.strip()[-300:], flush=True)
  return row("lock and links", "concurrent: second writer on a run in progress" + (", its .lock deleted" if remove_lock else ""),
             ok and refused, "refused, first unharmed", runs=2, one_line=int(refused),
             tracebacks=err1.count("Traceback") + err2.count("Traceback"))


def links(work: str, base: str, want: tuple[str, list]) -> list[dict]:
  """``.lock`` linked to a file outside the run; a stray ``.tmp-*`` link to a directory outside it."""
  outside = os.path.join(work, "outside")
  os.makedirs(outside, exist_ok=True)
  victim = os.path.join(outside, "precious.txt")
  with open(victim, "w") as f:
    f.write("precious")
  untouched = lambda: open(victim).read() == "precious" and os.listdir(outside) == ["precious.txt"]  # noqa: E731
  d = os.path.join(work, "lock_link")
  shutil.copytree(base, d)
  os.remove(os.path.join(d, rundir.LOCK_FILE))  # the stopped run's; replaced by a link
  os.symlink(victim, os.path.join(d, rundir.LOCK_FILE))
  rows = [resumed_row("lock and links", ".lock a symbolic link to a file outside the run", d, want, untouched)]
  d = os.path.join(work, "tmp_link")
  shutil.copytree(base, d)
  tmp = rundir.TMP_PREFIX + str(checkpoint.steps(d)[0] + 1)  # the next checkpoint's temporary name
  os.symlink(outside, os.path.join(checkpoint.checkpoint_dir(d), tmp))
  rows.append(resumed_row("lock and links", f"stray checkpoints/{tmp} a symbolic link to a directory outside", d,
                          want, untouched))
  return rows


def cli(*args: str) -> subprocess.Popen:
  env = {**os.environ, **CHILD_ENV}
  return subprocess.Popen([sys.executable, "-m", "jaxequiv", "train", *args], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, env=env)


def run_digest(out: str) -> tuple[str, list]:
  """(digest of the newest good checkpoint's params and optimizer state, metrics.jsonl records) of a CLI run."""
  step = checkpoint.latest_step(out, log=None)
  r = checkpoint.restore(out, {n: checkpoint.saved_like(out, step, n) for n in ("params", "opt_state")}, log=None)
  return digest(r.items), metrics_of(out)


def signal_case(work: str, sig: signal.Signals, want: tuple[str, list]) -> dict:
  """SIGINT or SIGTERM after the first checkpoint: one line with the resume command; resumed, bitwise equal."""
  d = os.path.join(work, "cli_" + sig.name)
  proc = cli(*CLI_ARGS, "--out", d)
  while not checkpoint.steps(d) and proc.poll() is None:
    time.sleep(0.01)
  proc.send_signal(sig)
  _, err = proc.communicate()
  stopped = checkpoint.latest_step(d, log=None)
  notes = final_lines(err)
  said = proc.returncode == 128 + sig and len(notes) == 1 and f"--resume --out {d}" in notes[0]
  resumed = cli("--resume", "--out", d, "--num-samples", "0", "--no-progress")
  _, err2 = resumed.communicate()
  ok = said and stopped is not None and stopped < 24 and resumed.returncode == 0 and run_digest(d) == want
  print(sig.name, stopped, notes, err2[-300:], flush=True)
  return row("signals", f"{sig.name} mid-run (CLI), then --resume", ok, f"stopped at step {stopped}, resumed: yes", runs=2,
             one_line=int(said), tracebacks=err.count("Traceback") + err2.count("Traceback"))


def refused_case(scenario: str, d: str, args: list[str], names: str) -> dict:
  """A CLI resume that must be refused in one line naming ``names``, without a traceback."""
  proc = cli("--resume", "--out", d, *args)
  _, err = proc.communicate()
  notes = final_lines(err)
  said = proc.returncode == 2 and len(notes) == 1 and names in notes[0]
  print(scenario, notes, flush=True)
  return row("resume refusals", scenario, said and "Traceback" not in err and "Exception ignored" not in err, "refused", one_line=int(said),
             tracebacks=err.count("Traceback"))


_CLI_REFERENCE: dict[str, tuple[str, tuple[str, list]]] = {}


def cli_reference(work: str) -> tuple[str, tuple[str, list]]:
  """(run directory, ``run_digest``) of one uninterrupted command-line run (made once per drill)."""
  if work not in _CLI_REFERENCE:
    ref = os.path.join(work, "cli_reference")
    proc = cli(*CLI_ARGS, "--out", ref)
    _, err = proc.communicate()
    if proc.returncode != 0:
      raise SystemExit(f"the command-line reference run failed: {err[-2000:]}")
    _CLI_REFERENCE[work] = ref, run_digest(ref)
  return _CLI_REFERENCE[work]


def cli_cases(work: str) -> list[dict]:
  ref, want = cli_reference(work)
  rows = [signal_case(work, sig, want) for sig in (signal.SIGINT, signal.SIGTERM)]
  rows.append(refused_case("--resume with a changed flag (--lr 0.5)", ref, ["--lr", "0.5"], "lr"))
  edited = os.path.join(work, "cli_edited")
  shutil.copytree(ref, edited)
  path = os.path.join(edited, rundir.CONFIG_FILE)
  cfg = rundir.read_json(path)
  cfg["model"]["width"] = 32
  rundir.write_json(path, cfg)
  rows.append(refused_case("--resume of a run whose config.json was edited (width 16 -> 32)", edited, [],
                           "model.width"))
  return rows


def disk_cases(work: str) -> list[dict]:
  """A checkpoint write failing on the disk (``edges.disk_cases``), against the command-line reference."""
  _, want = cli_reference(work)
  stopped = os.path.join(work, "cli_stopped")
  proc = cli(*CLI_ARGS, "--out", stopped, "--max-steps-this-run", "2")
  _, err = proc.communicate()
  if proc.returncode != 0:
    raise RuntimeError(f"the run to stop at step 2 failed: {err[-500:]}")
  rows, skipped = edges.disk_cases(work, {**os.environ, **CHILD_ENV}, CLI_ARGS, stopped, want, run_digest,
                                   lambda d: checkpoint.latest_step(d, log=None))
  SKIPPED.extend(skipped)
  return rows


SKIPPED: list[str] = []  # scenarios this machine cannot stage, with the reason (rendered under the tables)
# guarded's name -> the kind of its row when the scenario raises
KIND_OF = {"kill": "kills", "none good": "damaged checkpoints", "concurrent": "lock and links", "links": "lock and links",
           "command line": "signals", "nan": "non-finite loss", "disk": "disk", "data": "data", "sizes": "sizes",
           "files": "input files", "library": "library"}


def guarded(name: str, fn, *args) -> list[dict]:
  """Runs a scenario; an unexpected exception is a row with its traceback counted, not the end of the drill."""
  try:
    out = fn(*args)
  except Exception as e:  # pylint: disable=broad-except
    print(f"{name}: {type(e).__name__}: {e}", flush=True)
    return [row(KIND_OF.get(name, name), name, False, f"{type(e).__name__}: {str(e)[:200]}", tracebacks=1)]
  return out if isinstance(out, list) else [out]


GROUPS = ("kill", "corrupt", "metadata", "concurrent", "links", "cli", "nan", "sizes", "files", "disk", "data",
          "library")
KINDS = ("kills", "damaged checkpoints", "manifest schema, step read from inside", "lock and links", "signals",
         "resume refusals", "data", "sizes", "input files", "disk", "non-finite loss", "library", "tfds extra")
COLUMNS = [("runs", "runs"), ("kills", "SIGKILLs"), ("in_write", "of them during a checkpoint write"),
           ("damaged", "damaged checkpoints caught"), ("one_line", "one-line messages"), ("tracebacks", "tracebacks")]


def totals(rows: list[dict]) -> dict:
  return {**{k: sum(r[k] for r in rows) for k, _ in COLUMNS}, "ok": sum(r["ok"] for r in rows), "scenarios": len(rows)}


def _table(rows: list[dict], first: str) -> list[str]:
  header = [first, *(h for _, h in COLUMNS), "as expected"]
  return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + [
      "| " + " | ".join([r["scenario"], *(str(r[k]) for k, _ in COLUMNS), r["outcome"]]) + " |" for r in rows]


def render(rec: dict) -> str:
  """results/fault_drill.md from its record: a table per kind, then the totals per kind."""
  d = rec["data"]
  rows = [{"kind": "all scenarios (recorded before rows had kinds)", **r} for r in d["rows"]]
  kinds = [k for k in KINDS if any(r["kind"] == k for r in rows)]
  kinds += sorted({r["kind"] for r in rows} - set(kinds))
  per_kind = []
  for k in kinds:
    per_kind += [f"## {k}", "", *_table([r for r in rows if r["kind"] == k], "scenario"), ""]
  summary = [{"scenario": k, **{c: str(v) for c, v in totals([r for r in rows if r["kind"] == k]).items()}}
             for k in kinds]
  t = totals(rows)
  summary = [{**r, "outcome": f"{r['ok']} of {r['scenarios']}"} for r in summary]
  summary.append({"scenario": "**total**", **{c: str(t[c]) for c, _ in COLUMNS}, "outcome": f"{t['ok']} of {t['scenarios']}"})
  skipped = [f"- not staged here: {s}" for s in d.get("skipped", [])]
  return "\n".join([
      "# Fault drill: kills, signals, corruption, damaged metadata, locks and links, resume refusals, data, sizes,"
      " input files, disk errors, NaN, library edges", "",
      *provenance.header(rec), "",
      f"- settings: {d['model']}; {d['steps']} steps, a checkpoint every step (max_to_keep={d['max_to_keep']}),"
      f" validation every {d['eval_every']}; command-line scenarios: `jaxequiv train {' '.join(d['cli_args'])}`",
      "- the reference is one uninterrupted run; 'bitwise =' compares the SHA-256 of every params and optimizer"
      " state leaf and every metrics.jsonl record (wall-clock time excluded). Messages counted are the warning and"
      " error lines (progress and validation lines are not). A command-line refusal is as expected when it exits"
      " with the status given, prints exactly one closing line `jaxequiv CMD: ...` holding the expected text and no"
      " traceback, and ('before JAX') imported no JAX, so allocated nothing; a hang (past its timeout) is a failure.",
      *skipped, "", *per_kind, "## totals per kind", "", *_table(summary, "kind"), ""])


def main() -> int:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--out", default="results/fault_drill", help="results/NAME (.json and .md are written)")
  p.add_argument("--kills", type=int, default=4, help="SIGKILLs in the kill scenario")
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--only", default="", help="comma-separated groups to run (a quick check; default: all): "
                 + ",".join(GROUPS))
  p.add_argument("--child", default=None, help=argparse.SUPPRESS)
  args = p.parse_args()
  if args.child:
    return child_main(args.child)
  only = set(args.only.split(",")) if args.only else set(GROUPS)
  if only - set(GROUPS):
    p.error(f"--only: unknown group(s) {sorted(only - set(GROUPS))}; known: {','.join(GROUPS)}")
  started = provenance.start()
  t0 = time.time()
  rng = random.Random(args.seed)
  work = tempfile.mkdtemp(prefix="fault_drill_")
  CHILD_ENV.update(JAX_COMPILATION_CACHE_DIR=os.path.join(work, "jax_cache"),
                   JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0", JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0")
  rows: list[dict] = []

  in_process = only & {"kill", "corrupt", "metadata", "concurrent", "links"}  # the scenarios against run()
  if in_process:
    ref_dir = os.path.join(work, "reference")
    want = (digest(run(ref_dir).state), metrics_of(ref_dir))
    print(f"reference {want[0]} ({time.time() - t0:.0f} s)", flush=True)

  def kill():  # SIGKILL a child mid-run again and again, then let it finish
    kc = kill_chain(os.path.join(work, "kill"), rng, args.kills)
    ok = kc["digest"] == want[0] and metrics_of(os.path.join(work, "kill")) == want[1]
    return row("kills", "SIGKILL a training child mid-run, restart until done", ok, "yes", runs=kc["starts"],
               kills=kc["kills"], in_write=kc["in_write"], tracebacks=kc["tracebacks"])
  if "kill" in only:
    rows += guarded("kill", kill)

  base = os.path.join(work, "base")  # stopped at step 12, then damaged and resumed in-process
  if only & {"corrupt", "metadata", "links"}:
    run(base, max_steps=12)
  cases = {**(damage_cases(base) if "corrupt" in only else {}), **(metadata_cases() if "metadata" in only else {})}
  for name, damage in cases.items():
    d = os.path.join(work, f"c_{len(rows)}")
    shutil.copytree(base, d)
    damage(d)
    kind = "damaged checkpoints" if name in damage_cases(base) else "manifest schema, step read from inside"
    rows += guarded(name, resumed_row, kind, f"corrupt: {name}", d, want)

  def none_good():  # every checkpoint damaged: a one-line error naming the directory
    d = os.path.join(work, "none_good")
    shutil.copytree(base, d)
    present = checkpoint.steps(d)
    for s in present:
      os.remove(os.path.join(checkpoint.checkpoint_dir(d), str(s), checkpoint.MANIFEST_FILE))
    try:
      run(d)
      msg = ""
    except rundir.RunDirError as e:
      msg = str(e)
    good = bool(msg) and "\n" not in msg and d in msg
    return row("damaged checkpoints", "corrupt: every checkpoint damaged", good, "refused", damaged=len(present), one_line=int(good))
  if "corrupt" in only:
    rows += guarded("none good", none_good)
  for remove_lock in (False, True) if "concurrent" in only else ():
    rows += guarded("concurrent", concurrent, os.path.join(work, f"concurrent_{remove_lock}"), want, remove_lock)
  if "links" in only:
    rows += guarded("links", links, work, base, want)
  if "cli" in only:
    rows += guarded("command line", cli_cases, work)

  def nan():  # a poisoned batch
    d = os.path.join(work, "nan")
    try:
      run(d, poison=True)
      msg = ""
    except training.NonFiniteLossError as e:
      msg = str(e)
    kept = checkpoint.latest_step(d, log=None)
    good = f"at step {NAN_STEP};" in msg and "\n" not in msg and kept == NAN_STEP - 1
    return row("non-finite loss", f"non-finite loss at step {NAN_STEP}", good, f"stopped, kept step {kept}", one_line=int(good))
  if "nan" in only:
    rows += guarded("nan", nan)
  env = {**os.environ, **CHILD_ENV}
  if "sizes" in only:
    rows += guarded("sizes", edges.size_cases, work, env)
  if "files" in only:
    rows += guarded("files", edges.file_cases, work, env)
  if "data" in only:
    rows += guarded("data", edges.data_cases, work, env, CLI_ARGS, SENTENCES)
  if "disk" in only:
    rows += guarded("disk", disk_cases, work)
  if "library" in only:
    rows += guarded("library", edges.library_cases, work, env)

  shutil.rmtree(work, ignore_errors=True)
  t = totals(rows)
  data = {"rows": rows, "totals": t, "model": str(MCFG), "steps": TCFG.steps, "max_to_keep": TCFG.max_to_keep,
          "eval_every": TCFG.eval_every, "cli_args": CLI_ARGS, "skipped": SKIPPED}
  rec = provenance.write(
      started, args.out, data, seeds=[args.seed], render=render,
      model=f"a tiny LM ({MCFG.num_layers} layer, width {MCFG.width}, T={MCFG.seq_len}), {TCFG.steps} steps",
      headline=[("fault drill: scenarios as expected", f"{t['ok']} of {t['scenarios']}"),
                ("fault drill: SIGKILLs (during checkpoint writes), damaged checkpoints caught, tracebacks",
                 f"{t['kills']} ({t['in_write']}), {t['damaged']}, {t['tracebacks']}")])
  print(render(rec))
  return 0 if t["ok"] == t["scenarios"] else 1


if __name__ == "__main__":
  sys.exit(main())
