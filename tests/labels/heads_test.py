"""Tests for jaxequiv.labels.heads: shapes, the string loss is the core LM loss, causality, encoders."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxequiv
from jaxequiv import alphabet
from jaxequiv.labels import heads as im
from jaxequiv.bitwise import assert_bitwise_equal
from jaxequiv.model import ModelConfig
from tests.labels.tiny import CFG, NAMES


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
