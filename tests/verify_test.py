import sys
import types

import pytest

from jaxequiv import cli
from jaxequiv import losses, verify
from jaxequiv.cli import verify as cli_verify

SMALL = ["--layers", "1", "--width", "16", "--heads", "2", "--seq-len", "16", "--sentences", "6", "--steps", "3",
         "--repeats", "1", "--no-determinism-flags"]


def _fake_wing(monkeypatch, name, results):
  module = types.ModuleType(f"{name}.checks")
  module.run_checks = lambda: results
  monkeypatch.setitem(sys.modules, f"{name}.checks", module)
  return f"{name}.checks"


def test_verify_main_passes_and_reports(capsys, monkeypatch):
  # The core checks only (the wings' own checks have their own tests), plus one fake wing and one absent wing.
  wing = _fake_wing(monkeypatch, "fakewing", [(True, "PASS  fake identity: a vs b: 0 bits differ")])
  monkeypatch.setattr(cli_verify, "WING_CHECKS", (wing, "jaxequiv.no_such_wing.checks"))
  assert cli.main(["verify", *SMALL]) == 0
  out = capsys.readouterr().out
  assert out.count("PASS") == 7 and "FAIL" not in out
  assert "6 of 6 checks passed" in out and "leaves" in out and "elements" in out and "packed rows" in out
  assert "max ULP distance" in out and "unpacked" in out and "x LM" in out
  assert "fakewing: 1 of 1 checks passed" in out and "no_such_wing" not in out


def test_verify_main_fails_when_a_wing_check_fails(capsys, monkeypatch):
  wing = _fake_wing(monkeypatch, "badwing", [(True, "PASS  one: ok"), (False, "FAIL  two: 3 bits differ")])
  monkeypatch.setattr(cli_verify, "WING_CHECKS", (wing,))
  monkeypatch.setattr(verify, "run_checks", lambda cfg: True)  # the core passes; only the wing fails
  assert cli.main(["verify", *SMALL]) == 1
  out = capsys.readouterr().out
  assert "FAIL  two" in out and "badwing: 1 of 2 checks passed: FAIL" in out


def test_verify_fails_and_says_so_when_a_loss_differs():
  lines = []
  cfg = verify.VerifyConfig(num_layers=1, width=16, num_heads=2, seq_len=16, num_sentences=6, steps=2, repeats=1)
  broken = lambda p, b, apply_fn: losses.classification_xent(p, b, apply_fn) * (1 + 2.0**-20)
  assert not verify.run_checks(cfg, clf_loss=broken, out=lines.append)
  text = "\n".join(lines)
  assert "FAIL  float32 gradients" in text and "elements differ" in text and ": FAIL" in text


def test_default_sentences_cover_the_edge_cases():
  s = verify.default_sentences(16, 32)
  assert len(s) == 16 and "." in s and s.count("Hi.") == 2 and max(map(len, s)) == 32


@pytest.mark.parametrize("argv", [["verify", "--help"], ["--help"]])
def test_help(argv, capsys):
  with pytest.raises(SystemExit) as e:
    cli.main(argv)
  assert e.value.code == 0 and "verify" in capsys.readouterr().out
