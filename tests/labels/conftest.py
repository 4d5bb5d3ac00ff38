"""Fixtures of the labels tests: a small shapes data set and the tiny string head's initial parameters."""

import jax
import pytest

from jaxequiv.labels import heads as im
from jaxequiv.labels import images
from tests.labels.tiny import CFG


@pytest.fixture(scope="session")
def data():
  return images.make_shapes(96, seed=0)


@pytest.fixture(scope="session")
def string_params():
  return im.init_string(jax.random.key(0), CFG, (16, 16, 3))
