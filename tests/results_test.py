"""The results pipeline: provenance on every record, staleness from source hashes, numbers rendered from the JSON."""

import importlib.util
import json
import pathlib
import re

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
  monkeypatch.setitem(results_cli.LEGACY, "old", ("scripts/old.py --n 1 --note 'a b'", 5, "a guess"))
  assert results_cli.command("old", tmp_path / "results") == ["scripts/old.py", "--n", "1", "--note", "a b"]
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



def test_a_number_quoted_beside_a_citation_must_be_in_the_cited_file(tmp_path):
  (tmp_path / "results").mkdir()
  (tmp_path / "results" / "exp.json").write_text(json.dumps({"data": {"ratio": 1.23456, "acc": 0.9504}}))
  (tmp_path / "README.md").write_text("The ratio is 1.23 and accuracy 95.0% (`results/exp.md`).\n\nUncited: 7.77.\n")
  assert results_cli.quoted_mismatches(tmp_path) == []
  (tmp_path / "README.md").write_text("The ratio is 1.24 and accuracy 95.0% (`results/exp.md`).\n")
  assert [m.split(" (")[0] for m in results_cli.quoted_mismatches(tmp_path)] == ["README.md: 1.24"]


def test_every_number_quoted_beside_a_citation_in_the_readme_and_docs_is_in_its_results_file():
  bad = results_cli.quoted_mismatches(ROOT)
  assert not bad, "numbers that differ from the results files they cite:\n" + "\n".join(bad)


def test_the_readme_measured_table_is_rendered_from_the_results():
  text = (ROOT / "README.md").read_text()
  tables = [m["spec"] for m in results_cli.BLOCK.finditer(text) if m["spec"].startswith("table ")]
  assert tables, "README.md has no <!-- results:table ... --> block"
  assert all(len(spec.split()) > 1 for spec in tables)


def test_a_legacy_file_reruns_with_its_table_command_and_one_without_is_refused_in_one_line(tmp_path, monkeypatch):
  (tmp_path / "results").mkdir()
  (tmp_path / "results" / "roles_gan_ring9.json").write_text(json.dumps({"args": {"seeds": 5}, "runs": {}}))
  (tmp_path / "results" / "hand_made.md").write_text("- command: `python -m jaxequiv verify`\n")
  monkeypatch.setitem(results_cli.LEGACY, "roles_gan_ring9", ("scripts/roles_gan.py --seeds 5 --out x", 60, "a guess"))
  assert results_cli.command("roles_gan_ring9", tmp_path / "results") == [
      "scripts/roles_gan.py", "--seeds", "5", "--out", "x"]
  with pytest.raises(SystemExit, match="hand_made has no provenance and no command") as e:
    results_cli.command("hand_made", tmp_path / "results")
  assert "\n" not in str(e.value)


def test_rerun_runs_the_recorded_command_from_the_checkout(tmp_path, monkeypatch, capsys):
  (tmp_path / "scripts").mkdir()
  script = "import pathlib, sys\npathlib.Path('ran.txt').write_text(sys.argv[1])\n"
  (tmp_path / "scripts" / "echo.py").write_text(script)
  (tmp_path / "results").mkdir()
  rec = {"name": "echo", "provenance": {"argv": ["scripts/echo.py", "a b"], "wall_s": 1.0, "sources": {}}}
  (tmp_path / "results" / "echo.json").write_text(json.dumps(rec))
  monkeypatch.setattr(results_cli, "ROOT", tmp_path)
  assert results_cli.rerun("echo", tmp_path / "results") == 0
  assert (tmp_path / "ran.txt").read_text() == "a b"
  assert "rerun echo: python scripts/echo.py 'a b'" in capsys.readouterr().out


def test_all_orders_dependencies_and_prints_the_estimated_total_before_rerunning(tmp_path, monkeypatch, capsys):
  _, rec = _record(tmp_path)
  reader = json.loads(json.dumps(rec))
  reader["provenance"]["sources"]["results/zeta.json"] = "0" * 64  # like profile_step, which hashes bench_peers.json
  for name, r in (("alpha", reader), ("zeta", rec), ("roles", rec), ("roles_gan_x", rec)):
    (tmp_path / "results" / f"{name}.json").write_text(json.dumps(dict(r, name=name)))
  (tmp_path / "results" / "legacy.md").write_text("# legacy\n")
  monkeypatch.setitem(results_cli.LEGACY, "legacy", ("scripts/legacy.py", 120, "a guess"))
  order = []
  monkeypatch.setattr(results_cli, "rerun", lambda name, results: order.append((name, capsys.readouterr().out)) or 0)
  assert results_cli.rerun_all(tmp_path / "results") == 0
  assert [n for n, _ in order] == ["exp", "legacy", "roles_gan_x", "zeta", "alpha", "roles"]
  wall_min = (5 * rec["provenance"]["wall_s"] + 120) / 60
  assert order[0][1].startswith(f"estimated total: {wall_min:.1f} min for 6 results (5 from their recorded wall"
                                " times, 1 from the LEGACY table's estimates)")


def test_every_result_has_a_rerun_command_that_its_script_accepts_in_the_order_its_inputs_need():
  results = ROOT / "results"
  records = results_cli.load(results)
  for name in records:
    argv = results_cli.command(name, results)  # raises SystemExit for a result no command reruns
    script = ROOT / argv[0]
    assert script.is_file(), f"{name}: its command runs {argv[0]}, which does not exist"
    text = script.read_text()
    text += "".join((ROOT / "scripts" / f"{m}.py").read_text() for m in re.findall(r"^from (\w+) import", text, re.M)
                    if (ROOT / "scripts" / f"{m}.py").is_file())  # flags a sibling script adds (seed_flags)
    flags = [a.split("=")[0] for a in argv[1:] if a.startswith("--")]
    unknown = [f for f in flags if f'"{f}"' not in text]
    assert not unknown, f"{name}: {argv[0]} does not take {unknown}"
    if "--out" in argv:
      out = argv[argv.index("--out") + 1]
      assert out in (f"results/{name}", f"results/{name}.json"), f"{name}: its command writes {out}"
  assert set(results_cli.LEGACY) <= set(records), "a LEGACY entry names no result: remove it"
  names = results_cli.order(records)
  assert sorted(names) == sorted(records) and names[-len(results_cli.REPORTS):] == sorted(
      results_cli.REPORTS, key=names.index)
  if {"bench_peers", "profile_step"} <= set(records):
    assert names.index("bench_peers") < names.index("profile_step")


@pytest.mark.parametrize("script,argv,missing", [
    ("bench_peers", ["--preset", "tiny", "--nanogpt", "{tmp}/peers/nanoGPT/model.py", "--out", "{tmp}/r"],
     "nanoGPT's model.py"),
    ("quality", ["shakespeare", "--text", "{tmp}/data/tinyshakespeare.txt"], "Tiny Shakespeare"),
    ("bench_equivalence", ["--corpus", "{tmp}/data/tinyshakespeare.txt", "--out", "{tmp}/r"], "benchmark corpus"),
])
def test_a_benchmark_without_its_peer_or_data_refuses_in_one_line_naming_it(script, argv, missing, tmp_path,
                                                                             monkeypatch):
  spec = importlib.util.spec_from_file_location(f"_refuse_{script}", ROOT / "scripts" / f"{script}.py")
  module = importlib.util.module_from_spec(spec)
  monkeypatch.syspath_prepend(str(ROOT / "scripts"))
  spec.loader.exec_module(module)
  monkeypatch.setattr("sys.argv", [f"scripts/{script}.py"])
  with pytest.raises(SystemExit) as e:
    module.main([a.format(tmp=tmp_path) for a in argv])
  msg = str(e.value)
  assert msg.startswith("missing ") and missing in msg and str(tmp_path) in msg and "\n" not in msg, msg
  assert not list(tmp_path.rglob("*.json")), "it wrote a result before refusing"


def test_every_results_markdown_is_rendered_from_its_record():
  results = ROOT / "results"
  for name, rec in results_cli.load(results).items():
    render = results_cli._script_render(rec) if rec and "provenance" in rec else None  # pylint: disable=protected-access
    if render is not None:
      assert (results / f"{name}.md").read_text() == render(rec).rstrip("\n") + "\n", (
          f"results/{name}.md differs from its record: run python scripts/results.py --render")


def _script(name: str):
  spec = importlib.util.spec_from_file_location(f"_smoke_{name}", ROOT / "scripts" / f"{name}.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


@pytest.mark.slow
def test_zero_shot_smoke_records_each_seed_and_renders_from_the_record(tmp_path, monkeypatch):
  zero_shot = _script("zero_shot")
  monkeypatch.setattr("sys.argv", ["scripts/zero_shot.py"])
  argv = ["--seeds", "0,1", "--steps", "1", "--num-train", "32", "--num-test", "32", "--channels", "4", "--width", "16",
          "--heads", "2", "--out", str(tmp_path / "zs")]
  assert zero_shot.main(argv) == 0
  rec = json.loads((tmp_path / "zs.json").read_text())
  assert rec["provenance"]["argv"][1:] == argv and rec["provenance"]["seeds"] == [0, 1]
  assert [r["seed"] for r in rec["data"]["runs"]] == [0, 1]
  assert rec["data"]["summary"]["heldout"]["onehot_accuracy"] == [0.0, 0.0]  # no output for a held-out label
  assert all(r["zero_shot"]["images"] > 0 for r in rec["data"]["runs"])
  assert len(rec["headline"]) == 2 and (tmp_path / "zs.md").read_text() == zero_shot.render(rec) + "\n"


@pytest.mark.slow
def test_sample_agreement_trains_its_own_model_and_classification_sampling_equals_the_lm_sampler(tmp_path,
                                                                                                  monkeypatch):
  sample_agreement = _script("sample_agreement")
  monkeypatch.setattr("sys.argv", ["scripts/sample_agreement.py"])
  argv = ["--steps", "2", "--width", "16", "--heads", "2", "--num-samples", "4", "--out", str(tmp_path / "sa")]
  assert sample_agreement.main(argv) == 0
  rec = json.loads((tmp_path / "sa.json").read_text())
  assert rec["data"]["train"]["train"]["steps"] == 2 and "2 steps" in rec["model"]
  assert [r["classification_eq_nocache"] for r in rec["data"]["rows"]] == [4, 4, 4, 4]
  assert (tmp_path / "sa.md").read_text() == sample_agreement.render(rec) + "\n"


def test_a_source_edited_during_the_run_is_recorded_as_it_was_at_start_and_is_stale_at_once(tmp_path):
  script = tmp_path / "exp.py"
  script.write_text("print('as run')\n")
  before = provenance.file_sha256(script)
  run = provenance.start([str(script)])
  script.write_text("print('edited mid-run')\n")  # the run goes on with the code it started with
  rec = provenance.write(run, tmp_path / "exp", {}, model="none", seeds=[])
  p = rec["provenance"]
  assert p["sources"][script.as_posix()] == before and p["changed_during_run"] == [script.as_posix()]
  assert provenance.stale_reasons(rec) == [f"{script.as_posix()} changed"]
  untouched = provenance.write(provenance.start([str(script)]), tmp_path / "exp2", {}, model="none", seeds=[])
  assert "changed_during_run" not in untouched["provenance"] and not provenance.stale_reasons(untouched)


def test_commit_and_dirty_are_those_of_the_start(tmp_path, monkeypatch):
  calls = []
  def fake_git(*args):
    calls.append(args[0])
    return {"rev-parse": "a" * 40, "diff": "jaxequiv/bitwise.py", "ls-files": ""}.get(args[0], "")
  monkeypatch.setattr(provenance, "_git", fake_git)
  import jaxequiv.bitwise  # noqa: F401  pylint: disable=import-outside-toplevel,unused-import
  run = provenance.start([str(tmp_path / "x.py")])
  monkeypatch.setattr(provenance, "_git", lambda *a: "b" * 40 if a[0] == "rev-parse" else "")  # HEAD moved since
  p = provenance.write(run, tmp_path / "x", {}, model="none", seeds=[])["provenance"]
  assert p["commit"] == "a" * 40 and p["dirty"] is True and {"rev-parse", "diff", "ls-files"} <= set(calls)
