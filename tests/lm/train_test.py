"""Tests for jaxequiv.lm.train and lm.runs: optimizer, step, paired trajectories, evaluation, resumable loop."""

from __future__ import annotations

import json
import math
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxequiv
from jaxequiv import checkpoint, rundir, training
from jaxequiv.lm import runs, train as tr
from jaxequiv.lm.evaluate import EvalResult, evaluate
from jaxequiv.bitwise import assert_bitwise_equal, compare_bits
from tests import testutil

SENTENCES = [
    "The cat sat on the mat.", "A dog ran.", "We like tea.", "It is cold today.", "She sings.",
    "Birds fly south.", "The sun is hot.", "He reads books.", "Rain falls.", "I see the sea.",
    "They play chess.", "Fish swim fast.", "The tree is tall.", "You win.", "Snow is white.",
    "My cat naps.", "The sky is blue.", "Ants work hard.", "Bob has 3 hats.", "Look up.",
]
VAL = ["The dog sat.", "Fish fly.", "I like the sun."]
SEQ = 24
STEPS = 16  # one schedule for all tests, so the jitted step compiles once per objective
MCFG = jaxequiv.ModelConfig(num_layers=1, width=32, num_heads=2, seq_len=SEQ)


def _pad_examples(batch: jaxequiv.ClassificationBatch, n: int) -> jaxequiv.ClassificationBatch:
  """Pads the example arrays to n entries with row == R (ignored)."""
  r = batch.tokens.shape[0]
  k = len(batch.rows)
  pad = lambda x, v: np.concatenate([x, np.full(n - k, v, np.int32)])
  return jaxequiv.ClassificationBatch(batch.tokens, pad(batch.rows, r), pad(batch.positions, 0), pad(batch.labels, 0))


def inline_batches(sentences, mcfg, tcfg):
  """A small deterministic stand-in for jaxequiv.lm.data: step k's sentences depend on (seed, k) only."""
  b, t = tcfg.batch_size, mcfg.seq_len

  def sentences_at(step):
    rng = np.random.default_rng([tcfg.seed, step])
    return [sentences[i] for i in rng.choice(len(sentences), b, replace=False)]

  def batches(start):
    step = start
    while True:
      s = jaxequiv.canonical_order(sentences_at(step))
      if tcfg.objective == "lm":
        yield jaxequiv.lm_batch(s, t, num_rows=b)
      elif tcfg.mode == "paired":
        yield _pad_examples(jaxequiv.pack(jaxequiv.prefix_examples(s), t, num_rows=b), b * t)
      else:
        ex = jaxequiv.prefix_examples(sentences)
        idx = np.random.default_rng([tcfg.seed, step, 1]).choice(len(ex), b, replace=False)
        yield jaxequiv.unpacked(ex.take(idx), t)
      step += 1

  return batches


def _tcfg(**kw):
  base = dict(steps=STEPS, batch_size=4, learning_rate=1e-2, warmup_steps=2, eval_every=0, checkpoint_every=0,
              log_every=2)
  base.update(kw)
  return tr.TrainConfig(**base)


def test_train_config_validates():
  with pytest.raises(ValueError, match="objective"):
    tr.TrainConfig(objective="regression")
  with pytest.raises(ValueError, match="mode"):
    tr.TrainConfig(mode="shuffled")
  with pytest.raises(ValueError, match="batch_size"):
    tr.TrainConfig(batch_size=0)
  s = training.make_schedule(tr.TrainConfig(steps=5, warmup_steps=10, learning_rate=1.0))  # warm-up clamped
  assert float(s(4)) == 1.0


def test_schedule_warmup_then_cosine():
  cfg = tr.TrainConfig(steps=100, warmup_steps=10, learning_rate=1.0, end_lr_fraction=0.1)
  s = training.make_schedule(cfg)
  assert float(s(0)) == 0.0
  assert math.isclose(float(s(10)), 1.0, rel_tol=1e-6)
  assert math.isclose(float(s(100)), 0.1, rel_tol=1e-5)
  assert float(s(50)) < 1.0


def test_optimizer_clips_global_norm():
  """Adam's first moment after one step is (1 - b1) * clipped gradient, whose norm is clip_norm."""
  import optax
  cfg = tr.TrainConfig(steps=10, warmup_steps=0, learning_rate=1.0, clip_norm=1.0, weight_decay=0.0, b1=0.9)
  opt = training.make_optimizer(cfg)
  params = {"w": jnp.ones((3, 3))}
  grads = {"w": jnp.full((3, 3), 100.0)}
  _, state = opt.update(grads, opt.init(params), params)
  mu = optax.tree_utils.tree_get(state, "mu")
  norm = float(jnp.sqrt(jnp.sum(mu["w"] ** 2))) / (1 - cfg.b1)
  print("clipped norm", norm)
  assert abs(norm - 1.0) < 1e-5


def test_train_step_reduces_loss_and_counts_steps():
  tcfg = _tcfg()
  res = tr.train(MCFG, tcfg, inline_batches(SENTENCES, MCFG, tcfg), progress=False)
  losses = [r["loss"] for r in res.history if "loss" in r]
  print("first/last loss", losses[0], losses[-1])
  assert int(res.state.step) == STEPS
  assert losses[-1] < losses[0] - 0.5


def test_iid_classifier_trains_and_counts_predictions():
  tcfg = _tcfg(objective="classification", mode="iid", batch_size=16)
  res = tr.train(MCFG, tcfg, inline_batches(SENTENCES, MCFG, tcfg), progress=False)
  losses = [r["loss"] for r in res.history if "loss" in r]
  print("iid first/last loss", losses[0], losses[-1])
  assert res.predictions_seen == STEPS * 16
  assert losses[-1] < losses[0] - 0.3


def test_bfloat16_trains():
  mcfg = jaxequiv.ModelConfig(num_layers=1, width=32, num_heads=2, seq_len=SEQ, dtype="bfloat16")
  tcfg = _tcfg()
  res = tr.train(mcfg, tcfg, inline_batches(SENTENCES, mcfg, tcfg), progress=False)
  losses = [r["loss"] for r in res.history if "loss" in r]
  print("bf16 first/last loss", losses[0], losses[-1])
  assert losses[-1] < losses[0] - 0.5
  assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(res.state.params))


def test_paired_trajectories_bitwise_equal_through_train_step():
  """LM and packed classification: same params, same optimizer state, every step, for 10 steps."""
  tl, tc = _tcfg(), _tcfg(objective="classification", mode="paired")
  opt = training.make_optimizer(tl)
  step_lm = jax.jit(training.make_train_step(tr.make_loss_fn("lm", MCFG), opt))
  step_cl = jax.jit(training.make_train_step(tr.make_loss_fn("classification", MCFG), opt))
  s_lm = s_cl = tr.init_state(jax.random.key(0), MCFG, tl)
  it_lm, it_cl = inline_batches(SENTENCES, MCFG, tl)(0), inline_batches(SENTENCES, MCFG, tc)(0)
  for k in range(10):
    b_lm, b_cl = next(it_lm), next(it_cl)
    assert tr.num_predictions(b_lm) == tr.num_predictions(b_cl)
    s_lm, m_lm = step_lm(s_lm, b_lm)
    s_cl, m_cl = step_cl(s_cl, b_cl)
    assert_bitwise_equal(m_lm, m_cl)
    assert_bitwise_equal(s_lm, s_cl)
  # And the params did move.
  assert not compare_bits(s_lm.params, tr.init_state(jax.random.key(0), MCFG, tl).params).equal


def test_paired_train_loop_bitwise_equal():
  tl, tc = _tcfg(), _tcfg(objective="classification")
  a = tr.train(MCFG, tl, inline_batches(SENTENCES, MCFG, tl), progress=False)
  b = tr.train(MCFG, tc, inline_batches(SENTENCES, MCFG, tc), progress=False)
  assert a.predictions_seen == b.predictions_seen
  assert_bitwise_equal(a.state, b.state)


def test_evaluate_matches_lm_nll_mean_over_characters():
  params = jaxequiv.init(jax.random.key(1), MCFG)
  apply_fn = jaxequiv.make_apply(MCFG)
  r = evaluate(params, VAL, apply_fn, SEQ, batch_size=2)
  ref = float(jax.jit(jaxequiv.lm_nll, static_argnames="apply_fn")(params, jaxequiv.lm_batch(VAL, SEQ), apply_fn))
  print("evaluate", r, "lm_nll", ref, "rel err", abs(r.nats_per_char - ref) / ref)
  assert r.num_chars == sum(len(s) for s in VAL)
  assert abs(r.nats_per_char - ref) <= 1e-5 * ref  # float32 sums in different groupings
  assert math.isclose(r.bits_per_char, r.nats_per_char / math.log(2))
  with pytest.raises(ValueError, match="sentence 0"):
    evaluate(params, ["no period"], apply_fn, SEQ)


def _run(out, tcfg, **kw):
  return tr.train(MCFG, tcfg, inline_batches(SENTENCES, MCFG, tcfg), val_sentences=VAL, out_dir=out,
                  progress=False, **kw)


def _records(path):
  """metrics.jsonl without the wall-clock field."""
  with open(path) as f:
    return [{k: v for k, v in json.loads(line).items() if k != "time"} for line in f if line.strip().startswith("{")]


@pytest.mark.parametrize("objective", ["lm", "classification"])
def test_resume_is_bitwise_equal_to_uninterrupted(tmp_path, objective):
  # log_every=3 does not divide checkpoint_every=4: the window open at the checkpoint must survive the kill.
  tcfg = _tcfg(checkpoint_every=4, eval_every=4, log_every=3, objective=objective)
  straight = _run(str(tmp_path / "straight"), tcfg)
  assert straight.completed

  # Run 1 stops after 6 steps without saving (a kill): latest checkpoint is step 4.
  out = str(tmp_path / "resumed")
  first = _run(out, tcfg, max_steps_this_run=6)
  assert not first.completed and int(first.state.step) == 6
  assert runs.latest_step(out) == 4
  with open(os.path.join(out, rundir.METRICS_FILE), "ab") as f:
    f.write(b"\x00 garbage from a torn write\n")  # must not block the resume
  # Run 2 resumes from step 4 and finishes.
  second = _run(out, tcfg)
  assert second.completed
  assert_bitwise_equal(straight.state, second.state)
  assert second.predictions_seen == straight.predictions_seen
  # The metrics log equals the uninterrupted run's, record for record (the window 4..6 included).
  got = _records(os.path.join(out, rundir.METRICS_FILE))
  want = _records(str(tmp_path / "straight" / rundir.METRICS_FILE))
  assert [r["step"] for r in got if "loss" in r] == [3, 6, 9, 12, 15, 16]
  assert got == want


def test_best_validation_is_kept_named_and_carried_over_a_resume(tmp_path, monkeypatch, capsys):
  # Scripted validation NLLs in call order: the best after step 0 is step 4's, then the run gets worse.
  nats = iter([5.0, 3.0, 2.0, 2.5, 4.0] + [4.5, 4.2, 4.9, 5.1])  # steps 0, 2, ..., 8 | resumed at 9: 10, ..., 16
  monkeypatch.setattr(tr, "evaluate_batches", lambda *a: (lambda x: EvalResult(x, x / math.log(2), 1))(next(nats)))
  tcfg = _tcfg(eval_every=2, checkpoint_every=3, max_to_keep=1)
  out = str(tmp_path / "run")
  first = _run(out, tcfg, max_steps_this_run=9)
  best = {"step": 4, "val_nats_per_char": 2.0, "val_bits_per_char": 2.0 / math.log(2)}
  assert first.best == best and runs.best(out) == best
  assert checkpoint.steps(out) == [9, 4]  # max_to_keep=1 pruned 2, 3 and 6, never the best
  err = capsys.readouterr().err
  assert "step 2: validation 3.0000 nats/char (4.3281 bits/char) (best so far)" in err, err
  assert "step 6: validation 2.5000 nats/char (3.6067 bits/char)\n" in err, err
  second = _run(out, tcfg)
  assert second.completed and second.best == best and runs.best(out) == best
  assert checkpoint.steps(out) == [16, 4]
  params, _ = runs.load_params(out, best["step"])
  assert jax.tree.structure(params) == jax.tree.structure(second.state.params)


def test_resume_falls_back_past_a_damaged_checkpoint(tmp_path, capsys):
  tcfg = _tcfg(checkpoint_every=4)
  straight = tr.train(MCFG, tcfg, inline_batches(SENTENCES, MCFG, tcfg), progress=False)
  out = str(tmp_path / "run")
  _run(out, tcfg, max_steps_this_run=9)
  assert checkpoint.steps(out) == [8, 4]
  testutil.flip_byte(testutil.largest_file(os.path.join(checkpoint.checkpoint_dir(out), "8")))
  capsys.readouterr()
  resumed = _run(out, tcfg)
  err = capsys.readouterr().err
  print(err)
  assert "checkpoints/8 is damaged" in err and "checksum" in err
  assert_bitwise_equal(straight.state, resumed.state)  # redone from step 4
  assert checkpoint.latest_step(out) == STEPS


def test_resume_after_exception_in_callback(tmp_path):
  tcfg = _tcfg(checkpoint_every=3)
  straight = tr.train(MCFG, tcfg, inline_batches(SENTENCES, MCFG, tcfg), progress=False)

  def killer(step, state, record):
    if step == 7:
      raise tr.StopTraining("simulated kill")

  out = str(tmp_path / "run")
  with pytest.raises(tr.StopTraining):
    _run(out, tcfg, callbacks=[killer])
  assert runs.latest_step(out) == 6
  resumed = _run(out, tcfg)
  assert_bitwise_equal(straight.state, resumed.state)

  params, cfg = runs.load_params(out)
  assert cfg == MCFG
  assert_bitwise_equal(straight.state.params, params)


def test_stop_ends_at_a_step_boundary_with_a_checkpoint_and_resumes_bitwise(tmp_path):
  # checkpoint_every=4, log_every=2: the stop at step 5 falls between both schedules.
  tcfg = _tcfg(checkpoint_every=4)
  straight = _run(str(tmp_path / "straight"), tcfg)
  out = str(tmp_path / "run")
  polls = []
  first = _run(out, tcfg, stop=lambda: polls.append(1) or len(polls) == 5)
  assert not first.completed and int(first.state.step) == 5 and len(polls) == 5
  assert checkpoint.steps(out) == [5, 4]
  resumed = _run(out, tcfg)
  assert resumed.completed
  assert_bitwise_equal(straight.state, resumed.state)
  assert _records(os.path.join(out, rundir.METRICS_FILE)) == _records(str(tmp_path / "straight" / rundir.METRICS_FILE))


def test_resume_refuses_changed_config_and_existing_dir(tmp_path):
  tcfg = _tcfg(checkpoint_every=2)
  out = str(tmp_path / "run")
  _run(out, tcfg, max_steps_this_run=2)
  with pytest.raises(rundir.ConfigMismatchError, match=r"train.learning_rate: recorded 0.01, now 0.5") as e:
    _run(out, _tcfg(checkpoint_every=2, learning_rate=0.5))
  assert "\n" not in str(e.value)
  with pytest.raises(rundir.RunDirError, match="already holds checkpoints"):
    _run(out, tcfg, resume=False)


def test_resume_compares_with_the_checkpoint_not_an_edited_config_json(tmp_path):
  """``train --resume`` reads config.json; an edit there (seed, steps) must not slip through."""
  tcfg = _tcfg(checkpoint_every=2)
  out = str(tmp_path / "run")
  _run(out, tcfg, max_steps_this_run=2)
  saved = rundir.read_config(out)
  saved["train"]["seed"], saved["train"]["schedule_steps"] = 5, 99
  rundir.write_config(out, saved)
  mcfg, edited, _ = runs.read_config(out)
  with pytest.raises(rundir.ConfigMismatchError) as e:
    tr.train(mcfg, edited, inline_batches(SENTENCES, mcfg, edited), out_dir=out, progress=False)
  print(e.value)
  assert "train.seed: recorded 0, now 5" in str(e.value)
  assert "train.schedule_steps: recorded 16, now 99" in str(e.value)
  assert runs.recorded_config(out)["train"]["seed"] == 0


def _param_bits(state):
  return [np.asarray(x).view(np.uint32) for x in jax.tree.leaves(state.params)]


def test_a_run_extended_by_resume_equals_one_run_with_the_shorter_schedule_bitwise(tmp_path, capsys):
  """16 steps, then resumed to 24 keeping the 16-step schedule == one 24-step run with schedule_steps=16, bitwise."""
  longer = _tcfg(steps=STEPS + 8, schedule_steps=STEPS, checkpoint_every=4)
  straight = tr.train(MCFG, longer, inline_batches(SENTENCES, MCFG, longer), progress=False)
  out = str(tmp_path / "run")
  assert _run(out, _tcfg(checkpoint_every=4)).completed
  assert rundir.read_config(out)["train"]["schedule_steps"] == STEPS  # recorded resolved
  capsys.readouterr()
  extended = _run(out, longer)
  err = capsys.readouterr().err
  print(err)
  assert extended.completed and int(extended.state.step) == STEPS + 8
  assert (f"extending {out} from {STEPS} to {STEPS + 8} steps; the learning-rate schedule keeps its length {STEPS}"
          " and holds its final value after it") in err
  got, want = _param_bits(extended.state), _param_bits(straight.state)
  assert len(got) == len(want) and all(np.array_equal(a, b) for a, b in zip(got, want))
  assert_bitwise_equal(straight.state, extended.state)  # the optimizer state too
  assert rundir.read_config(out)["train"]["steps"] == STEPS + 8
  lr = {r["step"]: r["lr"] for r in _records(os.path.join(out, rundir.METRICS_FILE)) if "lr" in r}
  end = longer.learning_rate * longer.end_lr_fraction
  print(lr)
  assert all(math.isclose(lr[k], end, rel_tol=1e-6) for k in (18, 20, 22, 24))  # held after the schedule
  assert lr[16] > lr[18]  # step 16 logs the lr of the schedule's last update (schedule(15))


def test_resume_refuses_a_new_schedule_length_and_steps_below_the_step_reached(tmp_path):
  """Only ``steps`` may change on resume, and not below the step reached."""
  out = str(tmp_path / "run")
  _run(out, _tcfg(checkpoint_every=4), max_steps_this_run=8)
  with pytest.raises(rundir.ConfigMismatchError, match=r"train.schedule_steps: recorded 16, now 24") as e:
    _run(out, _tcfg(steps=STEPS + 8))  # schedule_steps None is steps: the schedule would change
  assert "\n" not in str(e.value)
  with pytest.raises(rundir.ConfigMismatchError, match=r"train.steps 6 is below step 8 that it already reached") as e:
    _run(out, _tcfg(steps=6, schedule_steps=STEPS))
  assert "\n" not in str(e.value)
  # Down to the step reached, a run may also stop earlier; the schedule keeps its length.
  lines = []
  short = _run(out, _tcfg(steps=12, schedule_steps=STEPS, checkpoint_every=4), log=lines.append)
  assert short.completed and int(short.state.step) == 12
  assert f"shortening {out} from {STEPS} to 12 steps; the learning-rate schedule keeps its length {STEPS}" in lines
  with pytest.raises(ValueError, match="schedule_steps must be None \\(steps\\) or an int >= 1, got 0"):
    _tcfg(schedule_steps=0)


def test_runs_recorded_before_schedule_steps_resume_and_extend_the_same(tmp_path, monkeypatch, capsys):
  """config.json and checkpoints without ``schedule_steps`` (older runs) mean schedule_steps = steps."""
  real = tr.config_dict

  def old_config_dict(model_config, train_config, **extra):
    d = real(model_config, train_config, **extra)
    del d["train"]["schedule_steps"]
    return d

  monkeypatch.setattr(tr, "config_dict", old_config_dict)
  out = str(tmp_path / "run")
  _run(out, _tcfg(checkpoint_every=4), max_steps_this_run=8)
  assert "schedule_steps" not in rundir.read_config(out)["train"]
  assert "schedule_steps" not in runs.recorded_config(out)["train"]
  monkeypatch.undo()
  mcfg, old, _ = runs.read_config(out)
  assert old.schedule_steps is None and old.schedule_length == STEPS
  assert old.optimizer_config() == _tcfg().optimizer_config()
  capsys.readouterr()
  longer = _tcfg(steps=STEPS + 8, schedule_steps=STEPS)
  extended = _run(out, longer)
  assert "extending" in capsys.readouterr().err
  straight = tr.train(MCFG, longer, inline_batches(SENTENCES, MCFG, longer), progress=False)
  assert_bitwise_equal(straight.state, extended.state)


def test_a_second_writer_is_refused(tmp_path):
  out = str(tmp_path / "run")
  with rundir.RunLock(out):
    with pytest.raises(rundir.LockedError, match="in use by another writer"):
      _run(out, _tcfg())
  assert not os.path.exists(os.path.join(out, rundir.CONFIG_FILE))  # refused before writing anything


def test_non_finite_loss_stops_naming_the_step_and_keeps_the_last_good_checkpoint(tmp_path):
  tcfg = _tcfg(checkpoint_every=4)
  good = inline_batches(SENTENCES, MCFG, tcfg)

  def poisoned(start):
    for step, batch in enumerate(good(start), start + 1):
      if step == 7:  # a target outside the 64 classes: lm_nll is NaN under jit
        batch = batch._replace(targets=np.where(batch.mask, 64, batch.targets).astype(np.int32))
      yield batch

  out = str(tmp_path / "run")
  with pytest.raises(training.NonFiniteLossError) as e:
    tr.train(MCFG, tcfg, poisoned, out_dir=out, progress=False)
  print(e.value)
  assert str(e.value).startswith("loss became nan at step 7;") and "last good checkpoint is step 4" in str(e.value)
  assert "\n" not in str(e.value)
  assert checkpoint.steps(out) == [4]
  params, _ = runs.load_params(out)
  assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves(params))


def test_data_parallel_flag_and_device_count_are_recorded_and_a_change_warned(tmp_path, capsys):
  from jaxequiv.lm import parallel
  tcfg = _tcfg(checkpoint_every=4)
  out = str(tmp_path / "run")
  tr.train(MCFG, tcfg, inline_batches(SENTENCES, MCFG, tcfg), out_dir=out, progress=False,
           mesh=parallel.make_mesh(), max_steps_this_run=4)
  rec = runs.recorded_config(out)["parallel"]
  assert rec == {"data_parallel": True, "device_count": jax.device_count()}
  capsys.readouterr()
  res = _run(out, tcfg)
  err = capsys.readouterr().err
  print(err)
  assert res.completed
  assert "it was trained with data_parallel=True" in err and "not be bitwise equal" in err
  assert runs.recorded_config(out)["parallel"]["data_parallel"] is False


def test_cli_train_kill_and_resume(tmp_path, capsys):
  from jaxequiv import cli
  text = tmp_path / "corpus.txt"
  text.write_text(" ".join(SENTENCES * 2) + " " + " ".join(VAL))
  out = str(tmp_path / "run")
  argv = ["--data", str(text), "--val-fraction", "0.2", "--seq-len", str(SEQ), "--layers", "1", "--width", "32",
          "--heads", "2", "--steps", str(STEPS), "--batch-size", "4", "--lr", "1e-2", "--warmup", "2",
          "--log-every", "2", "--eval-every", "8", "--checkpoint-every", "4", "--num-samples", "0",
          "--no-progress", "--out", out]
  assert cli.main(["train", *argv] + ["--max-steps-this-run", "6"]) == 0
  assert "stopped at step 6" in capsys.readouterr().out
  assert cli.main(["train", *argv]) == 2  # refuses to overwrite without --resume
  capsys.readouterr()
  good = rundir.read_config(out)
  rundir.write_config(out, {**good, "train": {**good["train"], "seed": 5}})  # an edited config.json
  assert cli.main(["train", "--out", out, "--resume", "--no-progress", "--num-samples", "0"]) == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert "train.seed: recorded 0, now 5" in err[-1] and "Traceback" not in "".join(err)
  rundir.write_config(out, good)
  assert cli.main(["train", "--out", out, "--resume", "--no-progress", "--num-samples", "0"]) == 0
  printed = capsys.readouterr().out
  print(printed)
  assert f"step {STEPS}" in printed and "nats/char" in printed and "bits/char" in printed
  with open(os.path.join(out, rundir.CONFIG_FILE)) as f:
    saved = json.load(f)
  assert saved["data"]["spec"] == str(text) and saved["model"]["width"] == 32
  params, cfg = runs.load_params(out)
  assert cfg.width == 32 and jax.tree.leaves(params)[0].dtype == jnp.float32


def test_resume_iid_with_data_iterators_is_bitwise_equal(tmp_path):
  """jaxequiv.lm.data's iid stream is stateful; resuming fast-forwards it to the same examples."""
  tcfg = _tcfg(objective="classification", mode="iid", checkpoint_every=5)
  batches = tr.sentence_batches(SENTENCES, MCFG, tcfg)
  straight = tr.train(MCFG, tcfg, batches, progress=False)
  out = str(tmp_path / "iid")
  tr.train(MCFG, tcfg, batches, out_dir=out, progress=False, max_steps_this_run=7)
  assert runs.latest_step(out) == 5
  resumed = tr.train(MCFG, tcfg, batches, out_dir=out, progress=False)
  assert_bitwise_equal(straight.state, resumed.state)
  assert resumed.predictions_seen == straight.predictions_seen


def test_sentence_batches_start_at_the_step_in_o1(monkeypatch):
  """The stream starts at ``start_step`` through the iterators' argument; no k batches rebuilt and dropped."""
  from jaxequiv.lm import data
  calls = []

  def fast(sentences, batch_size, seq_len, *, seed=0, epochs=None, start_step=0, rows=None):
    calls.append(start_step)
    return iter([f"batch {start_step}"])

  monkeypatch.setattr(data, "lm_batches", fast)
  assert next(tr.sentence_batches(SENTENCES, MCFG, _tcfg())(10**6)) == "batch 1000000" and calls == [10**6]


@pytest.mark.parametrize("kw", [{}, {"objective": "classification"}, {"objective": "classification", "mode": "iid"}])
def test_resumed_stream_equals_the_skipped_one_with_the_real_iterators(kw):
  import itertools
  batches = tr.sentence_batches(SENTENCES, MCFG, _tcfg(**kw))
  skipped = list(itertools.islice(batches(0), 9))[6:]
  started = list(itertools.islice(batches(6), 3))
  assert len(started) == 3
  for a, b in zip(skipped, started):
    for x, y in zip(a, b):
      np.testing.assert_array_equal(x, y)
  assert next(batches(10**6)) is not None  # step one million, without building the batches before it
