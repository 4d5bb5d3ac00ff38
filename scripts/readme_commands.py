"""Runs the README's commands as a user would and times them: results/readme_commands.{json,md}.

Every line of a README ```bash block that starts with ``jaxequiv `` is run, in order, in one fresh working directory
(so ``runs/lm`` written by one command is read by the next), through the ``jaxequiv`` console script of the active
environment. The record keeps each command's wall time, exit status and the end of its output; the README's table of
times is rendered from it (``python scripts/results.py --render``).

  python scripts/readme_commands.py [--readme README.md] [--out results/readme_commands]
"""

from __future__ import annotations

import argparse
import pathlib
import re
import shlex
import subprocess
import sys
import tempfile
import time

from jaxequiv import provenance

TAIL = 12  # output lines kept per command


def commands(readme: str) -> list[str]:
  """The README's ``jaxequiv ...`` command lines, in order, trailing comments removed."""
  out = []
  for block in re.findall(r"```bash\n(.*?)```", readme, re.S):
    for line in block.splitlines():
      line = line.split(" #", 1)[0].strip()
      if line.startswith("jaxequiv "):
        out.append(line)
  return out


def run_all(cmds: list[str], timeout_s: float) -> list[dict]:
  rows = []
  with tempfile.TemporaryDirectory(prefix="jaxequiv-readme-") as cwd:
    for cmd in cmds:
      t0 = time.perf_counter()
      try:
        p = subprocess.run(shlex.split(cmd), cwd=cwd, capture_output=True, text=True, timeout=timeout_s, check=False)
        code, text = p.returncode, p.stdout + p.stderr
      except subprocess.TimeoutExpired as e:
        code, text = "timeout", f"{e.stdout or ''}{e.stderr or ''}"
        text = text.decode() if isinstance(text, bytes) else text
      wall = time.perf_counter() - t0
      lines = [l.rstrip() for l in text.replace("\r", "\n").splitlines() if l.strip()]
      tail = [l for l in lines if "%|" not in l][-TAIL:]  # progress bars left out
      full = [l.rstrip() for l in text.splitlines() if l.startswith(("PASS", "FAIL", "WARN"))]
      rows.append({"command": cmd, "wall_s": round(wall, 1), "exit": code, "tail": tail, "full": full})
      print(f"{_mmss(wall):>8}  exit {code}  {cmd}", flush=True)
  return rows


def verify_table(rows: list[dict], keep: int = 200) -> str:
  """The README's bitwise table: ``jaxequiv verify``'s PASS/FAIL lines as a markdown table (empty if it did not run)."""
  run = next((r for r in rows if r["command"].split()[:2] == ["jaxequiv", "verify"]), None)
  if run is None:
    return ""
  lines = ["", "| check | result |", "|---|---|"]
  for line in run["full"]:
    status, _, rest = line.partition("  ")
    if status in ("PASS", "FAIL", "WARN") and ":" in rest:
      check, _, detail = rest.partition(": ")
      detail = detail if len(detail) <= keep else detail[: keep - 1] + "…"
      lines.append(f"| {status} {check} | {detail.replace('|', '/')} |")
  return "\n".join(lines) + "\n"


def _mmss(seconds: float) -> str:
  m, s = divmod(round(seconds), 60)
  return f"{m} min {s:02d} s" if m else f"{s} s"


def render(rec: dict) -> str:
  """results/readme_commands.md from its record."""
  lines = ["# The README's commands, timed", "", *provenance.header(rec), "",
           "| command | wall time | exit |", "|---|---|---|"]
  lines += [f"| `{r['command']}` | {_mmss(r['wall_s'])} | {r['exit']} |" for r in rec["data"]["commands"]]
  for r in rec["data"]["commands"]:
    lines += ["", f"### `{r['command']}`", "", "```", *r["tail"], "```"]
  return "\n".join(lines)


def main() -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--readme", default=str(provenance.ROOT / "README.md"))
  parser.add_argument("--out", default="results/readme_commands")
  parser.add_argument("--timeout", type=float, default=1800, help="seconds per command")
  args = parser.parse_args()
  readme = provenance.require(args.readme, "the README")
  run = provenance.start()
  cmds = commands(readme.read_text())
  if not cmds:
    print(f"readme_commands: no `jaxequiv ...` line in a bash block of {readme}", file=sys.stderr)
    return 1
  rows = run_all(cmds, args.timeout)
  package = sorted(str(p) for p in (provenance.ROOT / "jaxequiv").rglob("*.py"))
  rec = provenance.write(
      run, args.out, {"commands": rows, "verify_table": verify_table(rows)}, seeds=[0], render=render,
      inputs=package,  # not README.md: rendering this record into it would make the record stale by construction;
      # tests/readme_test.py fails instead when the README's commands differ from the recorded ones
      model="the CLI's defaults as the README runs them (see each command's output for its model and steps)",
      headline=[(f"`{r['command']}`", f"{_mmss(r['wall_s'])}" + ("" if r["exit"] == 0 else f" (exit {r['exit']})"))
                for r in rows])
  print(render(rec))
  return 0 if all(r["exit"] == 0 for r in rows) else 1


if __name__ == "__main__":
  sys.exit(main())
