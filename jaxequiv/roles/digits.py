"""sklearn's bundled 8x8 digits in the forms the roles experiments use (offline).

* ``binary_4x4``: 2x2 average-pooled and thresholded, 16 bits per image, so all 2^16 images can be enumerated.
* ``continuous_8x8``: pixel values scaled to [-1, 1].
* ``as_strings``: binary images spelled as 16 characters ``0``/``1`` followed by the label digit and ``'.'``.
"""

from __future__ import annotations

import functools

import numpy as np


@functools.lru_cache(maxsize=None)
def _load() -> tuple[np.ndarray, np.ndarray]:
  from sklearn.datasets import load_digits  # pylint: disable=import-outside-toplevel
  d = load_digits()
  return d.images.astype(np.float32), d.target.astype(np.int32)


def images_0_16() -> tuple[np.ndarray, np.ndarray]:
  """The raw images ``[N, 8, 8]`` (grey levels 0..16, float32) and labels ``[N]``."""
  return _load()


def split(n: int, test_fraction: float = 0.2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
  """A fixed random train/test split of ``range(n)``: (train indices, test indices)."""
  if not 0 < test_fraction < 1:
    raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
  perm = np.random.default_rng(seed).permutation(n)
  k = int(round(n * test_fraction))
  return np.sort(perm[k:]), np.sort(perm[:k])


def binary_4x4(threshold: float = 6.0) -> tuple[np.ndarray, np.ndarray]:
  """Images ``[N, 16]`` in {0, 1} (float32) and labels ``[N]``: 2x2 mean pool of the 0..16 pixels, then ``> threshold``."""
  images, labels = _load()
  pooled = images.reshape(-1, 4, 2, 4, 2).mean(axis=(2, 4))
  return (pooled > threshold).astype(np.float32).reshape(-1, 16), labels


def continuous_8x8() -> tuple[np.ndarray, np.ndarray]:
  """Images ``[N, 64]`` in [-1, 1] (float32) and labels ``[N]``."""
  images, labels = _load()
  return (images.reshape(-1, 64) / 8.0 - 1.0).astype(np.float32), labels


def as_strings(bits_NxD: np.ndarray, labels_N: np.ndarray) -> list[str]:
  """``"0110...1" + str(label) + "."`` for each image: the sentence the char LM models."""
  bits_NxD = np.asarray(bits_NxD)
  if bits_NxD.ndim != 2 or not np.isin(bits_NxD, (0, 1)).all():
    raise ValueError(f"bits must be a [N, D] array of 0/1, got shape {bits_NxD.shape}")
  return ["".join("01"[int(b)] for b in row) + str(int(y)) + "." for row, y in zip(bits_NxD, labels_N)]


def all_binary_states(num_bits: int = 16) -> np.ndarray:
  """Every binary vector of length ``num_bits``, ``[2^num_bits, num_bits]`` float32, bit 0 most significant."""
  if not 1 <= num_bits <= 24:
    raise ValueError(f"num_bits must be in [1, 24], got {num_bits}")
  codes = np.arange(2**num_bits, dtype=np.int64)
  return ((codes[:, None] >> np.arange(num_bits - 1, -1, -1)) & 1).astype(np.float32)


def bits_to_index(bits_NxD: np.ndarray) -> np.ndarray:
  """Row index of each binary vector in ``all_binary_states``."""
  bits_NxD = np.asarray(bits_NxD).astype(np.int64)
  return (bits_NxD << np.arange(bits_NxD.shape[1] - 1, -1, -1)).sum(axis=1)
