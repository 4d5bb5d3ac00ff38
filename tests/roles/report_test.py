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
