"""The reductio grid's objective axis: LM-trained and classifier-trained trajectories are bitwise equal."""

import jax
import numpy as np
import pytest

from jaxequiv import bitwise, model
from jaxequiv.roles import reductio

SENTENCES = ["Hello there.", "a.", "ab cd.", "ab ce.", "The cat sat on.", "Zz 9.", "Ok then.", "No."]


def test_batches_hold_the_same_rows():
  lm = reductio.make_batches(SENTENCES, "lm", 16, 4, 3, seed=0)
  clf = reductio.make_batches(SENTENCES, "classifier", 16, 4, 3, seed=0)
  np.testing.assert_array_equal(lm.inputs, clf.tokens)
  with pytest.raises(ValueError, match="objective"):
    reductio.make_batches(SENTENCES, "gan", 16, 4, 3, seed=0)


@pytest.mark.slow
@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_trajectories_bitwise_equal_and_activations_differ(activation):
  cfg = model.ModelConfig(num_layers=1, width=16, num_heads=2, seq_len=16, activation=activation)
  lm = reductio.train_cell(SENTENCES, cfg, "lm", [0, 1], steps=10, batch_size=4)
  clf = reductio.train_cell(SENTENCES, cfg, "classifier", [0, 1], steps=10, batch_size=4)
  report = bitwise.compare_bits(lm, clf)
  print(f"{activation}: {report.mismatched_elements} of {report.elements} final-parameter elements differ")
  assert report.equal and report.elements > 0
  other = "tanh" if activation == "relu" else "relu"
  cfg2 = model.ModelConfig(num_layers=1, width=16, num_heads=2, seq_len=16, activation=other)
  assert not bitwise.compare_bits(lm, reductio.train_cell(SENTENCES, cfg2, "lm", [0, 1], 10, 4)).equal


def test_objectives_are_checked_before_training():
  for bad in ((), ("lm", "gan")):
    with pytest.raises(ValueError, match="objectives") as e:
      reductio.run_grid("digits", [0], 1, objectives=bad)
    assert "\n" not in str(e.value)
