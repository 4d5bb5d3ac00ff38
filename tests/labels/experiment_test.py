"""Tests for jaxequiv.labels.experiment: ``run(config)`` and its run directory, saving and loading the heads."""

import json
import os

import pytest

from jaxequiv import checkpoint, rundir
from jaxequiv.labels import experiment, train
from jaxequiv.bitwise import assert_bitwise_equal
from tests.labels.tiny import CFG, NAMES


def test_save_and_load_heads_through_the_checkpoint_module(data, tmp_path):
  res = train.train_heads(data.images, data.labels, NAMES, CFG, steps=1, batch_size=8, heads=("string",))
  out = str(tmp_path / "labels")
  experiment.save_heads(out, res, CFG, data.images.shape[1:], NAMES, summary={"accuracy": 0.5})
  trained, cfg, names = experiment.load_heads(out)
  assert cfg == CFG and names == list(NAMES) and trained.onehot_params is None
  assert_bitwise_equal(trained.string_params, res.string_params)
  assert_bitwise_equal(trained.string_curve, res.string_curve)
  assert json.loads((tmp_path / "labels" / "metrics.json").read_text()) == {"accuracy": 0.5}
  step_dir = os.path.join(checkpoint.checkpoint_dir(out), "1")
  os.remove(os.path.join(step_dir, checkpoint.MANIFEST_FILE))
  with pytest.raises(rundir.RunDirError, match="no good checkpoint in"):
    experiment.load_heads(out)


def test_run_trains_measures_and_writes_its_run_directory(tmp_path):
  config = experiment.ExperimentConfig(steps=2, batch_size=8, num_train=32, num_test=48, width=32, heads=2,
                                       channels=(8, 16), beam_size=3, out_dir=str(tmp_path / "run"))
  res = experiment.run(config)
  assert res["config"] == CFG  # the tests' tiny model, so compiled functions are shared
  assert set(res["metrics"]) == {"onehot", "string"} and res["zero_shot"] is None
  out = config.out_dir
  assert res["files"] == [f"{out}/config.json", f"{out}/checkpoints/2", f"{out}/metrics.json", f"{out}/metrics.md"]
  assert experiment.ExperimentConfig(**rundir.read_config(out)) == config  # config.json round-trips
  summary = json.loads(open(f"{out}/metrics.json").read())
  assert summary["metrics"] == res["metrics"] and summary["string_curve"] == res["trained"].string_curve.tolist()
  assert open(f"{out}/metrics.md").read() == res["report"] + "\n"
  trained, cfg, names = experiment.load_heads(out)
  assert cfg == CFG and names == list(NAMES)
  assert_bitwise_equal((trained.onehot_params, trained.string_params),
                       (res["trained"].onehot_params, res["trained"].string_params))


def test_run_without_out_dir_writes_nothing(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  res = experiment.run(experiment.ExperimentConfig(steps=1, batch_size=8, num_train=16, num_test=16, width=32,
                                                   heads=2, channels=(8, 16), beam_size=3))
  assert res["files"] == [] and list(tmp_path.iterdir()) == []
  assert res["report"].startswith("data=shapes train=16 test=16 K=16 steps=1 batch=8 seed=0")
