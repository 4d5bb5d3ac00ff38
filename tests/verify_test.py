import pytest

from jaxequiv import cli
from jaxequiv import losses, verify

SMALL = ["--layers", "1", "--width", "16", "--heads", "2", "--seq-len", "16", "--sentences", "6", "--steps", "3",
         "--repeats", "1", "--no-determinism-flags"]


def test_verify_main_passes_and_reports(capsys):
  assert cli.main(["verify", *SMALL]) == 0
  out = capsys.readouterr().out
  assert out.count("PASS") == 5 and "FAIL" not in out
  assert "5 of 5 checks passed" in out and "leaves" in out and "elements" in out
  assert "max ULP distance" in out and "unpacked" in out and "x LM" in out


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
