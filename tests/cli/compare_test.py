"""``jaxequiv compare``: an LM run and its paired classifier run are equal bit for bit; another seed is not."""

import io
from contextlib import redirect_stderr, redirect_stdout

import pytest

from jaxequiv import cli

TINY = ["--steps", "3", "--batch-size", "4", "--seq-len", "32", "--layers", "1", "--width", "16", "--heads", "2",
        "--eval-every", "2", "--checkpoint-every", "2", "--log-every", "1", "--num-samples", "0", "--no-progress",
        "--no-determinism-flags"]


def _main(argv):
  out, err = io.StringIO(), io.StringIO()
  with redirect_stdout(out), redirect_stderr(err):
    rc = cli.main(argv)
  return rc, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
  """Three tiny runs of 3 steps: the LM, the paired classifier, the LM with another seed."""
  root = tmp_path_factory.mktemp("runs")
  data = root / "corpus.txt"
  animals, verbs = ("cat", "dog", "hen", "owl", "fox"), ("saw", "ran", "hid", "ate")
  data.write_text(" ".join(f"The {a} {v} sat." for a in animals for v in verbs))  # 20 sentences
  out = {}
  for name, flags in [("lm", ["--objective", "lm"]), ("classification", ["--objective", "classification",
                                                                          "--mode", "paired"]),
                      ("lm_seed1", ["--objective", "lm", "--seed", "1"])]:
    out[name] = str(root / name)
    rc, _, err = _main(["train", *TINY, *flags, "--data", str(data), "--out", out[name]])
    assert rc == 0, err
  return out


def test_lm_and_paired_classifier_runs_compare_equal(runs):
  rc, out, err = _main(["compare", runs["lm"], runs["classification"]])
  print(out)
  assert rc == 0, (out, err)
  lines = out.splitlines()
  assert "setting differs: train.objective: 'lm' vs 'classification'" in lines
  assert any(l.strip().startswith("params") and "mismatched_elements=0" in l for l in lines)
  assert any(l.strip().startswith("opt_state") and "mismatched_elements=0" in l for l in lines)
  assert lines[-1].startswith("EQUAL bit for bit: params, opt_state at step 3")


def test_another_seed_differs_naming_the_leaf_and_the_step(runs):
  rc, out, _ = _main(["compare", runs["lm"], runs["lm_seed1"]])
  print(out)
  assert rc == 1
  assert "setting differs: train.seed: 0 vs 1" in out
  assert out.splitlines()[-1] == ("DIFFERENT: first differing leaf params['block_0']['ln_attn']['bias'];"
                                  " first differing metrics at step 0")


def test_older_step_and_bad_paths(runs, tmp_path):
  rc, out, _ = _main(["compare", runs["lm"], runs["classification"], "--step", "2"])
  assert rc == 0 and "checkpoint step 2" in out
  for argv, needle in [([runs["lm"], str(tmp_path / "nope")], "is not a directory"),
                       ([runs["lm"], str(tmp_path)], "config.json not found"),
                       ([runs["lm"], runs["classification"], "--step", "1"], "no checkpoint for step 1")]:
    rc, out, err = _main(["compare", *argv])
    lines = err.strip().splitlines()
    assert rc == 2 and out == "" and len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("jaxequiv compare: error: ") and needle in lines[0], lines[0]
