"""Tests for jaxequiv.lm.experiment: one run in one call, and a signal ends it at a step boundary."""

from __future__ import annotations

import dataclasses
import os
import re
import signal

import jax
import numpy as np
import pytest

from jaxequiv import checkpoint, cli, rundir
from jaxequiv.lm import experiment, runs
from jaxequiv.lm import train as train_lib
from jaxequiv.model import ModelConfig

MCFG = ModelConfig(num_layers=1, width=16, num_heads=2, seq_len=24)
TCFG = train_lib.TrainConfig(steps=8, batch_size=4, eval_batch_size=8, checkpoint_every=0, log_every=2)
DATA = experiment.DataConfig("synthetic", num_synthetic=60)


def _signal_at(monkeypatch, signum, step):
  """Makes the training batches send ``signum`` to this process when step ``step``'s batch is drawn."""
  real = train_lib.sentence_batches

  def sentence_batches(*args):
    batches = real(*args)

    def at(start):
      for k, batch in enumerate(batches(start), start + 1):
        if k == step:
          os.kill(os.getpid(), signum)
        yield batch

    return at

  monkeypatch.setattr(train_lib, "sentence_batches", sentence_batches)


def test_run_trains_records_and_resumes_with_the_recorded_settings(tmp_path):
  out = str(tmp_path / "run")
  cfg = experiment.ExperimentConfig(MCFG, TCFG, DATA, out_dir=out, num_samples=2, progress=False,
                                    max_steps_this_run=3)
  first = experiment.run(cfg, log=None)
  assert (first["step"], first["completed"], first["samples"], first["signal"]) == (3, False, [], None)
  # --resume: the recorded model/train/data win over what the config says.
  other = experiment.ExperimentConfig(ModelConfig(), train_lib.TrainConfig(), out_dir=out, resume=True,
                                      num_samples=2, progress=False)
  done = experiment.run(other, log=None)
  assert done["completed"] and done["step"] == TCFG.steps and len(done["samples"]) == 2
  assert done["final"]["step"] == TCFG.steps and runs.read_config(out)[0] == MCFG
  assert rundir.read_config(out)["data"] == {"spec": "synthetic", "val_fraction": 0.1, "num_synthetic": 60}


def test_sigterm_ends_the_run_at_a_step_boundary_with_a_checkpoint(tmp_path, monkeypatch):
  out = str(tmp_path / "run")
  _signal_at(monkeypatch, signal.SIGTERM, 3)
  before = signal.getsignal(signal.SIGTERM)
  summary = experiment.run(experiment.ExperimentConfig(MCFG, TCFG, DATA, out_dir=out, progress=False), log=None)
  assert summary["signal"] == "SIGTERM" and not summary["completed"] and summary["samples"] == []
  assert checkpoint.steps(out) == [summary["step"]] and 3 <= summary["step"] < TCFG.steps
  assert signal.getsignal(signal.SIGTERM) is before  # the handler is given back


@pytest.mark.parametrize("signum,status", [(signal.SIGINT, 130)])
def test_cli_interrupted_prints_one_line_with_the_resume_command(tmp_path, monkeypatch, capsys, signum, status):
  out = str(tmp_path / "run")
  _signal_at(monkeypatch, signum, 2)
  argv = ["train", "--data", "synthetic", "--num-synthetic", "60", "--seq-len", "24", "--layers", "1", "--width",
          "16", "--heads", "2", "--steps", "8", "--batch-size", "4", "--no-progress", "--no-determinism-flags",
          "--out", out]
  assert cli.main(argv) == status
  err = capsys.readouterr().err.strip().splitlines()
  print(err)
  assert "Traceback" not in "".join(err)
  assert err[-1].startswith(f"jaxequiv train: stopped by {signal.Signals(signum).name} at step ")
  assert err[-1].endswith(f"resume with: python -m jaxequiv train --resume --out {out}")
  assert checkpoint.latest_step(out, log=None) is not None
  assert cli.main(["train", "--resume", "--out", out, "--no-progress", "--num-samples", "0",
                   "--no-determinism-flags"]) == 0
  assert f"step {TCFG.steps}:" in capsys.readouterr().out


def test_cli_resume_refuses_a_flag_that_differs_from_the_recorded_run_naming_it(tmp_path, capsys):
  out = str(tmp_path / "run")
  base = ["train", "--data", "synthetic", "--num-synthetic", "60", "--seq-len", "24", "--layers", "1", "--width",
          "16", "--heads", "2", "--steps", "8", "--batch-size", "4", "--no-progress", "--no-determinism-flags",
          "--num-samples", "0", "--out", out]
  assert cli.main(base + ["--max-steps-this-run", "2"]) == 0
  resume = ["train", "--resume", "--out", out, "--no-progress", "--no-determinism-flags", "--num-samples", "0"]
  for extra, needle in [(["--lr", "0.5"], "argument --lr: 0.5 differs from the run's train.learning_rate = 0.003"),
                        (["--schedule-steps", "5"],
                         "argument --schedule-steps: 5 differs from the run's train.schedule_steps = 8"),
                        (["--width", "32"], "argument --width: 32 differs from the run's model.width = 16"),
                        (["--data", "builtin"], "argument --data: builtin differs from the run's data.spec")]:
    capsys.readouterr()
    assert cli.main(resume + extra) == 2, extra
    err = capsys.readouterr().err.strip().splitlines()
    print(err)
    assert len(err) == 1 and needle in err[0] and "with its recorded settings" in err[0]
  # The recorded values themselves, and flags that do not change the run, are accepted.
  assert cli.main(resume + ["--width", "16", "--steps", "8", "--schedule-steps", "8", "--max-steps-this-run", "2"]) == 0
  # Its config.json deleted: --resume says so in one line instead of diffing against the defaults; nothing is written.
  os.remove(os.path.join(out, rundir.CONFIG_FILE))
  before = sorted(os.listdir(out))
  capsys.readouterr()
  assert cli.main(resume) == 2
  err = capsys.readouterr().err.strip().splitlines()
  print(err)
  assert len(err) == 1 and "argument --resume" in err[0] and "holds no config.json" in err[0]
  assert sorted(os.listdir(out)) == before


def test_resume_of_a_directory_that_holds_no_run_is_refused_not_started_fresh(tmp_path, capsys):
  """``--resume --out typo`` used to train a new run there without a word."""
  typo = str(tmp_path / "typo")
  capsys.readouterr()
  assert cli.main(["train", "--resume", "--out", typo, "--no-progress", "--no-determinism-flags"]) == 2
  err = capsys.readouterr().err.strip().splitlines()
  print(err)
  assert len(err) == 1 and "argument --resume" in err[0] and "does not exist" in err[0]
  assert not os.path.exists(typo)
  cfg = experiment.ExperimentConfig(MCFG, TCFG, DATA, out_dir=typo, resume=True, progress=False)
  with pytest.raises(rundir.RunDirError, match="resume: .*does not exist; nothing to resume"):
    experiment.run(cfg, log=None)
  assert not os.path.exists(typo)


def test_cli_resume_with_a_larger_steps_extends_the_run_bitwise(tmp_path, capsys):
  """8 steps, then --resume --steps 12 (said in one line), then 13 (config.json edited) equals a fresh
  --steps 13 --schedule-steps 8 run, bitwise; config.json without schedule_steps (older runs) means its steps."""
  base = ["train", "--data", "synthetic", "--num-synthetic", "60", "--seq-len", "24", "--layers", "1", "--width",
          "16", "--heads", "2", "--batch-size", "4", "--no-progress", "--no-determinism-flags", "--num-samples", "0"]
  out, straight = str(tmp_path / "run"), str(tmp_path / "straight")
  assert cli.main(base + ["--steps", "8", "--out", out]) == 0
  resume = ["train", "--resume", "--out", out, "--no-progress", "--no-determinism-flags", "--num-samples", "0"]
  capsys.readouterr()
  assert cli.main(resume + ["--steps", "5"]) == 2
  err = capsys.readouterr().err.strip().splitlines()
  print(err)
  assert err == [f"jaxequiv train: error: argument --steps: 5 is below step 8 that {out} already reached; resuming can"
                 " extend a run (a larger value), not undo steps"]
  saved = rundir.read_config(out)
  del saved["train"]["schedule_steps"]  # as runs recorded before it: the schedule's length is their steps
  rundir.write_config(out, saved)
  assert cli.main(resume + ["--steps", "12"]) == 0
  captured = capsys.readouterr()
  print(captured.err)
  assert (f"jaxequiv: extending {out} from 8 to 12 steps; the learning-rate schedule keeps its length 8 and holds its"
          " final value after it\n") in captured.err
  assert "step 12:" in captured.out
  recorded = rundir.read_config(out)["train"]
  assert (recorded["steps"], recorded["schedule_steps"]) == (12, 8)
  rundir.write_config(out, {**rundir.read_config(out), "train": {**recorded, "steps": 13}})  # an edited steps
  assert cli.main(resume) == 0
  assert (f"jaxequiv: extending {out} from 12 to 13 steps; the learning-rate schedule keeps its length 8 and holds its"
          " final value after it\n") in capsys.readouterr().err
  assert cli.main(resume + ["--steps", "12"]) == 2  # below the step 13 reached
  assert "argument --steps: 12 is below step 13" in capsys.readouterr().err
  assert cli.main(base + ["--steps", "13", "--schedule-steps", "8", "--out", straight]) == 0
  (got, _), (want, _) = runs.load_params(out), runs.load_params(straight)
  got, want = jax.tree.leaves(got), jax.tree.leaves(want)
  assert len(got) == len(want) > 0
  for a, b in zip(got, want):
    assert np.array_equal(np.asarray(a).view(np.uint32), np.asarray(b).view(np.uint32))
  os.remove(os.path.join(out, rundir.CONFIG_FILE))  # its checkpoints stay: --resume says the settings are lost
  capsys.readouterr()
  assert cli.main(resume) == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and "argument --resume" in err[0] and "holds checkpoints but no config.json" in err[0], err


def test_an_iid_run_prints_its_measured_step_time_and_eta_against_the_lm_first():
  lines = []
  cfg = experiment.ExperimentConfig(MCFG, dataclasses.replace(TCFG, objective="classification", mode="iid"), DATA,
                                    out_dir=None, num_samples=0, progress=False, max_steps_this_run=3)
  experiment.run(cfg, log=lines.append)
  print("\n".join(lines))
  i = next(i for i, line in enumerate(lines) if line.startswith("iid mode: ") and " s per step (" in line)
  assert re.search(r"against [0-9.]+ s for the LM step \(4 rows\): [0-9.e+]+x; the run's 8 steps to go will take about [0-9.]+ s", lines[i])
  assert i < next(i for i, line in enumerate(lines) if line.startswith("step 0: validation"))  # before training
  assert experiment._duration(4 * 3600 + 20 * 60) == "4 h 20 min" and experiment._duration(600) == "10 min"


def test_a_data_file_is_recorded_by_absolute_path_and_content_and_a_change_is_refused(tmp_path, monkeypatch):
  data = tmp_path / "corpus.txt"
  data.write_text("\n".join(f"The cat {i} sat on mat {i * 7}." for i in range(60)) + "\n")
  monkeypatch.chdir(tmp_path)  # the spec given relative to the working directory
  out = str(tmp_path / "run")
  tcfg = dataclasses.replace(TCFG, checkpoint_every=1)  # a max_steps_this_run cut saves nothing (a simulated kill)
  cfg = experiment.ExperimentConfig(MCFG, tcfg, experiment.DataConfig("corpus.txt"), out_dir=out, progress=False,
                                    num_samples=0, max_steps_this_run=2)
  experiment.run(cfg, log=None)
  recorded = rundir.read_config(out)
  assert recorded["data"]["spec"] == str(data) and len(recorded["data_sha256"]) == 64
  monkeypatch.chdir("/")  # resuming from another directory reads the same file
  resume = dataclasses.replace(cfg, resume=True, max_steps_this_run=1)
  assert experiment.run(resume, log=None)["step"] == 3
  data.write_text(data.read_text().replace("cat", "rat"))  # the file changed: refused in one line naming the field
  with pytest.raises(rundir.ConfigMismatchError, match=r"^cannot resume .*data_sha256: recorded '[0-9a-f]{64}'") as e:
    experiment.run(resume, log=None)
  assert "\n" not in str(e.value)
