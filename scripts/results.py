"""The results pipeline: which results are stale, rerun them, render their markdown and the README's numbers.

  python scripts/results.py --stale          # results whose sources changed; exit 1 if README.md or docs/ cite one
  python scripts/results.py --rerun NAME     # rerun one at its recorded command (results/NAME.json)
  python scripts/results.py --plan           # what --all would run, in its order, with each estimated time
  python scripts/results.py --all            # rerun everything (prints the estimated total time first)
  python scripts/results.py --render         # rebuild results/*.md from the JSON and the README's marked blocks

Every results file is ``results/<name>.json`` written by ``jaxequiv.provenance.write`` (its markdown is rendered from
it). A file written before provenance existed (a ``.md`` alone, or a JSON without ``provenance``) is stale; the
command that reruns it, and its estimated wall time, are in ``LEGACY`` below until it has been rerun.

``--all`` reruns a result after every result whose JSON its record hashes (``profile_step`` reads
``results/bench_peers.json``), and the reports (``REPORTS``: ``taxonomy``, ``roles``, rendered from every
``results/<report>_*.json``) after their inputs, last.

Marked blocks in README.md and docs/ are rendered from the records, wherever they sit:

  <!-- results:table NAME NAME ... -->...<!-- /results -->   a table: one row per headline of each record
  <!-- results:NAME -->...<!-- /results -->                  the record's headline results, inline
  <!-- results:NAME PATH [FORMAT] -->...<!-- /results -->    one value: PATH is dotted (data.rows.0.ratio)

A decimal typed outside a block, in a paragraph that cites ``results/NAME.md``, must be a number of that result's files
(``quoted_mismatches``; tests/results_test.py fails otherwise).
"""

from __future__ import annotations

import argparse
import decimal
import importlib.util
import json
import pathlib
import re
import shlex
import subprocess
import sys

from jaxequiv import provenance

ROOT = provenance.ROOT
BLOCK = re.compile(r"<!-- results:(?P<spec>[^>]*?) -->(?P<body>.*?)<!-- /results -->", re.S)
CITE = re.compile(r"results/([A-Za-z0-9_]+\*?)\.(?:md|json|png)")
REPORTS = ("taxonomy", "roles")  # rendered from every results/<report>_*.json: rerun after them

# Results written before the pipeline (no provenance): the command that reruns each at the settings of its legacy
# file, and the wall time to expect on 2 quiet cores (seconds) with where that number comes from. A result's own
# record (its ``provenance.argv`` and ``wall_s``) takes over once it has been rerun.
LEGACY: dict[str, tuple[str, float, str]] = {
    "bench_equivalence": ("scripts/bench_equivalence.py --repeats 30 --out results/bench_equivalence", 180,
                          "guess: the legacy run's load readings span 2 min"),
    "bench_peers": ("scripts/bench_peers.py --out results/bench_peers", 300,
                    "guess: 2 presets x 2 systems x 12 windows"),
    "bench_peers_1core": ("scripts/bench_peers.py --torch-threads 1 --out results/bench_peers_1core", 300,
                          "guess: as bench_peers"),
    "bench_train": ("scripts/bench_train.py --out results/bench_train", 20,
                    "legacy: 2 x 53 steps of 72 ms plus 2 compiles of 3.5 s"),
    "iid_vs_lm": ("scripts/quality.py iid_vs_lm", 760, "legacy wall times 57 + 49 + 653 s, at load 9.7"),
    "quality_shakespeare": ("scripts/quality.py shakespeare", 290, "legacy wall time 288 s, at load 8.3"),
    "quality_synthetic": ("scripts/quality.py synthetic", 490, "legacy wall time 485 s, at load 5.7"),
    "roles_jem": ("scripts/roles_jem.py --seeds 3 --exact-steps 400 --lm-steps 1500 --sgld-steps 2000"
                  " --parts exact,lm,sgld --out results/roles_jem --png results/roles_jem_samples.png", 420,
                  "legacy: its parts' seconds sum to 422"),
    "roles_reductio": ("scripts/roles_reductio.py --seeds 5 --steps 300 --batch-size 16 --width 32 --num-layers 2"
                       " --datasets builtin,digits --out results/roles_reductio", 325,
                       "legacy: its grids' seconds sum to 324"),
    "sample_agreement": ("scripts/sample_agreement.py --out results/sample_agreement", 150,
                         "estimate: the same run with 64 samples took 74 s at load 11"),
    "zero_shot": ("scripts/zero_shot.py --out results/zero_shot", 600,
                  "estimate: 3 seeds x (1500 steps ~175 s + evaluation ~20 s), scaled from the legacy"
                  " 600-step CLI run (70 s) and a 150-step run (52 s + 48 s at load 12)"),
}


def load(results: pathlib.Path) -> dict[str, dict | None]:
  """Every result by name: its JSON record, or None for a markdown file without a JSON (legacy)."""
  out: dict[str, dict | None] = {}
  for f in sorted(results.glob("*.md")):
    out[f.stem] = None
  for f in sorted(results.glob("*.json")):
    out[f.stem] = json.loads(f.read_text())
  return out


def documents(root: pathlib.Path) -> list[pathlib.Path]:
  """README.md and every markdown file under docs/."""
  return [p for p in [root / "README.md", *sorted((root / "docs").rglob("*.md"))] if p.exists()]


def cited(root: pathlib.Path, names: list[str]) -> dict[str, list[str]]:
  """Result names cited by README.md or docs/ (as ``results/NAME.md``, a glob, or a marked block) -> documents."""
  out: dict[str, list[str]] = {}
  for doc in documents(root):
    text = doc.read_text()
    refs = set(CITE.findall(text))
    for m in BLOCK.finditer(text):
      refs.update(_block_names(m["spec"]))
    for ref in refs:
      for n in names:
        if n == ref or (ref.endswith("*") and n.startswith(ref[:-1])):
          out.setdefault(n, []).append(doc.relative_to(root).as_posix())
  return out


def stale(records: dict[str, dict | None]) -> dict[str, list[str]]:
  """Stale results by name, with the reasons."""
  out = {}
  for name, rec in records.items():
    reasons = provenance.stale_reasons(rec or {})
    if reasons:
      out[name] = reasons
  return out


QUOTED = re.compile(r"(?<![\w.\-])(\d+\.\d+(?:e-?\d+)?)")  # a decimal quoted in prose: 0.950, 1.2e-6
NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")


def _rounds_to(quoted: str, values: list[float]) -> bool:
  """Whether some value (or 100 x it, a percentage) rounds to ``quoted`` at the precision it is quoted with."""
  q = decimal.Decimal(quoted)
  half = decimal.Decimal(1).scaleb(q.as_tuple().exponent) / 2
  return any(abs(decimal.Decimal(repr(abs(s))) - q) <= half for v in values for s in (v, 100 * v))


def quoted_mismatches(root: pathlib.Path) -> list[str]:
  """Decimals in README.md and docs/ that no number in the results they cite rounds to.

  A paragraph that cites ``results/NAME.md`` (or .json, .png) quotes its numbers from those files: every decimal in
  it, outside marked blocks (which are rendered) and code blocks, must be some number of NAME.json or NAME.md at the
  quoted precision (a percentage may quote a fraction). Returns ``"DOC: NUMBER (cites NAME, ...): ...context"`` lines.
  """
  out = []
  for doc in documents(root):
    text = re.sub(r"```.*?```", "", BLOCK.sub("", doc.read_text()), flags=re.S)
    for para in re.split(r"\n\s*\n", text):
      names = sorted({n for n in CITE.findall(para) if not n.endswith("*")})
      files = [root / "results" / f"{n}.{ext}" for n in names for ext in ("json", "md")]
      values = [float(x) for f in files if f.exists() for x in NUMBER.findall(f.read_text())]
      for m in QUOTED.finditer(para) if names else ():
        if not _rounds_to(m[1], values):
          where = " ".join(para[max(0, m.start() - 50):m.end() + 10].split())
          out.append(f"{doc.relative_to(root).as_posix()}: {m[1]} (cites {', '.join(names)}): ...{where}...")
  return out


def _has_provenance(rec: dict | None) -> bool:
  return bool(rec) and "provenance" in rec


def command(name: str, results: pathlib.Path) -> list[str]:
  """The argv that reruns a result: recorded in its JSON, or (a legacy file) the ``LEGACY`` table's."""
  records = load(results)
  if name not in records:
    raise SystemExit(f"--rerun: no result named {name!r} in {results} (known: {', '.join(records)})")
  rec = records[name]
  if _has_provenance(rec):
    return list(rec["provenance"]["argv"])
  if name not in LEGACY:
    raise SystemExit(f"--rerun: {name} has no provenance and no command in scripts/results.py's LEGACY table")
  return shlex.split(LEGACY[name][0])


def estimate(name: str, rec: dict | None) -> tuple[float | None, str]:
  """Expected wall seconds of a rerun and where the number comes from."""
  if _has_provenance(rec):
    return rec["provenance"]["wall_s"], "recorded"
  if name in LEGACY:
    return LEGACY[name][1], LEGACY[name][2]
  return None, "unknown"


def order(records: dict[str, dict | None]) -> list[str]:
  """The rerun order: each result after those whose JSON its record hashes, each report after its inputs."""
  deps = {}
  for name, rec in records.items():
    sources = rec["provenance"].get("sources", {}) if _has_provenance(rec) else {}
    deps[name] = {m for m in records if m != name and f"results/{m}.json" in sources}
    if name in REPORTS:
      deps[name] |= {m for m in records if m.startswith(f"{name}_")}
  done: list[str] = []
  while len(done) < len(deps):
    ready = sorted(n for n in deps if n not in done and deps[n] <= set(done))
    if not ready:
      raise SystemExit(f"--all: the results' dependencies form a cycle among {sorted(set(deps) - set(done))}")
    done.append(min(ready, key=lambda n: (n in REPORTS, n)))
  return done


def rerun(name: str, results: pathlib.Path) -> int:
  argv = command(name, results)
  print(f"rerun {name}: python {shlex.join(argv)}", flush=True)
  return subprocess.run([sys.executable, *argv], cwd=ROOT, check=False).returncode


def plan(results: pathlib.Path) -> tuple[list[str], str]:
  """The rerun order and the line that states the estimated total."""
  records = load(results)
  names = order(records)
  walls = {n: estimate(n, records[n])[0] for n in names}
  known = [w for w in walls.values() if w is not None]
  unknown = [n for n in names if walls[n] is None]
  n_legacy = sum(1 for n in names if not _has_provenance(records[n]) and n in LEGACY)
  line = (f"estimated total: {sum(known) / 60:.1f} min for {len(names)} results ({len(known) - n_legacy} from their"
          f" recorded wall times, {n_legacy} from the LEGACY table's estimates)"
          + (f"; {len(unknown)} without an estimate ({', '.join(unknown)})" if unknown else ""))
  return names, line


def rerun_all(results: pathlib.Path) -> int:
  names, line = plan(results)
  print(line, flush=True)
  failed = []
  for n in names:
    try:
      rc = rerun(n, results)
    except SystemExit as e:  # a legacy file without a command
      print(e)
      rc = 1
    if rc != 0:
      failed.append(n)
  if failed:
    print(f"failed: {', '.join(failed)}")
  return 1 if failed else 0


# ----------------------------------------------------------------------------------------------- rendering


def _block_names(spec: str) -> list[str]:
  words = spec.split()
  return words[1:] if words and words[0] == "table" else words[:1]


def _row_cell(name: str, rec: dict | None) -> str:
  if not rec or "provenance" not in rec:
    return f"`results/{name}.md` (no provenance yet)"
  return f"`results/{name}.json` ({rec['provenance']['commit'][:7]})"  # staleness: --stale, not the rendered text


def _get(rec: dict, path: str):
  x = rec
  for key in path.split("."):
    x = x[int(key)] if isinstance(x, list) else x[key]
  return x


def render_block(spec: str, records: dict[str, dict | None]) -> str:
  """The text of one marked block, from the records."""
  words = spec.split()
  if not words:
    raise ValueError("empty results block")
  if words[0] == "table":
    lines = ["", "| what | result | file (commit) |", "|---|---|---|"]
    for name in words[1:]:
      rec = records.get(name)
      heads = (rec or {}).get("headline") or [{"what": name, "result": "not yet rerun with provenance:"
                                                f" `python scripts/results.py --rerun {name}`"}]
      lines += [f"| {h['what']} | {h['result']} | {_row_cell(name, rec)} |" for h in heads]
    return "\n".join(lines) + "\n"
  name, rec = words[0], records.get(words[0])
  if not rec or "provenance" not in rec:
    return f"(results/{name}: not yet rerun with provenance)"
  if len(words) == 1:
    return "; ".join(f"{h['what']}: {h['result']}" for h in rec["headline"])
  value = _get(rec, words[1])
  return format(value, words[2]) if len(words) > 2 else str(value)


def render_text(text: str, records: dict[str, dict | None]) -> str:
  """``text`` with every marked block re-rendered."""
  return BLOCK.sub(lambda m: f"<!-- results:{m['spec']} -->{render_block(m['spec'], records)}<!-- /results -->", text)


def _script_render(rec: dict):
  script = ROOT / rec["provenance"]["argv"][0]
  if not script.exists():
    return None
  spec = importlib.util.spec_from_file_location(f"_results_{script.stem}", script)
  module = importlib.util.module_from_spec(spec)
  sys.path.insert(0, str(script.parent))
  try:
    spec.loader.exec_module(module)
  finally:
    sys.path.remove(str(script.parent))
  return getattr(module, "render", None)


def render_all(root: pathlib.Path) -> list[str]:
  """Re-renders results/*.md from their records, then the marked blocks; returns the files changed."""
  results = root / "results"
  records = load(results)
  changed = []
  for name, rec in records.items():
    fn = _script_render(rec) if rec and "provenance" in rec else None
    md = results / f"{name}.md"
    if fn is not None:
      text = fn(rec).rstrip("\n") + "\n"
      if not md.exists() or md.read_text() != text:
        md.write_text(text)
        changed.append(md.relative_to(root).as_posix())
  for doc in documents(root):
    text = doc.read_text()
    new = render_text(text, records)
    if new != text:
      doc.write_text(new)
      changed.append(doc.relative_to(root).as_posix())
  return changed


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  g = p.add_mutually_exclusive_group(required=True)
  g.add_argument("--stale", action="store_true", help="list stale results; exit 1 if README.md or docs/ cite one")
  g.add_argument("--rerun", metavar="NAME", help="rerun one result at its recorded command")
  g.add_argument("--plan", action="store_true", help="print what --all would run, in order, with estimated times")
  g.add_argument("--all", action="store_true", help="rerun every result (prints the estimated total time first)")
  g.add_argument("--render", action="store_true", help="rebuild results/*.md and the marked blocks from the JSON")
  a = p.parse_args(argv)
  results = ROOT / "results"
  if a.rerun:
    return rerun(a.rerun, results)
  if a.all:
    return rerun_all(results)
  if a.plan:
    names, line = plan(results)
    records = load(results)
    for n in names:
      wall, where = estimate(n, records[n])
      when = "?" if wall is None else f"{wall:.0f} s"
      print(f"{n}: python {shlex.join(command(n, results))}  [{when}, {where}]")
    print(line)
    return 0
  if a.render:
    for f in render_all(ROOT):
      print(f"rendered {f}")
    return 0
  records = load(results)
  bad = stale(records)
  cites = cited(ROOT, list(records))
  for name, reasons in bad.items():
    where = f"  CITED by {', '.join(sorted(set(cites[name])))}" if name in cites else ""
    print(f"{name}: stale ({'; '.join(reasons[:3])}{'; ...' if len(reasons) > 3 else ''}){where}")
  cited_stale = sorted(set(bad) & set(cites))
  print(f"{len(bad)} of {len(records)} results stale; {len(cited_stale)} of them cited by README.md or docs/")
  return 1 if cited_stale else 0


if __name__ == "__main__":
  sys.exit(main())
