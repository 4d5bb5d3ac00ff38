"""Calibration of a classifier's confidences: the expected calibration error (ECE)."""

from __future__ import annotations

import numpy as np


def expected_calibration_error(confidences_N: np.ndarray, correct_N: np.ndarray, num_bins: int = 15) -> float:
  r"""ECE with ``num_bins`` equal-width confidence bins ``(b/B, (b+1)/B]``.

  .. math:: \mathrm{ECE} = \sum_b \frac{|B_b|}{N}\,\bigl|\mathrm{acc}(B_b) - \mathrm{conf}(B_b)\bigr|

  Args:
    confidences_N: the predicted class's probability per example, in [0, 1].
    correct_N: whether the prediction was right.
    num_bins: B (15 is the usual choice).

  >>> expected_calibration_error(np.array([.9, .9, .9, .9, .2, .2]), np.array([1, 1, 1, 0, 0, 0]))  # 4/6*.15+2/6*.2
  0.16666...
  """
  conf = np.asarray(confidences_N, np.float64).reshape(-1)
  correct = np.asarray(correct_N, np.float64).reshape(-1)
  if conf.shape != correct.shape:
    raise ValueError(f"confidences {conf.shape} and correct {correct.shape} must have the same length")
  if conf.size == 0:
    return 0.0
  if np.any((conf < 0) | (conf > 1)):
    raise ValueError(f"confidences must lie in [0, 1]; got min {conf.min()}, max {conf.max()}")
  bins = np.clip(np.ceil(conf * num_bins).astype(np.int64) - 1, 0, num_bins - 1)
  ece = 0.0
  for b in range(num_bins):
    sel = bins == b
    if sel.any():
      ece += sel.mean() * abs(correct[sel].mean() - conf[sel].mean())
  return float(ece)
