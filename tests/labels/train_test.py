"""Tests for jaxequiv.labels.train: both heads learn, deterministically, through the shared training step."""

import jaxequiv
import numpy as np
import pytest

from jaxequiv import alphabet
from jaxequiv.labels import images, train
from jaxequiv.bitwise import assert_bitwise_equal
from tests.labels.tiny import CFG, NAMES


def test_a_few_training_steps_reduce_both_losses(data):
  res = train.train_heads(data.images, data.labels, NAMES, CFG, steps=25, batch_size=32, learning_rate=3e-3)
  print("one-hot", res.onehot_curve[[0, -1]], "string", res.string_curve[[0, -1]])
  assert res.onehot_curve[-5:].mean() < res.onehot_curve[:5].mean() - 0.1
  assert res.string_curve[-5:].mean() < 0.5 * res.string_curve[:5].mean()
  assert res.onehot_params["head"]["kernel"].shape[-1] == len(np.unique(data.labels))


def test_training_is_deterministic(data):
  a = train.train_heads(data.images, data.labels, NAMES, CFG, steps=3, batch_size=8, heads=("string",))
  b = train.train_heads(data.images, data.labels, NAMES, CFG, steps=3, batch_size=8, heads=("string",))
  assert_bitwise_equal(a.string_params, b.string_params)


def test_onehot_head_covers_only_training_classes():
  train_set = images.load_images("shapes", "train", num_examples=64, holdout=True)
  res = train.train_heads(train_set.images, train_set.labels, NAMES, CFG, steps=1, batch_size=8, heads=("onehot",))
  assert len(res.onehot_classes) == 12
  assert not np.isin(images.heldout_ids(), res.onehot_classes).any()


def test_token_dropout_only_touches_input_characters():
  batch = jaxequiv.lm_batch(list(NAMES), 16)
  same = train.drop_tokens(batch, 0.0, np.random.default_rng(0))
  assert same is batch
  dropped = train.drop_tokens(batch, 0.5, np.random.default_rng(0))
  np.testing.assert_array_equal(dropped.targets, batch.targets)
  np.testing.assert_array_equal(dropped.mask, batch.mask)
  np.testing.assert_array_equal(dropped.inputs[:, 0], alphabet.BOS)
  changed = dropped.inputs != batch.inputs
  assert np.all(dropped.inputs[changed] == alphabet.PAD) and 0.3 < changed[:, 1:][batch.mask[:, 1:]].mean() < 0.7
  with pytest.raises(ValueError, match="token dropout rate"):
    train.drop_tokens(batch, 1.0, np.random.default_rng(0))


def test_heads_train_through_the_shared_training_step_and_stop_on_nan(data, monkeypatch):
  from jaxequiv import training  # pylint: disable=import-outside-toplevel
  calls = []
  real = training.make_train_step

  def spy(loss_fn, optimizer):
    calls.append(loss_fn)
    return real(loss_fn, optimizer)

  monkeypatch.setattr(training, "make_train_step", spy)
  train._cached_step.cache_clear()  # pylint: disable=protected-access
  res = train.train_heads(data.images[:16], data.labels[:16], NAMES, CFG, steps=2, batch_size=8, heads=("onehot",))
  assert len(calls) == 1 and res.onehot_curve.shape == (2,)
  bad = data.images[:16].copy()
  bad[3] = np.nan
  with pytest.raises(training.NonFiniteLossError, match=r"^(loss|grad_norm) became nan at step 1; training stopped$"):
    train.train_heads(bad, data.labels[:16], NAMES, CFG, steps=2, batch_size=16, heads=("onehot",))
