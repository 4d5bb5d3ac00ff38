"""The fault drill's command-line edges: size bounds, input files, full and read-only disks, changed data, the library.

``scripts/fault_drill.py`` runs these kinds beside its training scenarios; each case here runs
``python -m jaxequiv CMD ...`` in a subprocess, with a timeout (a hang fails the case), and expects its exit status,
one closing line ``jaxequiv CMD: ...`` holding a given text, and no traceback. Size and file refusals must also come
before JAX is imported (so before anything is allocated): the subprocess reports whether ``jax`` was imported.

* sizes: huge ``train``/``sample``/``labels``/``verify`` size flags and ``verify --model`` sizes: refused with the
  memory estimate.
* input files: a FIFO, ``/dev/zero``, a sparse file over the limit as ``--data``, ``--class-names``, ``--model``, and a
  FIFO or a link to ``/dev/zero`` as a run's ``config.json``: refused at once, naming the file.
* disk: a checkpoint write past the file-size limit (``RLIMIT_FSIZE``: EFBIG), a full tmpfs (ENOSPC) and a read-only
  one (EROFS), the last two in a private mount namespace (``unshare -m``, root only; skipped, and said so, elsewhere):
  one line naming the last good checkpoint, which still verifies; resumed, the run ends bitwise equal.
* data: ``--resume`` after the data file changed is refused naming ``data_sha256``; from another directory (a
  different file under the same relative name) it resumes on the recorded absolute path.
* library: ``canonical_order`` of a generator, error measures of trees of different structures, ``compare_bits`` of
  complex and typed-key leaves, and the tfds extra's ``importlib_resources``.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable

# Runs the command line like ``python -m jaxequiv`` and says on stderr whether JAX was imported.
RUNNER = ("import sys\nfrom jaxequiv import cli\nrc = cli.main(sys.argv[1:])\n"
          "print('drill: jax imported' if 'jax' in sys.modules else 'drill: no jax', file=sys.stderr)\nsys.exit(rc)")
CLOSING = re.compile(r"^jaxequiv \w+: ")  # the command line's own closing error or stop line
HUGE = "10000000000"
WIDE_MODEL = '''
import jax, jax.numpy as jnp

def make():
  params = {"embed": jnp.zeros((66, 256)), "out": jnp.zeros((256, 64))}
  return (lambda p, tokens: jnp.tanh(p["embed"][tokens]) @ p["out"]), params
'''


def row(kind: str, scenario: str, ok: bool, outcome: str, *, runs: int = 1, kills: int = 0, in_write: int = 0,
        damaged: int = 0, one_line: int = 0, tracebacks: int = 0) -> dict:
  """One scenario's result; ``kind`` is the table it goes in (the issue's kinds)."""
  return {"kind": kind, "scenario": scenario, "runs": runs, "kills": kills, "in_write": in_write, "damaged": damaged,
          "one_line": one_line, "tracebacks": tracebacks, "outcome": outcome if ok else f"NO: {outcome}", "ok": ok}


def command(argv: list[str]) -> list[str]:
  return [sys.executable, "-c", RUNNER, *argv]


def cli_case(kind: str, scenario: str, argv: list[str], needle: str, *, env: dict, rc: int = 2,
             before_jax: bool = True, timeout: float = 300, cwd: str | None = None,
             shell: str | None = None) -> tuple[dict, str]:
  """Runs the command line (or ``shell``, a command for ``sh -c``); (the row, the closing line).

  As expected: exit status ``rc``, exactly one closing line and it holds ``needle``, no traceback, and with
  ``before_jax`` no other stderr line and no JAX imported.
  """
  args = ["sh", "-c", shell] if shell else command(argv)
  t0 = time.time()
  try:
    proc = subprocess.run(args, capture_output=True, text=True, timeout=timeout, env=env, cwd=cwd, check=False)
  except subprocess.TimeoutExpired:
    return row(kind, scenario, False, f"still running after {timeout:.0f} s (a hang)", tracebacks=0), ""
  lines = [l for l in proc.stderr.splitlines() if l.strip() and not l.startswith("drill: ")]
  closing = [l for l in lines if CLOSING.match(l)]
  said = len(closing) == 1 and needle in closing[0]
  tracebacks = proc.stderr.count("Traceback")
  ok = proc.returncode == rc and said and tracebacks == 0
  if before_jax:
    ok = ok and len(lines) == 1 and "drill: no jax" in proc.stderr
  print(f"{scenario}: exit {proc.returncode} in {time.time() - t0:.1f} s: {closing or proc.stderr[-500:]}", flush=True)
  what = f"exit {proc.returncode}, one line" + (", before JAX" if before_jax and ok else "")
  return row(kind, scenario, ok, what, one_line=int(said), tracebacks=tracebacks), (closing or [""])[0]


def config_only_run(work: str) -> str:
  """A run directory holding only a config.json (T=64, width 128, 2 layers), no checkpoint."""
  d = os.path.join(work, "config_only_run")
  os.makedirs(d, exist_ok=True)
  with open(os.path.join(d, "config.json"), "w") as f:
    f.write('{"model": {"seq_len": 64, "width": 128, "num_layers": 2}}\n')
  return d


def size_cases(work: str, env: dict) -> list[dict]:
  """Size flags that cannot fit in this machine: refused with the estimate, before JAX (``--model``: before the checks)."""
  cfgrun = config_only_run(work)
  wide = os.path.join(work, "wide_model.py")
  with open(wide, "w") as f:
    f.write(WIDE_MODEL)
  cases = [("train --batch-size 1e10", ["train", "--batch-size", HUGE]),
           ("train --seq-len 1e7", ["train", "--seq-len", "10000000"]),
           ("train --width 1e6", ["train", "--width", "1000000", "--heads", "4"]),
           ("sample --num-samples 1e10", ["sample", "--checkpoint", cfgrun, "--num-samples", HUGE]),
           ("labels --num-train 1e10", ["labels", "--num-train", HUGE]),
           ("labels --image-size 1e6", ["labels", "--image-size", "1000000"]),
           ("verify --seq-len 1e7", ["verify", "--seq-len", "10000000"])]
  rows = [cli_case("sizes", name, argv, "needs about", env=env)[0] for name, argv in cases]
  rows.append(cli_case("sizes", "verify --model with --sentences 1e5 x --seq-len 1e5",
                       ["verify", "--model", f"{wide}:make", "--sentences", "100000", "--seq-len", "100000",
                        "--no-determinism-flags"], "needs about", env=env, before_jax=False)[0])
  return rows


def file_cases(work: str, env: dict) -> list[dict]:
  """Input files that are not regular, or too large: refused at once, naming the file."""
  d = os.path.join(work, "files")
  os.makedirs(d, exist_ok=True)
  fifo, big = os.path.join(d, "pipe.txt"), os.path.join(d, "big.txt")
  os.mkfifo(fifo)
  with open(big, "wb") as f:  # sparse: 1 GiB + 1 byte on paper
    f.truncate(2**30 + 1)
  fifo_run, zero_run = os.path.join(d, "fifo_run"), os.path.join(d, "zero_run")
  os.makedirs(fifo_run)
  os.mkfifo(os.path.join(fifo_run, "config.json"))
  os.makedirs(zero_run)
  os.symlink("/dev/zero", os.path.join(zero_run, "config.json"))
  out = ["--out", os.path.join(d, "run")]
  cases = [("train --data a FIFO", ["train", "--data", fifo, *out], "is a FIFO (named pipe), not a regular file"),
           ("train --data /dev/zero", ["train", "--data", "/dev/zero", *out], "is a character device"),
           ("train --data a 1 GiB + 1 byte file (sparse)", ["train", "--data", big, *out], "more than the"),
           ("labels --class-names a FIFO", ["labels", "--class-names", fifo], "is a FIFO (named pipe)"),
           ("labels --class-names /dev/zero", ["labels", "--class-names", "/dev/zero"], "is a character device"),
           ("verify --model a FIFO", ["verify", "--model", f"{fifo}:make"], "is a FIFO (named pipe)"),
           ("sample: the run's config.json a FIFO", ["sample", "--checkpoint", fifo_run], "is a FIFO (named pipe)"),
           ("sample: the run's config.json a link to /dev/zero", ["sample", "--checkpoint", zero_run],
            "is a symbolic link, not followed here")]
  return [cli_case("input files", name, argv, needle, env=env, timeout=120)[0] for name, argv, needle in cases]


def can_mount() -> bool:
  """Whether ``unshare -m`` can mount a tmpfs here (root with a private mount namespace)."""
  if shutil.which("unshare") is None:
    return False
  probe = subprocess.run(["unshare", "-m", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt"], capture_output=True,
                         check=False)
  return probe.returncode == 0


def disk_cases(work: str, env: dict, cli_args: list[str], stopped: str, want: tuple,
               run_digest: Callable[[str], tuple], latest_step: Callable[[str], int | None]) -> tuple[list[dict], list]:
  """Writes that fail on the disk: (rows, skipped scenarios with the reason).

  ``stopped`` is a command-line run stopped at a step; ``want`` the uninterrupted run's ``run_digest``.
  """
  rows, skipped = [], []
  before = latest_step(stopped)

  def finish(d: str) -> bool:  # resumed without the fault, the run ends bitwise equal to the uninterrupted one
    proc = subprocess.run(command(["train", "--resume", "--out", d, "--num-samples", "0", "--no-progress"]),
                          capture_output=True, text=True, env=env, check=False)
    return proc.returncode == 0 and run_digest(d) == want

  d = os.path.join(work, "disk_efbig")
  shutil.copytree(stopped, d)
  resume = shlex.join(command(["train", "--resume", "--out", d, "--num-samples", "0", "--no-progress"]))
  # files past 8 KiB fail with EFBIG (SIGXFSZ ignored); checkpoint files of this model are 20-40 KiB
  r, line = cli_case("disk", f"checkpoint write past RLIMIT_FSIZE (EFBIG), resuming a run stopped at step {before}",
                     [], f"(EFBIG); the last good checkpoint is step {before} in {d}", env=env, rc=1,
                     before_jax=False, shell=f"ulimit -f 16 && trap '' XFSZ && exec {resume}")
  rows.append(_kept(r, d, before, latest_step, finish))
  if not can_mount():
    return rows, ["full disk (ENOSPC) and read-only directory (EROFS): need `unshare -m` and mount (root)"]
  mnt = os.path.join(work, "mnt")
  os.makedirs(mnt, exist_ok=True)
  d = os.path.join(work, "disk_enospc")
  train = shlex.join(command(["train", *cli_args, "--out", f"{mnt}/run"]))
  # a checkpoint of this model takes about 240 KiB in tmpfs pages: two fit, the third does not
  shell = (f"mount -t tmpfs -o size=640k tmpfs {mnt} && {{ {train}; rc=$?; cp -a {mnt}/run {d}; exit $rc; }}")
  r, line = cli_case("disk", "a fresh run on a 640 KiB tmpfs (ENOSPC)", [], "(ENOSPC); the last good checkpoint is step",
                     env=env, rc=1, before_jax=False, shell=f"unshare -m sh -c {shlex.quote(shell)}")
  m = re.search(r"is step (\d+) in", line)
  rows.append(_kept(r, d, int(m[1]) if m else -1, latest_step, finish))
  d = os.path.join(work, "disk_erofs")
  resume = shlex.join(command(["train", "--resume", "--out", f"{mnt}/run", "--num-samples", "0", "--no-progress"]))
  shell = f"mount -t tmpfs tmpfs {mnt} && cp -a {stopped} {mnt}/run && mount -o remount,ro {mnt} && {resume}"
  r, line = cli_case("disk", f"resuming a run stopped at step {before} on a read-only tmpfs (EROFS)", [],
                     f"(EROFS); the last good checkpoint is step {before}", env=env, rc=1, before_jax=False,
                     shell=f"unshare -m sh -c {shlex.quote(shell)}")
  rows.append(r)
  return rows, skipped


def _kept(r: dict, d: str, step: int, latest_step, finish) -> dict:
  """The row, failed unless the named checkpoint is still the newest good one and the run then finishes bitwise."""
  if not r["ok"]:
    return r
  kept = latest_step(d) == step
  done = kept and finish(d)
  if not done:
    r.update(ok=False, outcome=f"NO: {r['outcome']}; " + ("resumed: not bitwise equal" if kept
                                                           else f"step {step} no longer verifies"))
  else:
    r.update(runs=2, outcome=f"{r['outcome']}; step {step} kept and verifies; resumed: bitwise equal")
  return r


def data_cases(work: str, env: dict, cli_args: list[str], sentences: list[str]) -> list[dict]:
  """The data file is recorded by absolute path and SHA-256: a changed file is refused, another directory is not."""
  a, b = os.path.join(work, "data_a"), os.path.join(work, "data_b")
  os.makedirs(a), os.makedirs(b)
  with open(os.path.join(a, "corpus.txt"), "w") as f:
    f.write(" ".join(sentences) + "\n")
  with open(os.path.join(b, "corpus.txt"), "w") as f:
    f.write(" ".join(reversed(sentences)) + "\n")  # the same name elsewhere: other data
  assert cli_args[:4] == ["--data", "synthetic", "--num-synthetic", "50"], cli_args
  run = os.path.join(work, "data_run")
  first = subprocess.run(command(["train", "--data", "corpus.txt", *cli_args[4:], "--out", run,
                                  "--max-steps-this-run", "2"]), cwd=a, capture_output=True, text=True, env=env,
                         check=False)
  if first.returncode != 0:
    return [row("data", "a run on a data file", False, f"the first run failed: {first.stderr[-300:]}")]
  # From b, a relative corpus.txt would be other data: resuming reads the recorded absolute path (else refused).
  again = subprocess.run(command(["train", "--resume", "--out", run, "--max-steps-this-run", "1", "--num-samples",
                                  "0", "--no-progress"]), cwd=b, capture_output=True, text=True, env=env, check=False)
  ok = again.returncode == 0 and "Traceback" not in again.stderr and "stopped at step 3" in again.stdout
  print("data from another directory:", again.returncode, again.stdout[-200:], again.stderr[-300:], flush=True)
  rows = [row("data", "--resume from another directory holding another corpus.txt", ok,
              f"exit {again.returncode}: resumed on the recorded absolute path",
              tracebacks=again.stderr.count("Traceback"))]
  with open(os.path.join(a, "corpus.txt"), "a") as f:
    f.write("One more sentence.\n")
  rows.append(cli_case("data", "--resume after the data file changed", ["train", "--resume", "--out", run],
                       "data_sha256: recorded", env=env, before_jax=False)[0])
  return rows


def library_cases(work: str, env: dict) -> list[dict]:
  """The library edges the adversary found, in-process (each a wrong answer or a traceback before), and the tfds
  extra; ``sample --prompt`` checked before JAX starts or a checkpoint loads."""
  import jax  # pylint: disable=import-outside-toplevel
  import numpy as np  # pylint: disable=import-outside-toplevel
  from jaxequiv import batches, bitwise  # pylint: disable=import-outside-toplevel
  cfgrun = config_only_run(work)

  def check(scenario: str, fn: Callable[[], tuple[bool, str]], kind: str = "library") -> dict:
    try:
      ok, outcome = fn()
    except Exception as e:  # pylint: disable=broad-except
      return row(kind, scenario, False, f"{type(e).__name__}: {str(e)[:200]}", tracebacks=1)
    return row(kind, scenario, ok, outcome, one_line=int("refused" in outcome))

  def generator():
    got = batches.canonical_order(s for s in ["b.", "a."])
    return got == batches.canonical_order(["b.", "a."]) and got != [], f"the list's order ({got})"

  def structures(measure):
    def case():
      try:
        measure({"a": np.ones(2), "b": np.ones(2)}, {"a": np.ones(2)})
      except ValueError as e:
        return "\n" not in str(e) and "structure" in str(e), "refused in one line"
      return False, "returned a number"
    return case

  def complex_bits():
    x = np.array([1 + 2j, 3 - 1j], np.complex128)
    y = x.copy()
    y[1] = 3 - 1.0000000000000002j
    same, diff = bitwise.compare_bits(x, x.copy()), bitwise.compare_bits(x, y)
    return same.equal and not diff.equal, "equal to itself, a one-ulp imaginary change found"

  def typed_keys():
    k, k2 = jax.random.key(0), jax.random.key(1)
    return bitwise.compare_bits(k, jax.random.key(0)).equal and not bitwise.compare_bits(k, k2).equal, \
        "compared by key data"

  def importlib_resources():
    import importlib.util  # pylint: disable=import-outside-toplevel
    if importlib.util.find_spec("tensorflow_datasets") is None:
      return True, "tensorflow-datasets not installed (the extra's dependency not needed)"
    import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel
    import tempfile  # pylint: disable=import-outside-toplevel
    path = str(tfds.builder("tiny_shakespeare", data_dir=tempfile.mkdtemp()).code_path)
    return path.endswith(".py"), "tiny_shakespeare's builder finds its code (importlib_resources installed)"

  return [check("canonical_order of a generator", generator),
          check("max_relative_error of trees of different structures", structures(bitwise.max_relative_error)),
          check("max_ulp_distance of trees of different structures", structures(bitwise.max_ulp_distance)),
          check("compare_bits of complex128 leaves", complex_bits),
          check("compare_bits of typed PRNG keys", typed_keys),
          check("tensorflow-datasets' builder finds its code path", importlib_resources, "tfds extra"),
          cli_case("library", "sample --prompt 'Hi.' (a '.' inside) on a run without a checkpoint yet",
                   ["sample", "--checkpoint", cfgrun, "--prompt", "Hi."], "prompt has '.' at position 2", env=env,
                   before_jax=False)[0]]  # lm.sample's check imports JAX (not started: tests/cli/sample_test.py)
