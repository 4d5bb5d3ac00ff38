"""A compositional image set with a long tail: size x texture x colour x shape, drawn with numpy.

Every class is a label sentence of four words, ``"<size> <texture> <colour> <shape>."``
(``"small striped red circle."``), so the K = 2 x 3 x 6 x 4 = 144 names share words
and characters. Training counts follow a Zipf law over a seeded ranking of the
*seen* classes,

.. math:: n_r = \\max(n_{\\min}, \\mathrm{round}(n_{\\max} \\, r^{-a})), \\quad r = 1, 2, \\ldots

and ``num_heldout`` classes never occur in training, chosen so that every word of
every factor still occurs in a seen class (their names are composed of seen
words). The test split holds ``test_per_class`` images of every class, held-out
ones included. Drawing reuses the shapes of ``jaxequiv.labels.images``: a grey
noisy background and one shape, its size from the size word (radius fraction
``SIZES``) and its fill from the texture word (plain, horizontal stripes, or a
checkerboard, the off cells at ``DARK`` times the colour).

Examples:
  >>> len(CLASS_NAMES), CLASS_NAMES[0], CLASS_NAMES[-1]
  (144, 'small plain red circle.', 'large checked white cross.')
  >>> zipf_counts(5, max_count=100, exponent=1.0).tolist()
  [100, 50, 33, 25, 20]
  >>> ds = make_compositional(max_count=4, num_heldout=8, test_per_class=1, image_size=16, seed=0)
  >>> ds.train.images.shape[1:], len(ds.test.labels), len(ds.heldout)
  ((16, 16, 3), 144, 8)
"""

from __future__ import annotations

import itertools
from typing import NamedTuple

import numpy as np

from jaxequiv.labels import images as images_lib

SIZES = {"small": (0.16, 0.22), "large": (0.30, 0.38)}  # radius as a fraction of the image side
TEXTURES = ("plain", "striped", "checked")
COLOURS = {**images_lib.COLOURS, "purple": (0.6, 0.2, 0.9), "white": (0.95, 0.95, 0.95)}
SHAPES = images_lib.SHAPES
FACTORS = (tuple(SIZES), TEXTURES, tuple(COLOURS), SHAPES)
CLASS_NAMES = [" ".join(words) + "." for words in itertools.product(*FACTORS)]
DARK = 0.3  # the off cells of a texture: this fraction of the colour
_STREAM = {"classes": 11, "train": 12, "test": 13}


class CompositionalData(NamedTuple):
  train: images_lib.ImageDataset  # Zipf-distributed labels; no held-out class.
  test: images_lib.ImageDataset   # test_per_class images of every class.
  counts: np.ndarray              # [K] training images per class (0: held out).
  heldout: np.ndarray             # held-out class ids, sorted.


def factor_ids(labels_N: np.ndarray) -> np.ndarray:
  """``[N, 4]`` word index of each factor (size, texture, colour, shape) of class ids ``[N]``.

  >>> factor_ids(np.array([0, 143])).tolist()
  [[0, 0, 0, 0], [1, 2, 5, 3]]
  """
  return np.stack(np.unravel_index(np.asarray(labels_N), tuple(len(f) for f in FACTORS)), axis=-1)


def zipf_counts(num_classes: int, *, max_count: int, exponent: float = 1.0, min_count: int = 1) -> np.ndarray:
  """Training counts ``[num_classes]`` by frequency rank: ``max(min_count, round(max_count * r**-exponent))``."""
  if num_classes < 1 or max_count < 1 or min_count < 1 or exponent < 0:
    raise ValueError(f"zipf_counts needs num_classes, max_count, min_count >= 1 and exponent >= 0, got"
                     f" {num_classes}, {max_count}, {min_count}, {exponent}")
  r = np.arange(1, num_classes + 1, dtype=np.float64)
  return np.maximum(min_count, np.round(max_count * r ** -exponent)).astype(np.int64)


def split_classes(num_heldout: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
  """``(seen_by_rank, heldout)``: seen class ids in frequency-rank order, and the sorted held-out ids.

  A seeded permutation of the K classes; the held-out ones are its first ``num_heldout`` that keep
  every word of every factor in some seen class (a word whose last seen class would go is skipped).
  """
  k = len(CLASS_NAMES)
  if not 0 <= num_heldout <= k // 2:
    raise ValueError(f"num_heldout must be in [0, {k // 2}], got {num_heldout}")
  order = np.random.default_rng(np.random.SeedSequence([seed, _STREAM["classes"]])).permutation(k)
  words = factor_ids(np.arange(k))
  left = [np.bincount(words[:, f], minlength=len(FACTORS[f])) for f in range(len(FACTORS))]
  heldout = []
  for c in order:
    if len(heldout) == num_heldout:
      break
    if all(left[f][words[c, f]] > 1 for f in range(len(FACTORS))):
      heldout.append(int(c))
      for f in range(len(FACTORS)):
        left[f][words[c, f]] -= 1
  seen = np.asarray([c for c in order if c not in heldout], np.int32)
  return seen, np.sort(np.asarray(heldout, np.int32))


def draw(labels_N: np.ndarray, rng: np.random.Generator, *, size: int = 20, noise: float = 0.1) -> np.ndarray:
  """Images ``[N, size, size, 3]`` float32 in [0, 1] of classes ``labels_N``, every bit from ``rng``."""
  if size < 12:
    raise ValueError(f"compositional: image_size must be >= 12 pixels, got {size}")
  n = len(labels_N)
  size_w, texture_w, colour_w, shape_w = factor_ids(labels_N).T
  bounds = np.asarray(list(SIZES.values()), np.float32)[size_w]
  r = rng.uniform(bounds[:, 0], bounds[:, 1]).astype(np.float32) * size
  cy = rng.uniform(r + 0.5, size - r - 0.5).astype(np.float32)
  cx = rng.uniform(r + 0.5, size - r - 0.5).astype(np.float32)
  rgb = np.asarray(list(COLOURS.values()), np.float32)[colour_w]
  rgb = np.clip(rgb + rng.uniform(-0.08, 0.08, (n, 3)).astype(np.float32), 0.0, 1.0)
  phase = rng.integers(0, 4, (n, 2))
  yy, xx = np.mgrid[0:size, 0:size]
  band_y = ((yy[None] + phase[:, :1, None]) // 2) % 2
  band_x = ((xx[None] + phase[:, 1:, None]) // 2) % 2
  on = np.stack([np.ones_like(band_y, bool), band_y == 0, band_y == band_x])[texture_w, np.arange(n)]
  fill = np.where(on[..., None], rgb[:, None, None, :], DARK * rgb[:, None, None, :])
  background = rng.uniform(0.05, 0.45, (n, 1, 1, 1)).astype(np.float32)
  # The shapes' one drawing code, reused rather than copied.
  masks = images_lib._shape_masks(shape_w, cy, cx, r, size)  # pylint: disable=protected-access
  out = np.where(masks[..., None], fill, background)
  out = out + noise * rng.standard_normal(out.shape).astype(np.float32)
  return np.clip(out, 0.0, 1.0).astype(np.float32)


def make_compositional(*, max_count: int = 200, exponent: float = 1.0, min_count: int = 1, num_heldout: int = 16,
                       test_per_class: int = 10, image_size: int = 20, noise: float = 0.1,
                       seed: int = 0) -> CompositionalData:
  """The long-tailed training split and the balanced test split; the same ``seed`` gives the same bits.

  Args:
    max_count: training images of the most frequent class (rank 1).
    exponent: the Zipf exponent a (0: every seen class gets ``max_count``).
    min_count: the fewest training images a seen class gets.
    num_heldout: classes that never occur in training (see ``split_classes``).
    test_per_class: test images of every class.
    image_size: the images' side in pixels (>= 12).
    noise: std of the Gaussian pixel noise.
    seed: seeds the class ranking, the held-out choice and every pixel.

  Returns:
    ``CompositionalData(train, test, counts_K, heldout)``; both splits use ``CLASS_NAMES``.
  """
  if test_per_class < 1:
    raise ValueError(f"test_per_class must be >= 1, got {test_per_class}")
  seen, heldout = split_classes(num_heldout, seed)
  counts = np.zeros(len(CLASS_NAMES), np.int64)
  counts[seen] = zipf_counts(len(seen), max_count=max_count, exponent=exponent, min_count=min_count)
  out = []
  for split, per_class in (("train", counts), ("test", np.full(len(CLASS_NAMES), test_per_class))):
    rng = np.random.default_rng(np.random.SeedSequence([seed, _STREAM[split]]))
    labels = rng.permutation(np.repeat(np.arange(len(CLASS_NAMES), dtype=np.int32), per_class))
    out.append(images_lib.ImageDataset(draw(labels, rng, size=image_size, noise=noise), labels, list(CLASS_NAMES)))
  return CompositionalData(out[0], out[1], counts, heldout)


def class_groups(counts_K: np.ndarray, *, frequent_min: int, rare_max: int) -> dict[str, np.ndarray]:
  """Class ids by training count: ``frequent`` (>= frequent_min), ``rare`` (1..rare_max), ``heldout`` (0).

  >>> {k: v.tolist() for k, v in class_groups(np.array([50, 3, 0, 10]), frequent_min=20, rare_max=5).items()}
  {'frequent': [0], 'rare': [1], 'heldout': [2]}
  """
  if rare_max >= frequent_min:
    raise ValueError(f"rare_max ({rare_max}) must be below frequent_min ({frequent_min})")
  c = np.asarray(counts_K)
  return {"frequent": np.flatnonzero(c >= frequent_min), "rare": np.flatnonzero((c >= 1) & (c <= rare_max)),
          "heldout": np.flatnonzero(c == 0)}
