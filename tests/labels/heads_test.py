"""Tests for jaxequiv.labels.heads and jaxequiv.labels.experiment (tiny models, CPU)."""

import dataclasses
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxequiv
from jaxequiv import alphabet, labels
from jaxequiv.labels import experiment as cli_labels
from jaxequiv.labels import heads as im
from jaxequiv.labels import images
from jaxequiv.bitwise import assert_bitwise_equal
from jaxequiv.model import ModelConfig

CFG = im.ImageModelConfig(channels=(8, 16), embed_dim=32,
                          decoder=ModelConfig(num_layers=1, width=32, num_heads=2, seq_len=16))
NAMES = images.SHAPE_CLASSES


@pytest.fixture(scope="module")
def data():
  return images.make_shapes(96, seed=0)


@pytest.fixture(scope="module")
def string_params():
  return im.init_string(jax.random.key(0), CFG, (16, 16, 3))


def test_output_shapes(data, string_params):
  x = data.images[:5]
  p1 = im.init_onehot(jax.random.key(1), CFG, 12, x.shape[1:])
  tokens = jnp.full((5, 9), alphabet.BOS, jnp.int32)

  @jax.jit
  def outputs(p1, p2):
    return (im.onehot_logits(p1, x, CFG), im.image_embeddings(p2, x, CFG),
            im.make_string_apply(CFG, x)(p2, tokens))

  onehot, emb, logits = outputs(p1, string_params)
  assert onehot.shape == (5, 12) and emb.shape == (5, 32)
  assert logits.shape == (5, 9, 64) and logits.dtype == jnp.float32
  with pytest.raises(ValueError, match="4 token rows for 5 images"):
    jax.eval_shape(im.make_string_apply(CFG, x), string_params, tokens[:4])
  with pytest.raises(ValueError, match="more than decoder seq_len=16"):
    jax.eval_shape(lambda e, t: im.decode_logits(string_params, e, t, CFG), jnp.zeros((1, 32)),
                   jnp.zeros((1, 17), jnp.int32))


def test_gathered_rows_equal_lm_batch_of_label_strings(data):
  rows = im.label_rows(NAMES, 16)
  got = im.gather_rows(rows, data.labels[:20])
  want = jaxequiv.lm_batch([NAMES[y] for y in data.labels[:20]], 16)
  for a, b in zip(got, want):
    np.testing.assert_array_equal(a, b)


def test_string_loss_is_lm_nll(data, string_params, monkeypatch):
  x, y = data.images[:8], data.labels[:8]
  batch = jaxequiv.lm_batch([NAMES[i] for i in y], 16)
  want = jaxequiv.lm_nll(string_params, batch, im.make_string_apply(CFG, x))
  calls = []
  real = jaxequiv.losses.lm_nll

  def spy(params, b, apply_fn):
    calls.append(b)
    return real(params, b, apply_fn)

  monkeypatch.setattr(jaxequiv.losses, "lm_nll", spy)
  got = im.string_loss(string_params, x, batch, CFG)
  assert len(calls) == 1 and calls[0] is batch  # it literally calls the core loss
  assert_bitwise_equal(got, want)
  # Per-image NLL sums the same per-token losses; their mean over characters is the loss.
  per_image = im.string_nll_per_image(string_params, x, batch, CFG)
  err = abs(float(per_image.sum() / batch.mask.sum()) - float(want))
  print("per-image vs lm_nll abs error", err)
  assert err < 1e-5


def test_string_decoder_is_causal_through_gradients(data, string_params):
  emb = im.image_embeddings(string_params, data.images[:2], CFG)
  tokens = jaxequiv.lm_batch(["red circle.", "blue cross."], 16).inputs
  onehot = jax.nn.one_hot(tokens, alphabet.INPUT_VOCAB)

  @jax.jit
  def both(oh):
    return (im.decode_logits(string_params, emb, oh, CFG),
            im.decode_logits(string_params, emb, jnp.asarray(tokens), CFG))

  np.testing.assert_allclose(*both(onehot), atol=1e-5)

  def out_T(oh):  # one scalar per position t
    return jnp.sum(im.decode_logits(string_params, emb, oh, CFG) ** 2, axis=(0, 2))

  jac_TxRxTxV = jax.jit(jax.jacrev(out_T))(onehot)  # d out[t] / d token one-hot at (r, s)
  g_TxT = np.asarray(jnp.abs(jac_TxRxTxV).sum(axis=(1, 3)))
  for t in range(16):
    assert np.all(g_TxT[t, t + 1:] == 0.0), (t, g_TxT[t])  # exactly zero after t
    assert np.all(g_TxT[t, :t + 1] > 0.0), (t, g_TxT[t])   # and it does use tokens 0..t


def test_string_head_depends_on_the_image(data, string_params):
  tokens = jnp.asarray(jaxequiv.lm_batch(["red circle."] * 2, 16).inputs)
  logits = jax.jit(im.make_string_apply(CFG, data.images[:2]))(string_params, tokens)
  assert float(jnp.abs(logits[0] - logits[1]).max()) > 1e-4


def test_a_few_training_steps_reduce_both_losses(data):
  res = im.train_heads(data.images, data.labels, NAMES, CFG, steps=25, batch_size=32, learning_rate=3e-3)
  print("one-hot", res.onehot_curve[[0, -1]], "string", res.string_curve[[0, -1]])
  assert res.onehot_curve[-5:].mean() < res.onehot_curve[:5].mean() - 0.1
  assert res.string_curve[-5:].mean() < 0.5 * res.string_curve[:5].mean()
  assert res.onehot_params["head"]["kernel"].shape[-1] == len(np.unique(data.labels))


def test_training_is_deterministic(data):
  a = im.train_heads(data.images, data.labels, NAMES, CFG, steps=3, batch_size=8, heads=("string",))
  b = im.train_heads(data.images, data.labels, NAMES, CFG, steps=3, batch_size=8, heads=("string",))
  assert_bitwise_equal(a.string_params, b.string_params)


def test_onehot_head_covers_only_training_classes():
  train = images.load_images("shapes", "train", num_examples=64, holdout=True)
  res = im.train_heads(train.images, train.labels, NAMES, CFG, steps=1, batch_size=8, heads=("onehot",))
  assert len(res.onehot_classes) == 12
  assert not np.isin(images.heldout_ids(), res.onehot_classes).any()


def test_ece_hand_made_example():
  conf = np.array([0.9, 0.9, 0.9, 0.9, 0.2, 0.2])
  correct = np.array([1, 1, 1, 0, 0, 0])
  # Bin (0.8667, 0.9333]: acc 0.75, conf 0.9 -> 0.15; bin (0.1333, 0.2]: acc 0, conf 0.2 -> 0.2.
  got = im.expected_calibration_error(conf, correct, num_bins=15)
  print("ECE", got, "expected", 4 / 6 * 0.15 + 2 / 6 * 0.2)
  assert abs(got - (4 / 6 * 0.15 + 2 / 6 * 0.2)) < 1e-12
  assert im.expected_calibration_error(np.full(10, 1.0), np.ones(10)) == 0.0
  assert abs(im.expected_calibration_error(np.full(4, 0.5), np.array([1, 0, 1, 0]))) < 1e-12
  with pytest.raises(ValueError, match="same length"):
    im.expected_calibration_error(np.ones(3), np.ones(2))


def test_constrained_decoding_yields_valid_labels(data, string_params):
  trie = labels.label_trie(NAMES)
  s = cli_labels.string_scores(string_params, data.images[:10], trie, CFG, beam_size=3)
  wide = cli_labels.string_scores(string_params, data.images[:10], trie, CFG, beam_size=trie.num_classes)
  for key in ("greedy", "beam"):
    assert s[key].shape == (10,), (key, s[key].shape)
  # A beam as wide as K is exact: it finds the argmax of the constrained distribution computed by teacher forcing.
  np.testing.assert_array_equal(wide["beam"], np.argmax(s["logp_constrained"], -1))
  # The constrained distribution is proper: it sums to 1 over the K labels.
  np.testing.assert_allclose(np.exp(s["logp_constrained"]).sum(-1), 1.0, atol=1e-5)
  # Leakage is in [0, 1]; an untrained model spells mostly non-labels.
  leak = np.asarray(labels.leakage(s["logp"]))
  assert np.all((0 <= leak) & (leak <= 1)) and leak.mean() > 0.5
  free = im.greedy_unconstrained(string_params, data.images[:4], CFG, chunk=3)  # two chunks, one padded
  assert free == _greedy_by_hand(string_params, data.images[:4])


def _greedy_by_hand(params, images):
  """Reference: argmax of the full-recompute decoder logits, one position at a time, in numpy."""
  emb = im.image_embeddings(params, jnp.asarray(images), CFG)
  t_max = CFG.decoder.seq_len
  tokens = np.full((len(images), t_max), alphabet.PAD, np.int32)
  tokens[:, 0] = alphabet.BOS
  out = [[] for _ in images]
  done = np.zeros(len(images), bool)
  for t in range(t_max):
    nxt = np.asarray(jnp.argmax(im.decode_logits(params, emb, jnp.asarray(tokens), CFG)[:, t], -1))
    for i in np.flatnonzero(~done):
      out[i].append(int(nxt[i]))
    done |= nxt == alphabet.PERIOD
    if t + 1 < t_max:
      tokens[:, t + 1] = nxt
  return [alphabet.decode(np.array(o)) for o in out]


def test_cli_runs_end_to_end(tmp_path, capsys):
  from jaxequiv import cli  # pylint: disable=import-outside-toplevel
  # Same model config, batch size and beam size as the tests above, so their compiled functions are reused.
  rc = cli.main([
      "labels", "--data", "shapes", "--steps", "2", "--batch-size", "8", "--num-train", "32",
      "--num-test", "48", "--zero-shot", "--width", "32", "--heads", "2", "--channels", "8,16",
      "--beam-size", "3", "--out", str(tmp_path)])
  out = capsys.readouterr().out
  assert rc == 0
  assert "| accuracy, trie-constrained beam (string) |" in out and "zero-shot metric" in out
  summary = json.loads((tmp_path / "metrics.json").read_text())
  zs = summary["zero_shot"]
  assert zs["onehot_accuracy"] == 0.0 and zs["onehot_can_output"] == 0.0  # no output for held-out labels
  assert 0.0 <= zs["p_true_mean"] <= 1.0 and 1.0 <= zs["rank_mean"] <= 16.0
  assert len(summary["string_curve"]) == 2 and set(summary["metrics"]) == {"onehot", "string"}


def test_token_dropout_only_touches_input_characters():
  batch = jaxequiv.lm_batch(list(NAMES), 16)
  same = im.drop_tokens(batch, 0.0, np.random.default_rng(0))
  assert same is batch
  dropped = im.drop_tokens(batch, 0.5, np.random.default_rng(0))
  np.testing.assert_array_equal(dropped.targets, batch.targets)
  np.testing.assert_array_equal(dropped.mask, batch.mask)
  np.testing.assert_array_equal(dropped.inputs[:, 0], alphabet.BOS)
  changed = dropped.inputs != batch.inputs
  assert np.all(dropped.inputs[changed] == alphabet.PAD) and 0.3 < changed[:, 1:][batch.mask[:, 1:]].mean() < 0.7
  with pytest.raises(ValueError, match="token dropout rate"):
    im.drop_tokens(batch, 1.0, np.random.default_rng(0))


def test_patch_vit_encoder_shapes_and_errors(data):
  cfg = im.ImageModelConfig(embed_dim=32, encoder="vit", patch=4, vit_layers=1,
                            decoder=ModelConfig(num_layers=1, width=32, num_heads=2, seq_len=16))
  params = im.init_string(jax.random.key(0), cfg, (16, 16, 3))
  assert params["encoder"]["pos_embed"].shape == (16, 32)  # (16 / 4)^2 patches
  emb = jax.jit(im.image_embeddings, static_argnums=2)(params, data.images[:3], cfg)
  assert emb.shape == (3, 32)
  with pytest.raises(ValueError, match="not divisible into 5x5 patches"):
    im.init_onehot(jax.random.key(0), dataclasses.replace(cfg, patch=5), 4, (16, 16, 3))
  with pytest.raises(ValueError, match="encoder must be 'cnn' or 'vit'"):
    im.ImageModelConfig(encoder="resnet")


def test_heads_train_through_the_shared_training_step_and_stop_on_nan(data, monkeypatch):
  from jaxequiv import training  # pylint: disable=import-outside-toplevel
  calls = []
  real = training.make_train_step

  def spy(loss_fn, optimizer):
    calls.append(loss_fn)
    return real(loss_fn, optimizer)

  monkeypatch.setattr(training, "make_train_step", spy)
  im._cached_step.cache_clear()  # pylint: disable=protected-access
  res = im.train_heads(data.images[:16], data.labels[:16], NAMES, CFG, steps=2, batch_size=8, heads=("onehot",))
  assert len(calls) == 1 and res.onehot_curve.shape == (2,)
  bad = data.images[:16].copy()
  bad[3] = np.nan
  with pytest.raises(training.NonFiniteLossError, match=r"^(loss|grad_norm) became nan at step 1; training stopped$"):
    im.train_heads(bad, data.labels[:16], NAMES, CFG, steps=2, batch_size=16, heads=("onehot",))


def test_save_and_load_heads_through_the_checkpoint_module(data, tmp_path):
  res = im.train_heads(data.images, data.labels, NAMES, CFG, steps=1, batch_size=8, heads=("string",))
  out = str(tmp_path / "labels")
  cli_labels.save_heads(out, res, CFG, data.images.shape[1:], NAMES, summary={"accuracy": 0.5})
  trained, cfg, names = cli_labels.load_heads(out)
  assert cfg == CFG and names == list(NAMES) and trained.onehot_params is None
  assert_bitwise_equal(trained.string_params, res.string_params)
  assert_bitwise_equal(trained.string_curve, res.string_curve)
  assert json.loads((tmp_path / "labels" / "metrics.json").read_text()) == {"accuracy": 0.5}
  from jaxequiv import checkpoint  # pylint: disable=import-outside-toplevel
  step_dir = os.path.join(checkpoint.checkpoint_dir(out), "1")
  os.remove(os.path.join(step_dir, checkpoint.MANIFEST_FILE))
  with pytest.raises(checkpoint.RunDirError, match="no good checkpoint in"):
    cli_labels.load_heads(out)
