"""Tests for jaxequiv.labels.tfds_images without tensorflow-datasets: spec parsing and class names (loading: tfds_test.py)."""

import pytest

from jaxequiv.labels import tfds_images


@pytest.mark.parametrize("rest,name,train,test", [
    ("cifar10", "cifar10", "train", "test"),
    ("imagenette/160px-v2", "imagenette/160px-v2", "train", "validation"),
    ("cifar10:train[:1000]", "cifar10", "train[:1000]", "test"),
    ("cifar100:train[:80%],train[80%:]", "cifar100", "train[:80%]", "train[80%:]"),
    ("imagenet2012:[:1%]", "imagenet2012", "train[:1%]", "validation[:1%]"),
    ("cifar10:[:50],test[:20]", "cifar10", "train[:50]", "test[:20]"),
])
def test_tfds_specs_take_configs_and_split_slices(rest, name, train, test):
  assert tfds_images.parse_tfds_spec(rest) == (name, {"train": train, "test": test})


@pytest.mark.parametrize("rest", ["svhn", "cifar10/", "cifar10:a,b,c", "cifar10:train,"])
def test_bad_tfds_specs_are_named(rest):
  with pytest.raises(ValueError, match=r"not supported|split part"):
    tfds_images.parse_tfds_spec(rest)


def test_imagenette_parachute_is_its_wordnet_id():
  assert tfds_images.IMAGENETTE_NAMES["n03888257"] == "parachute" and "n03888605" not in tfds_images.IMAGENETTE_NAMES
