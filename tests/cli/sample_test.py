"""``python -m jaxequiv sample`` on a checkpoint written in the training run layout."""

import os
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest

from jaxequiv import checkpoint, cli, rundir
from jaxequiv import bitwise, model
from jaxequiv.cli import sample as cli_sample
from jaxequiv.lm import sample as sampling
from tests import testutil

CFG = model.ModelConfig(num_layers=1, width=16, num_heads=2, seq_len=12)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
  params = model.init(jax.random.key(0), CFG)
  params["head"]["bias"] = params["head"]["bias"].at[63].add(2.0)  # '.' likelier: samples finish
  run_dir = str(tmp_path_factory.mktemp("run"))
  testutil.write_run(run_dir, params, CFG)
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


def test_a_damaged_newest_checkpoint_falls_back_with_one_line(tmp_path, monkeypatch, capsys):
  params = model.init(jax.random.key(0), CFG)
  run_dir = str(tmp_path / "run")
  testutil.write_run(run_dir, params, CFG, step=7)
  newest = testutil.write_run(run_dir, jax.tree.map(lambda x: x + 1, params), CFG, step=9)
  testutil.flip_byte(testutil.largest_file(newest))
  loaded, _ = cli_sample.load_params(run_dir)
  bitwise.assert_bitwise_equal(loaded, params)  # step 7's, not the damaged step 9's
  capsys.readouterr()
  assert _main(monkeypatch, ["--checkpoint", run_dir, "--num-samples", "2", "--no-cache"]) == 0
  err = [l for l in capsys.readouterr().err.splitlines() if "damaged" in l]
  assert len(err) == 1 and "checkpoints/9 is damaged" in err[0]
  testutil.truncate(testutil.largest_file(os.path.join(checkpoint.checkpoint_dir(run_dir), "7")))
  assert _main(monkeypatch, ["--checkpoint", run_dir]) == 2
  last = capsys.readouterr().err.strip().splitlines()[-1]
  assert "error: no good checkpoint in" in last and run_dir in last


DATA_PARALLEL_RUN = textwrap.dedent(r"""
    import sys, jax, numpy as np
    from jaxequiv import model
    from jaxequiv.lm import parallel, train as tr
    assert jax.device_count() == 2, jax.devices()
    cfg = model.ModelConfig(num_layers=1, width=16, num_heads=2, seq_len=12)
    tcfg = tr.TrainConfig(steps=2, batch_size=4, warmup_steps=1, eval_every=0, checkpoint_every=0, log_every=1)
    sentences = ["A cat.", "The dog ran.", "We sing.", "Go home.", "It is.", "Hi there."]
    res = tr.train(cfg, tcfg, tr.sentence_batches(sentences, cfg, tcfg), out_dir=sys.argv[1], progress=False,
                   mesh=parallel.make_mesh())
    print(jax.tree.leaves(res.state.params)[0].sharding)
    np.savez(sys.argv[2], *[np.asarray(x) for x in jax.tree.leaves(res.state.params)])
""")


def test_sampling_a_data_parallel_checkpoint_works_on_one_device(tmp_path, monkeypatch, capsys):
  """Written by a 2-device data-parallel run (replicated params), read in this 1-device process."""
  env = dict(os.environ)
  env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=2").strip()
  env["JAX_PLATFORMS"] = "cpu"
  run_dir, saved = str(tmp_path / "dp"), str(tmp_path / "params.npz")
  proc = subprocess.run([sys.executable, "-c", DATA_PARALLEL_RUN, run_dir, saved], env=env, capture_output=True,
                        text=True, timeout=300, check=False)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "NamedSharding" in proc.stdout
  params, config = cli_sample.load_params(run_dir)
  assert config.width == 16 and config.seq_len == 12
  assert all(x.sharding.device_set == {jax.devices()[0]} for x in jax.tree.leaves(params))
  want = np.load(saved)
  bitwise.assert_bitwise_equal([np.asarray(x) for x in jax.tree.leaves(params)],
                               [want[f"arr_{i}"] for i in range(len(want.files))])
  assert _main(monkeypatch, ["--checkpoint", run_dir, "--num-samples", "3", "--seed", "1", "--no-cache"]) == 0
  assert len(capsys.readouterr().out.splitlines()) == 3


@pytest.mark.parametrize("argv, message", [
    (["--prompt", "Hi."], "argument --prompt: prompt has '.' at position 2"),
    (["--prompt", "x" * 12], "argument --prompt: prompt has 12 characters, too long"),
    (["--prompt", "Caf\u00e9"], "argument --prompt: prompt: character '\u00e9'"),
    (["--max-len", "13"], r"argument --max-len: must be in \[1, 12\]"),
])
def test_prompt_and_max_len_are_checked_before_jax_starts_and_the_checkpoint_loads(tmp_path, monkeypatch, capsys,
                                                                                   argv, message):
  rundir.write_config(str(tmp_path), {"model": {"seq_len": CFG.seq_len}})  # config.json only: no checkpoint yet

  def reached(*args, **kwargs):
    raise AssertionError("got past the flag checks")

  monkeypatch.setattr(cli, "set_determinism_flags", reached)
  monkeypatch.setattr(cli_sample, "load_params", reached)
  assert _main(monkeypatch, ["--checkpoint", str(tmp_path), *argv]) == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and __import__("re").search(message, err[0]), err


@pytest.mark.parametrize("plant", ["fifo", "link to /dev/zero", "link to a run's config"])
def test_a_config_json_that_is_not_a_regular_file_is_one_line_at_once(run, tmp_path, monkeypatch, capsys, plant):
  """A FIFO named config.json used to block ``sample`` forever; a link is not followed (even to a good config)."""
  path = tmp_path / rundir.CONFIG_FILE
  if plant == "fifo":
    os.mkfifo(path)
  else:
    os.symlink("/dev/zero" if plant.endswith("zero") else os.path.join(run[0], rundir.CONFIG_FILE), path)
  result = []
  thread = __import__("threading").Thread(target=lambda: result.append(_main(monkeypatch, ["--checkpoint", str(tmp_path)])),
                                          daemon=True)
  thread.start()
  thread.join(30)
  assert not thread.is_alive(), "sample blocked on config.json"
  err = capsys.readouterr().err.strip().splitlines()
  print(err)
  want = "a FIFO (named pipe), not a regular file" if plant == "fifo" else "a symbolic link, not followed here"
  assert result == [2] and len(err) == 1 and err[0] == f"jaxequiv sample: error: {str(path)!r} is {want}"
