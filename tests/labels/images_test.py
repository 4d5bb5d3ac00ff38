"""Tests for jaxequiv.labels.images: shapes determinism, label validity, digits, class names (TFDS: tfds_images_test.py, tfds_test.py)."""

import numpy as np
import pytest

from jaxequiv import labels
from jaxequiv.labels import images
from jaxequiv.bitwise import assert_bitwise_equal, bits


def test_shapes_same_seed_same_bits():
  a = images.load_images("shapes", "train", num_examples=200, seed=3)
  b = images.load_images("shapes", "train", num_examples=200, seed=3)
  assert_bitwise_equal(a.images, b.images)
  np.testing.assert_array_equal(a.labels, b.labels)
  assert a.images.dtype == np.float32 and a.images.shape == (200, 16, 16, 3)


def test_shapes_seed_and_split_change_the_bits():
  a = images.load_images("shapes", "train", num_examples=64, seed=0)
  b = images.load_images("shapes", "train", num_examples=64, seed=1)
  c = images.load_images("shapes", "test", num_examples=64, seed=0)
  assert np.any(bits(a.images) != bits(b.images))
  assert np.any(bits(a.images) != bits(c.images))


def test_shapes_nuisance_variation_and_range():
  ds = images.make_shapes(512, seed=0, size=24)
  assert ds.images.shape == (512, 24, 24, 3)
  assert 0.0 <= ds.images.min() and ds.images.max() <= 1.0
  # Two images of the same class differ (position, size, noise).
  same = np.flatnonzero(ds.labels == ds.labels[0])
  assert len(same) > 1 and np.abs(ds.images[same[0]] - ds.images[same[1]]).max() > 0.3
  # All 16 classes appear, roughly uniformly.
  counts = np.bincount(ds.labels, minlength=16)
  assert counts.min() > 10, counts


def test_shape_labels_are_valid_and_compositional():
  trie = labels.label_trie(images.SHAPE_CLASSES)  # raises on an invalid label
  assert trie.num_classes == 16
  assert all(s.count(" ") == 1 and s.endswith(".") for s in images.SHAPE_CLASSES)
  colours = {s.split()[0] for s in images.HELDOUT_SHAPES}
  shapes = {s.split()[1] for s in images.HELDOUT_SHAPES}
  assert len(colours) == len(shapes) == 4  # every colour and shape word still seen in training


def test_holdout_removes_combinations_from_train_only():
  held = images.heldout_ids()
  train = images.load_images("shapes", "train", num_examples=1000, holdout=True)
  test = images.load_images("shapes", "test", num_examples=1000, holdout=True)
  assert not np.isin(train.labels, held).any()
  assert np.isin(test.labels, held).sum() > 100
  assert train.class_names == images.SHAPE_CLASSES  # labels index the full list
  with pytest.raises(ValueError, match="only defined for 'shapes'"):
    images.load_images("digits", "train", holdout=True)


def test_bad_specs_raise_clear_errors():
  with pytest.raises(ValueError, match="unknown image data spec 'mnist'"):
    images.load_images("mnist")
  with pytest.raises(ValueError, match="split must be one of"):
    images.load_images("shapes", "validation")
  with pytest.raises(ValueError, match="tfds:svhn is not supported"):
    images.load_images("tfds:svhn")
  with pytest.raises(ValueError, match="size must be >= 8"):
    images.make_shapes(4, size=4)


def test_digits_loader():
  pytest.importorskip("sklearn")
  train = images.load_images("digits", "train")
  test = images.load_images("digits", "test")
  assert train.images.shape[1:] == (8, 8, 1) and train.images.dtype == np.float32
  assert len(train.labels) + len(test.labels) == 1797
  assert test.class_names[7] == "seven." and len(test.class_names) == 10
  assert 0.0 <= train.images.min() and train.images.max() <= 1.0
  labels.label_trie(test.class_names)
  assert set(np.unique(test.labels)) == set(range(10))
  again = images.load_images("digits", "test")
  assert_bitwise_equal(test.images, again.images)


def test_class_names_replace_and_normalise_the_data_sets_own():
  words = [f"n0{i:07d} thing_{chr(97 + i)}, synonym" for i in range(16)]
  ds = images.load_images("shapes", "test", num_examples=8, class_names=words)
  assert ds.class_names[:2] == ["thing a.", "thing b."] and len(ds.class_names) == 16
  plain = images.load_images("shapes", "test", num_examples=8)
  np.testing.assert_array_equal(ds.labels, plain.labels)
  assert_bitwise_equal(ds.images, plain.images)
  with pytest.raises(ValueError, match="got 3 class names for 16 classes"):
    images.load_images("shapes", "test", num_examples=8, class_names=["a", "b", "c"])
  with pytest.raises(ValueError, match="both normalise to 'x.'"):
    images.load_images("shapes", "test", num_examples=8, class_names=["x"] * 16)
  with pytest.raises(TypeError, match="not one str"):
    images.load_images("shapes", "test", num_examples=8, class_names="abc")
