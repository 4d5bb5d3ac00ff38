"""Tests for jaxequiv.labels.calibration."""

import numpy as np
import pytest

from jaxequiv.labels import calibration


def test_ece_hand_made_example():
  conf = np.array([0.9, 0.9, 0.9, 0.9, 0.2, 0.2])
  correct = np.array([1, 1, 1, 0, 0, 0])
  # Bin (0.8667, 0.9333]: acc 0.75, conf 0.9 -> 0.15; bin (0.1333, 0.2]: acc 0, conf 0.2 -> 0.2.
  got = calibration.expected_calibration_error(conf, correct, num_bins=15)
  print("ECE", got, "expected", 4 / 6 * 0.15 + 2 / 6 * 0.2)
  assert abs(got - (4 / 6 * 0.15 + 2 / 6 * 0.2)) < 1e-12
  assert calibration.expected_calibration_error(np.full(10, 1.0), np.ones(10)) == 0.0
  assert abs(calibration.expected_calibration_error(np.full(4, 0.5), np.array([1, 0, 1, 0]))) < 1e-12
  with pytest.raises(ValueError, match="same length"):
    calibration.expected_calibration_error(np.ones(3), np.ones(2))
