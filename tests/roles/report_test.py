"""scripts/roles_report.py: the GAN table's difference columns and the iteration-cost lines read from a record."""

import importlib.util
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
_spec = importlib.util.spec_from_file_location("roles_report", ROOT / "scripts" / "roles_report.py")
rr = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(rr)
sys.path.remove(str(ROOT / "scripts"))


def _args(**over):
  a = {k: rr.PACGAN_SETUP[k] for k in ("gen_width", "disc_width", "lr", "decay", "b1", "disc_pieces", "batch_size")}
  return {**a, "steps": 1000, "seeds": 10, "settings": "grid:1,grid:2", **over}


def _run(args, wall_s=36.0):
  rec = {"data": {"args": args, "runs": {}},
         "provenance": {"wall_s": wall_s, "loadavg_start": [1.0, 0, 0], "loadavg_end": [2.0, 0, 0], "cores": 2,
                        "cpu": "Test CPU", "backend": "cpu"}}
  return ("grid, pack 1", {"args": args}, rec, "roles_gan_x.json")


def test_difference_cells_bold_only_what_differs_from_pacgan():
  cells = rr._difference_cells(_args(b1=0.5))
  assert cells[0] == "**1000** (PacGAN 400000)"  # iterations
  assert cells[1] == "400 / 200"  # widths match: not bold
  assert cells[2].startswith("**") and "PacGAN 0.0001 / none / 0.8" in cells[2]


def test_iteration_cost_scales_the_records_wall_time_to_pacgans_iterations():
  line, = [x for x in rr._iteration_cost([_run(_args())]) if x.startswith("- ")]
  assert "took 36 s for 1000 steps" in line and "load 1.0 at start, 2.0 at end" in line
  assert line.endswith("would take about 4 h.")  # 36 s x 400 = 14,400 s
  assert rr._iteration_cost([_run(_args(gen_width=128))]) == []  # not at PacGAN's widths: no projection
  full, = [x for x in rr._iteration_cost([_run(_args(steps=400_000, seeds=1), wall_s=3600.0)]) if x.startswith("- ")]
  assert "took 3600 s for 400000 steps of its settings (grid:1,grid:2, 1 seed;" in full
  assert full.endswith(": all of PacGAN's iterations.")


def test_vs_pacgan_counts_where_our_means_lose_to_table_1_at_its_setup_only():
  def run(key, modes, hq, kl, **over):
    k, r, rec, f = _run(_args(**over))
    return key, dict(r, mean_std={"modes": [modes, 0], "high_quality": [hq, 0], "reverse_kl": [kl, 0]}), rec, f
  runs = [run("ring, pack 1", 6.0, 0.99, 0.5),  # Table 1: 6.3, 98.2%, 0.45 -> fewer modes, larger KL
          run("ring, pack 2", 8.0, 0.90, 0.01),  # 7.9, 95.6%, 0.07 -> smaller high-quality share only
          run("grid, pack 1", 1.0, 0.0, 9.0, b1=0.5)]  # not at PacGAN's setup: not counted
  assert rr.vs_pacgan(runs) == ("against PacGAN's Table 1 means, our 2 settings at its setup except the iterations"
                                " (1000 of 400,000), 10 seeds each, have fewer modes in 1 of 2, a smaller high-quality"
                                " share in 1 of 2, a larger reverse KL in 1 of 2")
  full = run("grid, pack 2", 24.0, 0.95, 0.05, steps=400_000, seeds=1)  # Table 1: 23.8, 91.3%, 0.13: better on all
  assert rr.vs_pacgan(runs + [full]).endswith("; our 1 setting at all of its iterations, 1 seed each, has fewer modes"
                                              " in 0 of 1, a smaller high-quality share in 0 of 1, a larger reverse KL"
                                              " in 0 of 1")
  assert rr.vs_pacgan(runs[2:]) == "no record at PacGAN's setup yet"
  assert rr.at_full_iterations(runs) == "no record at all of PacGAN's iterations yet"
  assert rr.at_full_iterations(runs + [full]) == ("grid PacGAN2 (1 seed): modes 24.0, high quality 95.0%, reverse KL"
                                                  " 0.050 (Table 1: 23.8, 91.3%, 0.13)")


def test_gan_runs_order_ring_first_then_setup_then_pack(tmp_path, monkeypatch):
  import json
  def write(name, settings, **over):
    runs = {f"{s.split(':')[0]}, pack {s.split(':')[1]}": {"per_seed": []} for s in settings.split(",")}
    (tmp_path / f"roles_gan_{name}.json").write_text(json.dumps({"args": _args(settings=settings, **over), "runs": runs}))
  write("grid4_paper", "grid:4")  # sorts before grid_paper by name, after it by pack
  write("grid_paper", "grid:1,grid:2")
  write("grid1_old", "grid:1", b1=0.5)
  write("ring_paper", "ring:1")
  monkeypatch.setattr(rr, "R", tmp_path)
  assert [(k, f) for k, _, _, f in rr.gan_runs()] == [
      ("ring, pack 1", "roles_gan_ring_paper.json"), ("grid, pack 1", "roles_gan_grid1_old.json"),
      ("grid, pack 1", "roles_gan_grid_paper.json"), ("grid, pack 2", "roles_gan_grid_paper.json"),
      ("grid, pack 4", "roles_gan_grid4_paper.json")]


def test_setup_label_names_what_differs_so_headlines_of_two_setups_differ():
  assert rr.setup_label(_args(steps=10)) == "PacGAN's setup"  # iterations are in the headline already
  label = rr.setup_label(_args(gen_width=128, disc_width=128, b1=0.5))
  assert label == "widths G / D 128 / 128; Adam lr, decay, β1 0.0001 / none / 0.5", label


def test_mean_and_standard_error_and_a_single_seed_without_a_spread():
  assert rr._mse([1.0, 3.0], "{:.1f}") == "2.0 ± 1.0"  # std (ddof 1) sqrt(2) / sqrt(2)
  assert rr._mse([24.0], "{:.1f}") == "24.0" and rr._mse([], "{:.1f}") == "–"
