"""The ``tfds`` extra installs what tensorflow-datasets imports but does not declare (``importlib_resources``)."""

import pytest


def test_a_tfds_builder_finds_its_code_path(tmp_path):
  """``tiny_shakespeare``'s builder: ``code_path`` imports importlib_resources (a 78-line traceback without it)."""
  tfds = pytest.importorskip("tensorflow_datasets")
  path = tfds.builder("tiny_shakespeare", data_dir=str(tmp_path)).code_path
  assert str(path).endswith(".py") and "tiny_shakespeare" in str(path)
