import os
import re
import sys
import types

import pytest

from jaxequiv import cli, limits
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
  assert out.count("PASS") == 8 and "FAIL" not in out
  assert "7 of 7 checks passed" in out and "leaves" in out and "elements" in out and "packed rows" in out
  for check in ("causality", "segment safety", "row independence", "float32 gradients", "bfloat16 compute",
                "AdamW trajectory", "independent path"):  # model_check's checks on the library's transformer
    assert f"PASS  {check}: " in out
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


# ----------------------------------------------------------------------------- verify --model FILE.py:FACTORY

MODEL_FILE = '''
import jax, jax.numpy as jnp

def make():  # a bigram table: logits from the current token only (causal, restarts at BOS)
  return (lambda p, tokens: p[tokens]), jax.random.normal(jax.random.key(0), (66, 64))

def peek():  # logits from the next token: not causal
  return {"apply_fn": lambda p, tokens: p[jnp.roll(tokens, -1, axis=1)], "params": make()[1], "seq_len": 6}

def broken():
  raise RuntimeError("no weights here")

def wrong():
  return [1, 2, 3]

not_a_function = 3
'''
MODEL_ARGS = ["--seq-len", "6", "--sentences", "4", "--no-determinism-flags"]


@pytest.fixture(name="model_file")
def _model_file(tmp_path):
  path = tmp_path / "my_model.py"
  path.write_text(MODEL_FILE)
  return path


def test_verify_model_passes_a_causal_model(model_file, capsys):
  assert cli.main(["verify", "--model", f"{model_file}:make", *MODEL_ARGS]) == 0
  out = capsys.readouterr().out
  print(out)
  lines = [l for l in out.splitlines() if l[:4] in ("PASS", "FAIL", "WARN")]
  assert [l.split(":")[0] for l in lines] == ["PASS  causality", "PASS  segment safety", "PASS  row independence",
                                              "PASS  equivalence float32", "PASS  independent path", "PASS  accumulation"]
  assert out.rstrip().endswith("6 of 6 checks passed: OK")


def test_verify_model_fails_a_non_causal_model_and_names_the_leak(model_file, capsys):
  assert cli.main(["verify", "--model", f"{model_file}:peek", *MODEL_ARGS]) == 1
  out = capsys.readouterr().out
  print(out)
  assert "T=6" in out  # the factory's seq_len
  assert "FAIL  causality: first leak at t=0" in out and "PASS  equivalence float32" in out and "not enough" in out
  assert out.rstrip().endswith(": FAIL")


@pytest.mark.parametrize("spec, message", [
    ("{file}", "expected FILE.py:FACTORY"),
    ("{file}:", "expected FILE.py:FACTORY"),
    ("nowhere.py:make", "no file 'nowhere.py'"),
    ("{file}:missing", "defines no function 'missing'"),
    ("{file}:not_a_function", "defines no function 'not_a_function'"),
    ("{file}:broken", "broken() raised RuntimeError: no weights here"),
    ("{file}:wrong", "wrong() must return (apply_fn, params)"),
    ("{bad}:make", "importing"),
])
def test_verify_model_bad_input_is_one_line(spec, message, model_file, capsys):
  bad = model_file.parent / "bad.py"
  bad.write_text("def make(:\n")
  assert cli.main(["verify", "--model", spec.format(file=model_file, bad=bad), *MODEL_ARGS]) == 2
  err = capsys.readouterr().err
  print(err)
  assert err.count("\n") == 1 and err.startswith("jaxequiv verify: error: argument --model: ") and message in err


WIDE_MODEL = '''
import jax, jax.numpy as jnp

def make():  # a wide hidden layer per position: XLA's temporaries dwarf the logits
  k1, k2 = jax.random.split(jax.random.key(0))
  params = {"embed": jax.random.normal(k1, (66, 2048)), "out": jax.random.normal(k2, (2048, 64))}
  return (lambda p, tokens: jnp.tanh(p["embed"][tokens]) @ p["out"]), params
'''


def _refuse_to_run(monkeypatch):
  from jaxequiv import model_check  # pylint: disable=import-outside-toplevel

  def reached(*args, **kwargs):
    raise AssertionError("check_model ran")

  monkeypatch.setattr(model_check, "check_model", reached)


@pytest.mark.parametrize("argv, memory, message", [
    (["--seq-len", "100000", "--sentences", "100000"], None,
     r"--sentences 100000 x --seq-len 100000 \(the logits of the LM batch and their gradient\) needs about [\d,]+ GiB"),
    (["--seq-len", "32", "--sentences", "40"], 64 * 2**20,
     r"--sentences 40 x --seq-len 32 \([\d,]+ rows of the unpacked classifier batch\), XLA's memory analysis of its"
     r" value_and_grad needs about \d+ MiB for activations .* this machine has 64 MiB"),
])
def test_verify_model_sizes_are_bounded_before_the_checks_run(tmp_path, monkeypatch, capsys, argv, memory, message):
  """Refused in one line giving the estimate: first from the flags alone, then from XLA's analysis of the model."""
  path = tmp_path / "wide.py"
  path.write_text(WIDE_MODEL)
  _refuse_to_run(monkeypatch)
  if memory is not None:
    monkeypatch.setattr(limits, "machine_memory_bytes", lambda: memory)
  assert cli.main(["verify", "--model", f"{path}:make", *argv, "--no-determinism-flags"]) == 2
  err = capsys.readouterr().err
  print(err)
  assert err.count("\n") == 1 and re.search(message, err), err


def test_verify_model_file_must_be_a_regular_file(tmp_path, capsys):
  fifo = tmp_path / "pipe.py"
  os.mkfifo(fifo)
  assert cli.main(["verify", "--model", f"{fifo}:make", *MODEL_ARGS]) == 2
  assert capsys.readouterr().err == (f"jaxequiv verify: error: argument --model: {str(fifo)!r} is a FIFO (named pipe),"
                                     " not a regular file\n")
