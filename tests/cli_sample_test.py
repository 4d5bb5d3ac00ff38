"""``python -m jaxequiv sample`` on a checkpoint written in the training run layout."""

import dataclasses
import json
import os

import jax
import jax.numpy as jnp
import optax
import pytest

from jaxequiv import cli
from jaxequiv import bitwise, model
from jaxequiv.cli import sample as cli_sample
from jaxequiv.lm import sample as sampling

CFG = model.ModelConfig(num_layers=1, width=16, num_heads=2, seq_len=12)


def _write_run(run_dir, params, step=7):
  """The layout of jaxequiv.lm.train: config.json + orbax checkpoints/<step>/{state, meta}."""
  import orbax.checkpoint as ocp
  os.makedirs(run_dir, exist_ok=True)
  with open(os.path.join(run_dir, "config.json"), "w") as f:
    json.dump({"model": dataclasses.asdict(CFG), "train": {}}, f)
  state = {"step": jnp.int32(step), "params": params, "opt_state": optax.adam(1e-3).init(params)}
  options = ocp.CheckpointManagerOptions(create=True, enable_async_checkpointing=False)
  with ocp.CheckpointManager(os.path.abspath(os.path.join(run_dir, "checkpoints")), options=options) as mngr:
    mngr.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave({})), force=True)
    mngr.wait_until_finished()


@pytest.fixture(scope="module")
def run(tmp_path_factory):
  params = model.init(jax.random.key(0), CFG)
  params["head"]["bias"] = params["head"]["bias"].at[63].add(2.0)  # '.' likelier: samples finish
  run_dir = str(tmp_path_factory.mktemp("run"))
  _write_run(run_dir, params)
  return run_dir, params


def _main(monkeypatch, argv):
  monkeypatch.setitem(cli.COMMANDS, "sample", ("jaxequiv.cli.sample", "sample sentences from a checkpoint"))
  return cli.main(["sample", *argv])


def test_load_params_restores_the_saved_params_bit_for_bit(run):
  run_dir, params = run
  loaded, config = cli_sample.load_params(run_dir)
  assert config == CFG
  bitwise.assert_bitwise_equal(loaded, params)


def test_cli_prints_the_library_samples(run, monkeypatch, capsys):
  run_dir, params = run
  argv = ["--checkpoint", run_dir, "--num-samples", "5", "--temperature", "0.8", "--top-k", "10",
          "--prompt", "Hi", "--seed", "3"]
  assert _main(monkeypatch, argv) == 0
  out = capsys.readouterr()
  want = sampling.sample(params, CFG, jax.random.key(3), 5, temperature=0.8, top_k=10, prompt="Hi")
  assert out.out.splitlines() == want
  assert "5 samples" in out.err and "KV cache" in out.err
  assert _main(monkeypatch, [*argv, "--by-classification"]) == 0
  by_clf = capsys.readouterr().out.splitlines()
  assert _main(monkeypatch, [*argv, "--no-cache"]) == 0
  assert capsys.readouterr().out.splitlines() == by_clf
  assert all(s.startswith("Hi") for s in by_clf)


@pytest.mark.parametrize("argv, message", [
    (["--prompt", "Hi."], "prompt has '.' at position 2"),
    (["--prompt", "x" * 12], "prompt has 12 characters, too long"),
    (["--step", "3"], r"no checkpoint for step 3 in .*saved steps: \[7\]"),
    (["--top-k", "0"], r"top_k must be None or an int in \[1, 64\]"),
])
def test_cli_bad_input_exits_2_with_a_message(run, monkeypatch, capsys, argv, message):
  assert _main(monkeypatch, ["--checkpoint", run[0], *argv]) == 2
  err = capsys.readouterr().err
  assert __import__("re").search(message, err), err


def test_cli_missing_run_dir(tmp_path, monkeypatch, capsys):
  assert _main(monkeypatch, ["--checkpoint", str(tmp_path / "nope")]) == 2
  assert "config.json not found" in capsys.readouterr().err


def test_reads_checkpoints_written_by_jaxequiv_train(tmp_path):
  """Compatibility with the training module's own save/load, when it is present."""
  train = pytest.importorskip("jaxequiv.lm.train")
  if not all(hasattr(train, n) for n in ("TrainConfig", "init_state", "save_checkpoint", "config_dict",
                                         "load_checkpoint")):
    pytest.skip("jaxequiv.lm.train lacks the checkpoint API this test uses")
  tcfg = train.TrainConfig(steps=1, warmup_steps=0)
  state = train.init_state(jax.random.key(1), CFG, tcfg)
  with open(tmp_path / "config.json", "w") as f:
    json.dump(train.config_dict(CFG, tcfg), f)
  train.save_checkpoint(str(tmp_path), state, {}, tcfg)
  theirs, their_cfg = train.load_checkpoint(str(tmp_path))
  ours, our_cfg = cli_sample.load_params(str(tmp_path))
  assert our_cfg == their_cfg == CFG
  bitwise.assert_bitwise_equal(ours, theirs)
  bitwise.assert_bitwise_equal(ours, state.params)
