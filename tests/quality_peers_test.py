"""scripts/quality_peers.py: refusals in one line, the headline read from the data, and a 2-step run of both systems."""

import importlib.util
import json
import math
import pathlib

import numpy as np
import pytest

from jaxequiv.batches import lm_batch

ROOT = pathlib.Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("quality_peers", ROOT / "scripts" / "quality_peers.py")
qp = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(qp)

TINY = ["--layers", "1", "--width", "16", "--heads", "2", "--seq-len", "32", "--batch", "4", "--steps", "2",
        "--eval-every", "1", "--warmup", "1", "--seeds", "2", "--iid-steps", "2", "--val-sentences", "8"]


@pytest.fixture
def text(tmp_path):
  words = "the king and queen shall come to rome with thee my lord good night sweet prince".split()
  lines = [" ".join(words[(i * 7 + j * 3) % len(words)] for j in range(3 + i % 6)).capitalize() + "."
           for i in range(300)]
  path = tmp_path / "tiny.txt"
  path.write_text(" ".join(lines))
  return path


def test_refuses_without_the_text(tmp_path):
  with pytest.raises(SystemExit) as e:
    qp.main(["--text", str(tmp_path / "absent.txt"), "--out", str(tmp_path / "out")])
  msg = str(e.value.code)
  assert "absent.txt" in msg and "\n" not in msg, msg


def test_refuses_without_the_peer(tmp_path, text):
  with pytest.raises(SystemExit) as e:
    qp.main(["--text", str(text), "--nanogpt", str(tmp_path / "no_model.py"), "--out", str(tmp_path / "out")])
  msg = str(e.value.code)
  assert msg.startswith("missing") and ("no_model.py" in msg or "torch" in msg) and "\n" not in msg, msg
  assert not (tmp_path / "out.json").exists()


@pytest.mark.parametrize("a,b,lower", [(1.5, 1.7, "jaxequiv"), (1.9, 1.7, "nanoGPT")])
def test_headline_reads_which_is_lower_from_the_data(a, b, lower):
  line = qp.compare("jaxequiv", {"mean": a, "std": 0.01}, "nanoGPT", {"mean": b, "std": 0.02})
  assert f"{lower} lower by {abs(a - b):.4f} bits/char" in line, line
  assert f"jaxequiv {a:.4f} ± 0.0100" in line and f"nanoGPT {b:.4f} ± 0.0200" in line, line


def test_nanogpt_rows_are_the_batch_with_pad_inputs_in_vocabulary_and_targets_ignored_off_the_mask():
  pytest.importorskip("torch")
  b = lm_batch(["Hi there.", "Ok.", "Go home now."], 16, num_rows=3, packed=True)
  x, y, n = qp.nanogpt_rows(b)
  assert (b.inputs == 65).any() and int(x.max()) == 64 and (x.numpy() == np.where(b.inputs == 65, 64, b.inputs)).all()
  assert (y.numpy() == np.where(b.mask, b.targets, -1)).all() and n == int(b.mask.sum()) == 24


@pytest.mark.slow  # compiles 4 vmapped steps and 2 evaluations: 186 s at load average 12 on 2 cores (33 s CPU)
def test_two_steps_of_both_systems(tmp_path, text):
  pytest.importorskip("torch")
  out = tmp_path / "qp"
  assert qp.main(["--text", str(text), "--out", str(out), *TINY]) == 0
  rec = json.loads(out.with_suffix(".json").read_text())
  d = rec["data"]
  assert set(d["curves"]) == {"jaxequiv", "nanoGPT"} and set(d["iid"]) == {"LM", "iid classifier"}
  for curves in (d["curves"], d["iid"]):
    for name, c in curves.items():
      assert [r["step"] for r in c] == [1, 2], name
      assert all(len(r["seeds"]) == 2 and all(0 < x < 8 and math.isfinite(x) for x in r["seeds"]) for r in c), name
  fa, fb = d["final"]["jaxequiv"]["mean"], d["final"]["nanoGPT"]["mean"]
  assert f"{'jaxequiv' if fa <= fb else 'nanoGPT'} lower by {abs(fa - fb):.4f}" in rec["headline"][0]["result"]
  # Equal predictions seen: the iid classifier's examples per step are the LM's predictions of the same step.
  assert [r["predictions_seen_seed0"] for r in d["iid"]["LM"]] == [
      r["predictions_seen_seed0"] for r in d["iid"]["iid classifier"]]
  assert d["data"]["val_characters_scored"] == d["data"]["val"]["characters"]
  assert out.with_suffix(".png").stat().st_size > 0 and "| 2 |" in out.with_suffix(".md").read_text()
