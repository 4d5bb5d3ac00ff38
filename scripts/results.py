"""The results pipeline: which results are stale, rerun them, render their markdown and the README's numbers.

  python scripts/results.py --stale          # results whose sources changed; exit 1 if README.md or docs/ cite one
  python scripts/results.py --rerun NAME     # rerun one at its recorded command (results/NAME.json)
  python scripts/results.py --all            # rerun everything (prints the estimated total time first)
  python scripts/results.py --render         # rebuild results/*.md from the JSON and the README's marked blocks

Every results file is ``results/<name>.json`` written by ``jaxequiv.provenance.write`` (its markdown is rendered from
it). A file written before provenance existed (a ``.md`` alone, or a JSON without ``provenance``) is stale.

Marked blocks in README.md and docs/ are rendered from the records, wherever they sit:

  <!-- results:table NAME NAME ... -->...<!-- /results -->   a table: one row per headline of each record
  <!-- results:NAME -->...<!-- /results -->                  the record's headline results, inline
  <!-- results:NAME PATH [FORMAT] -->...<!-- /results -->    one value: PATH is dotted (data.rows.0.ratio)
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import pathlib
import re
import subprocess
import sys

from jaxequiv import provenance

ROOT = provenance.ROOT
BLOCK = re.compile(r"<!-- results:(?P<spec>[^>]*?) -->(?P<body>.*?)<!-- /results -->", re.S)
CITE = re.compile(r"results/([A-Za-z0-9_]+\*?)\.(?:md|json|png)")
LEGACY_COMMAND = re.compile(r"[Cc]ommand: `(python [^`]+)`")
REPORTS = ("taxonomy", "roles")  # rendered from other records: rerun last


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


def _wall_s(rec: dict | None) -> float | None:
  return rec["provenance"]["wall_s"] if rec and "provenance" in rec else None


def command(name: str, results: pathlib.Path) -> list[str]:
  """The argv that reruns a result: recorded in its JSON, or (legacy) quoted in its markdown."""
  records = load(results)
  if name not in records:
    raise SystemExit(f"--rerun: no result named {name!r} in {results} (known: {', '.join(records)})")
  rec = records[name]
  if rec and "provenance" in rec:
    return rec["provenance"]["argv"]
  md = results / f"{name}.md"
  m = LEGACY_COMMAND.search(md.read_text()) if md.exists() else None
  argv = m[1].split()[1:] if m else _legacy_args_argv(name, rec or {})
  if not argv or not argv[0].endswith(".py"):
    quoted = f"its markdown quotes `{m[1]}`, which does not write results" if m else f"none quoted in {md.name}"
    raise SystemExit(f"--rerun: {name} has no script that writes it (no provenance; {quoted})")
  print(f"{name}: no provenance; rerunning the command its legacy file records: python {' '.join(argv)}")
  return argv


def _legacy_args_argv(name: str, rec: dict) -> list[str]:
  """A legacy JSON that stored its argparse namespace (``args`` or ``_config``): the script named by the longest
  script stem that prefixes ``name``, with those flags, writing to results/NAME."""
  args = rec.get("args") or rec.get("_config")
  scripts = [p for p in (ROOT / "scripts").glob("*.py") if name.startswith(p.stem)]
  if not isinstance(args, dict) or not scripts:
    return []
  script = max(scripts, key=lambda p: len(p.stem))
  argv = [f"scripts/{script.name}"]
  for k, v in args.items():
    if k == "seconds" or v is False or v is None:
      continue
    argv += [f"--{k.replace('_', '-')}"] + ([] if v is True else [f"results/{name}" if k == "out" else str(v)])
  return argv


def rerun(name: str, results: pathlib.Path) -> int:
  argv = command(name, results)
  print(f"rerun {name}: python {' '.join(argv)}", flush=True)
  return subprocess.run([sys.executable, *argv], cwd=ROOT, check=False).returncode


def rerun_all(results: pathlib.Path) -> int:
  records = load(results)
  names = sorted(records, key=lambda n: (n in REPORTS, n))
  known = [w for w in map(_wall_s, records.values()) if w is not None]
  unknown = [n for n in names if _wall_s(records[n]) is None]
  print(f"estimated total: {sum(known) / 60:.1f} min from the recorded wall times of {len(known)} results"
        + (f"; {len(unknown)} without a recorded wall time ({', '.join(unknown)})" if unknown else ""), flush=True)
  failed = []
  for n in names:
    try:
      rc = rerun(n, results)
    except SystemExit as e:  # a legacy file no script writes
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
  g.add_argument("--all", action="store_true", help="rerun every result (prints the estimated total time first)")
  g.add_argument("--render", action="store_true", help="rebuild results/*.md and the marked blocks from the JSON")
  a = p.parse_args(argv)
  results = ROOT / "results"
  if a.rerun:
    return rerun(a.rerun, results)
  if a.all:
    return rerun_all(results)
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
