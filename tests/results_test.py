"""The results pipeline: provenance on every record, staleness from source hashes, numbers rendered from the JSON."""

import importlib.util
import json
import pathlib

import pytest

from jaxequiv import provenance

ROOT = pathlib.Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("results_cli", ROOT / "scripts" / "results.py")
results_cli = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(results_cli)

FIELDS = ("commit", "dirty", "date_utc", "cpu", "cores", "backend", "devices", "versions", "argv", "command", "seeds",
          "wall_s", "loadavg_start", "loadavg_end", "sources", "source_hash")


def _record(tmp_path, script_text="print('x')\n"):
  script = tmp_path / "exp.py"
  script.write_text(script_text)
  run = provenance.start([str(script), "--seed", "3"])
  return script, provenance.write(run, tmp_path / "results" / "exp", {"ratio": 1.23456}, model="a 1-layer MLP, 5 steps",
                                  seeds=[3], headline=[("the ratio", "1.23")],
                                  render=lambda rec: "# exp\n" + "\n".join(provenance.header(rec)))


def test_write_records_provenance_and_the_imported_jaxequiv_sources(tmp_path):
  import jaxequiv.bitwise  # noqa: F401  pylint: disable=import-outside-toplevel,unused-import
  script, rec = _record(tmp_path)
  p = rec["provenance"]
  assert all(f in p for f in FIELDS), [f for f in FIELDS if f not in p]
  assert p["argv"][1:] == ["--seed", "3"] and p["seeds"] == [3] and p["versions"]["jax"] and p["backend"] == "cpu"
  assert "jaxequiv/bitwise.py" in p["sources"] and "jaxequiv/provenance.py" not in p["sources"]
  assert p["sources"][script.as_posix()] == provenance.file_sha256(script)
  assert p["source_hash"] == provenance.source_hash(p["sources"])
  assert json.loads((tmp_path / "results" / "exp.json").read_text()) == rec
  md = (tmp_path / "results" / "exp.md").read_text()
  assert "a 1-layer MLP, 5 steps" in md and p["commit"][:10] in md


def test_a_changed_source_makes_the_result_stale_and_legacy_files_are_stale(tmp_path):
  script, rec = _record(tmp_path)
  assert not provenance.stale_reasons(rec)
  script.write_text("print('y')\n")
  assert provenance.stale_reasons(rec) == [f"{script.as_posix()} changed"]
  assert provenance.stale_reasons({"rows": [1]}) == ["no provenance: written before results recorded their sources"]


def test_write_refuses_a_record_that_does_not_name_its_models(tmp_path):
  with pytest.raises(ValueError, match="architecture and training budget"):
    provenance.write(provenance.start(["x.py"]), tmp_path / "r", {}, model="", seeds=[])


def test_require_names_the_missing_file_in_one_line(tmp_path):
  with pytest.raises(SystemExit) as e:
    provenance.require(tmp_path / "peers" / "nanoGPT", "nanoGPT (the peer this benchmark compares against)")
  msg = str(e.value)
  assert "nanoGPT" in msg and "\n" not in msg


def test_stale_exits_nonzero_only_when_the_readme_cites_a_stale_result(tmp_path, monkeypatch):
  script, _ = _record(tmp_path)
  (tmp_path / "results" / "old.md").write_text("# old\n- command: `python scripts/old.py --n 1`\n")
  monkeypatch.setattr(results_cli, "ROOT", tmp_path)
  records = results_cli.load(tmp_path / "results")
  assert set(results_cli.stale(records)) == {"old"}
  (tmp_path / "README.md").write_text("see `results/exp.md`\n")
  assert set(results_cli.cited(tmp_path, list(records))) == {"exp"}
  assert results_cli.main(["--stale"]) == 0
  (tmp_path / "README.md").write_text("<!-- results:table exp old --><!-- /results -->\n")
  assert results_cli.main(["--stale"]) == 1
  assert results_cli.command("old", tmp_path / "results") == ["scripts/old.py", "--n", "1"]
  script.write_text("changed\n")
  (tmp_path / "README.md").write_text("see `results/ex*.md`\n")
  assert results_cli.main(["--stale"]) == 1


def test_blocks_render_from_the_records_and_a_typed_number_is_caught(tmp_path):
  _, rec = _record(tmp_path)
  records = {"exp": rec, "old": None}
  text = ("a <!-- results:exp data.ratio .3f -->1.235<!-- /results --> b\n"
          "<!-- results:table exp old --><!-- /results -->\n")
  out = results_cli.render_text(text, records)
  assert out.startswith("a <!-- results:exp data.ratio .3f -->1.235<!-- /results --> b")
  assert "| the ratio | 1.23 | `results/exp.json` (" in out and "| old | not yet rerun with provenance" in out
  assert results_cli.render_text(out, records) == out
  assert results_cli.render_text(out.replace("1.235", "1.240"), records) == out  # a hand-edited number is re-rendered


@pytest.mark.parametrize("doc", results_cli.documents(ROOT), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_marked_block_in_the_readme_and_docs_matches_its_results_file(doc):
  text = doc.read_text()
  records = results_cli.load(ROOT / "results")
  for m in results_cli.BLOCK.finditer(text):
    for name in results_cli._block_names(m["spec"]):  # pylint: disable=protected-access
      assert name in records, f"{doc.name} cites results/{name}, which does not exist"
  assert results_cli.render_text(text, records) == text, f"run python scripts/results.py --render ({doc.name})"



def test_the_readme_measured_table_is_rendered_from_the_results():
  text = (ROOT / "README.md").read_text()
  tables = [m["spec"] for m in results_cli.BLOCK.finditer(text) if m["spec"].startswith("table ")]
  assert tables, "README.md has no <!-- results:table ... --> block"
  assert all(len(spec.split()) > 1 for spec in tables)


def test_a_legacy_json_with_its_arguments_reruns_with_them_and_a_hand_made_file_does_not(tmp_path, monkeypatch):
  (tmp_path / "scripts").mkdir()
  (tmp_path / "scripts" / "roles_gan.py").write_text("")
  (tmp_path / "results").mkdir()
  legacy = {"args": {"seeds": 5, "decay": True, "quiet": False, "out": "/tmp/x.json"}, "runs": {}}
  (tmp_path / "results" / "roles_gan_ring9.json").write_text(json.dumps(legacy))
  (tmp_path / "results" / "verify_cpu.md").write_text("- command: `python -m jaxequiv verify`\n")
  monkeypatch.setattr(results_cli, "ROOT", tmp_path)
  assert results_cli.command("roles_gan_ring9", tmp_path / "results") == [
      "scripts/roles_gan.py", "--seeds", "5", "--decay", "--out", "results/roles_gan_ring9"]
  with pytest.raises(SystemExit, match="no script that writes it"):
    results_cli.command("verify_cpu", tmp_path / "results")


def test_all_prints_the_estimated_total_before_rerunning_reports_last(tmp_path, monkeypatch, capsys):
  _, rec = _record(tmp_path)
  for name in ("roles", "zeta"):
    (tmp_path / "results" / f"{name}.json").write_text(json.dumps(dict(rec, name=name)))
  order = []
  monkeypatch.setattr(results_cli, "rerun", lambda name, results: order.append((name, capsys.readouterr().out)) or 0)
  assert results_cli.rerun_all(tmp_path / "results") == 0
  assert [n for n, _ in order] == ["exp", "zeta", "roles"]
  wall_min = 3 * rec["provenance"]["wall_s"] / 60
  assert order[0][1].startswith(f"estimated total: {wall_min:.1f} min from the recorded wall times of 3 results")


def test_every_results_markdown_is_rendered_from_its_record():
  results = ROOT / "results"
  for name, rec in results_cli.load(results).items():
    render = results_cli._script_render(rec) if rec and "provenance" in rec else None  # pylint: disable=protected-access
    if render is not None:
      assert (results / f"{name}.md").read_text() == render(rec).rstrip("\n") + "\n", (
          f"results/{name}.md differs from its record: run python scripts/results.py --render")
