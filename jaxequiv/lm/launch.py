"""``python -m jaxequiv.lm.launch --processes N -- train ...``: N local processes of one multi-process JAX job.

The launcher starts ``python -m jaxequiv <command...>`` N times (or ``python
SCRIPT.py ...`` when the command starts with a ``.py`` file), process i with

* ``JAXEQUIV_COORDINATOR_ADDRESS=127.0.0.1:PORT`` (process 0 runs the coordinator),
* ``JAXEQUIV_NUM_PROCESSES=N``, ``JAXEQUIV_PROCESS_ID=i``,
* with ``--devices-per-process K``: ``--xla_force_host_platform_device_count=K``
  appended to ``XLA_FLAGS`` (K CPU devices per process),

which ``jaxequiv.lm.parallel.maybe_initialize_distributed`` reads (the same
code path a TPU pod slice or a Slurm job takes with its own environment; see
``docs/scaling.md``). Each line a process prints comes out prefixed ``[pI]``;
JAX's C++ log lines and crash stack frames are dropped (``--verbose`` keeps
them).

Exit status: 0 if every process exits 0; otherwise the status of the first
process that failed (128 + signal for a signal), after the launcher has stopped
the others (SIGTERM, then SIGKILL ``--grace`` seconds later), with one line
naming the process. ``--timeout`` bounds the whole job (status 124).

Examples::

    python -m jaxequiv.lm.launch --processes 2 -- train --data-parallel --data synthetic --steps 20 --out runs/mp
    python -m jaxequiv.lm.launch --processes 2 --devices-per-process 2 -- train --data-parallel --batch-size 8 ...
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence

from jaxequiv.lm import parallel

# JAX's C++ (absl) log lines, crash stack frames and gRPC status continuations.
_NOISE = re.compile(r"^([IWEF]\d{4} \d\d:\d\d:\d\d\.\d+ +\d+ \S+:\d+\]|\s+@\s+0x|\*\*\* Check failure|RPC: /|"
                    r"Additional GRPC error|:UNKNOWN:|\[type\.googleapis|\[Gloo\] Rank)")


def free_port() -> int:
  """A TCP port on 127.0.0.1 that was free a moment ago."""
  with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def child_env(base: dict, address: str, num_processes: int, process_id: int, devices_per_process: int | None,
              init_timeout_s: int, heartbeat_timeout_s: int) -> dict:
  """The environment of process ``process_id``.

  >>> env = child_env({"XLA_FLAGS": "--a"}, "127.0.0.1:5", 2, 1, 2, 60, 30)
  >>> env["JAXEQUIV_PROCESS_ID"], env["XLA_FLAGS"]
  ('1', '--a --xla_force_host_platform_device_count=2')
  """
  env = dict(base)
  env.update({parallel.COORDINATOR_ENV: address, parallel.NUM_PROCESSES_ENV: str(num_processes),
              parallel.PROCESS_ID_ENV: str(process_id), parallel.INIT_TIMEOUT_ENV: str(init_timeout_s),
              parallel.HEARTBEAT_TIMEOUT_ENV: str(heartbeat_timeout_s), "PYTHONUNBUFFERED": "1"})
  if devices_per_process is not None:
    env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + f" --xla_force_host_platform_device_count={devices_per_process}"
                        ).strip()
  return env


def _forward(stream, prefix: str, out, verbose: bool) -> None:
  for raw in iter(stream.readline, b""):
    line = raw.decode(errors="replace").rstrip("\n")
    if verbose or not _NOISE.search(line):
      print(f"{prefix}{line}", file=out, flush=True)
  stream.close()


def _status(code: int) -> int:
  return 128 - code if code < 0 else code


def _stop(procs: Sequence[subprocess.Popen], grace_s: float) -> None:
  for p in procs:
    if p.poll() is None:
      try:
        os.killpg(p.pid, signal.SIGTERM)
      except ProcessLookupError:  # pragma: no cover
        pass
  deadline = time.monotonic() + grace_s
  for p in procs:
    try:
      p.wait(max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
      try:
        os.killpg(p.pid, signal.SIGKILL)
      except ProcessLookupError:  # pragma: no cover
        pass
      p.wait()


def launch(command: Sequence[str], num_processes: int, *, devices_per_process: int | None = None,
           port: int | None = None, init_timeout_s: int = parallel.DEFAULT_INIT_TIMEOUT_S,
           heartbeat_timeout_s: int = parallel.DEFAULT_HEARTBEAT_TIMEOUT_S, timeout_s: float | None = None,
           grace_s: float = 10.0, verbose: bool = False, python: str = sys.executable) -> int:
  """Runs ``python -m jaxequiv *command`` (or ``python script.py ...`` if ``command[0]`` ends with ``.py``) as
  ``num_processes`` processes of one job; returns the exit status.

  See the module docstring for the environment, the output and the status.
  """
  if num_processes < 1:
    raise ValueError(f"--processes must be >= 1, got {num_processes}")
  address = f"127.0.0.1:{port or free_port()}"
  procs, threads = [], []
  for i in range(num_processes):
    env = child_env(os.environ, address, num_processes, i, devices_per_process, init_timeout_s, heartbeat_timeout_s)
    argv = [python, *command] if command[0].endswith(".py") else [python, "-m", "jaxequiv", *command]
    p = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, start_new_session=True)
    procs.append(p)
    for stream, out in ((p.stdout, sys.stdout), (p.stderr, sys.stderr)):
      t = threading.Thread(target=_forward, args=(stream, f"[p{i}] ", out, verbose), daemon=True)
      t.start()
      threads.append(t)
  start, status = time.monotonic(), 0
  try:
    while True:
      codes = [p.poll() for p in procs]
      failed = [(i, c) for i, c in enumerate(codes) if c not in (None, 0)]
      if failed:
        i, c = failed[0]
        running = sum(x is None for x in codes)
        print(f"jaxequiv launch: process {i} exited with status {_status(c)}; stopping the {running} still running",
              file=sys.stderr, flush=True)
        status = _status(c)
        break
      if all(c == 0 for c in codes):
        break
      if timeout_s is not None and time.monotonic() - start > timeout_s:
        print(f"jaxequiv launch: the job ran past --timeout {timeout_s:g} s; stopping it", file=sys.stderr, flush=True)
        status = 124
        break
      time.sleep(0.1)
  except KeyboardInterrupt:
    status = 130
  finally:
    _stop(procs, grace_s)
    for t in threads:
      t.join(5)
  return status


def main(argv: Sequence[str] | None = None) -> int:
  argv = list(sys.argv[1:] if argv is None else argv)
  if "--" not in argv:
    print("jaxequiv launch: error: put the jaxequiv command after --, e.g."
          " python -m jaxequiv.lm.launch --processes 2 -- train --data-parallel", file=sys.stderr)
    return 2
  cut = argv.index("--")
  parser = argparse.ArgumentParser(prog="python -m jaxequiv.lm.launch", description=__doc__.split("\n")[0])
  parser.add_argument("--processes", type=int, required=True, help="processes to start (N >= 1)")
  parser.add_argument("--devices-per-process", type=int, default=None,
                      help="CPU devices per process (--xla_force_host_platform_device_count)")
  parser.add_argument("--port", type=int, default=None, help="coordinator port on 127.0.0.1 (default: a free one)")
  parser.add_argument("--init-timeout", type=int, default=parallel.DEFAULT_INIT_TIMEOUT_S,
                      help="seconds every process may take to join")
  parser.add_argument("--heartbeat-timeout", type=int, default=parallel.DEFAULT_HEARTBEAT_TIMEOUT_S,
                      help="seconds of silence after which a process counts as dead")
  parser.add_argument("--timeout", type=float, default=None, help="stop the whole job after this many seconds")
  parser.add_argument("--grace", type=float, default=10.0, help="seconds between SIGTERM and SIGKILL when stopping")
  parser.add_argument("--verbose", action="store_true", help="keep JAX's C++ log lines")
  args = parser.parse_args(argv[:cut])
  for name in ("processes", "devices_per_process", "init_timeout", "heartbeat_timeout"):
    v = getattr(args, name)
    if v is not None and v < 1:
      parser.error(f"argument --{name.replace('_', '-')}: must be >= 1, got {v}")
  if not argv[cut + 1:]:
    parser.error("no jaxequiv command after --")
  return launch(argv[cut + 1:], args.processes, devices_per_process=args.devices_per_process, port=args.port,
                init_timeout_s=args.init_timeout, heartbeat_timeout_s=args.heartbeat_timeout, timeout_s=args.timeout,
                grace_s=args.grace, verbose=args.verbose)


if __name__ == "__main__":
  sys.exit(main())
