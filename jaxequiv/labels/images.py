"""Image data sets whose labels are sentences: ``load_images(spec, split)``.

Every loader returns an ``ImageDataset``: float32 images ``[N, H, W, C]`` in
roughly ``[0, 1]``, integer labels ``[N]`` and ``class_names``, one label
*sentence* per class (``"red circle."``, ``"seven."``, ``"maple tree."``) that a
string head spells character by character.

Specs:
  * ``"shapes"``: offline, numpy-drawn coloured shapes (16x16 RGB by default),
    4 colours x 4 shapes = 16 compositional labels, with nuisance position, size,
    colour jitter and background noise. Seeded and deterministic: the same
    ``(seed, split)`` gives the same bits. ``holdout=True`` removes the
    ``HELDOUT_SHAPES`` combinations from the *training* split (compositional
    zero-shot); test splits always hold every combination.
  * ``"digits"``: scikit-learn's bundled 8x8 digits (no download; scikit-learn
    is an optional extra), labels ``"zero."`` .. ``"nine."``; a seeded 80/20
    train/test split.
  * ``"tfds:cifar10"``, ``"tfds:cifar100"`` (fine labels: ``"maple tree."``),
    ``"tfds:imagenette"``, ``"tfds:imagenet2012"``, with an optional builder
    config and split slices (``"tfds:cifar10:train[:1000]"``): TensorFlow
    Datasets, read by ``jaxequiv.labels.tfds_images`` (which says what each
    needs installed and prepared).

``class_names`` replaces a data set's raw class names, e.g. words for
imagenet2012's WordNet ids (``"n01440764 tench, Tinca tinca"`` -> ``"tench."``).

Examples:
  >>> ds = load_images("shapes", "train", num_examples=256, seed=0)
  >>> ds.images.shape, ds.class_names[ds.labels[0]]
  ((256, 16, 16, 3), 'yellow square.')
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from jaxequiv.labels import tfds_images


class ImageDataset(NamedTuple):
  images: np.ndarray     # [N, H, W, C] float32, roughly in [0, 1].
  labels: np.ndarray     # [N] int32 index into class_names.
  class_names: list[str]  # [K] label sentences, e.g. "red circle.".


SPLITS = ("train", "test")

# ----------------------------------------------------------------------------- shapes

COLOURS = {
    "red": (0.9, 0.15, 0.1),
    "green": (0.15, 0.8, 0.2),
    "blue": (0.15, 0.3, 0.95),
    "yellow": (0.95, 0.85, 0.1),
}
SHAPES = ("circle", "square", "triangle", "cross")
SHAPE_CLASSES = [f"{c} {s}." for c, s in itertools.product(COLOURS, SHAPES)]
# One held-out shape per colour and one colour per shape (a cyclic Latin square),
# so every colour and every shape word is still seen in training.
HELDOUT_SHAPES = ("red square.", "green triangle.", "blue cross.", "yellow circle.")
_SPLIT_ID = {"train": 0, "test": 1}


def _check_split(split: str, spec: str) -> None:
  if split not in SPLITS:
    raise ValueError(f"{spec}: split must be one of {SPLITS}, got {split!r}")


def _shape_masks(kind_N: np.ndarray, cy_N, cx_N, r_N, size: int) -> np.ndarray:
  """Boolean masks ``[N, size, size]``: shape ``SHAPES[kind]`` centred at (cy, cx), radius r."""
  yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
  dy = yy[None] - cy_N[:, None, None]
  dx = xx[None] - cx_N[:, None, None]
  r = r_N[:, None, None]
  circle = dx * dx + dy * dy <= r * r
  half = 0.85 * r  # a square of about the circle's area
  square = (np.abs(dx) <= half) & (np.abs(dy) <= half)
  triangle = (dy >= -r) & (dy <= 0.8 * r) & (np.abs(dx) <= 0.6 * (dy + r))
  arm = np.maximum(r / 3.0, 1.0)
  cross = ((np.abs(dx) <= arm) & (np.abs(dy) <= r)) | ((np.abs(dy) <= arm) & (np.abs(dx) <= r))
  masks = np.stack([circle, square, triangle, cross])  # [4, N, S, S]
  return masks[kind_N, np.arange(len(kind_N))]


def make_shapes(
    num_examples: int,
    *,
    seed: int = 0,
    split: str = "train",
    size: int = 16,
    classes: Sequence[int] | None = None,
    noise: float = 0.12,
) -> ImageDataset:
  """Draws ``num_examples`` coloured-shape images with numpy, deterministically.

  Each image: a grey background (level ~ U[0.05, 0.45]) plus Gaussian noise
  (std ``noise``), and one shape of radius ~ U[0.18, 0.33] * size at a random
  position where it fits, filled with its colour jittered by ±0.1 per channel.

  Args:
    num_examples: N.
    seed: with ``split``, determines every bit (``SeedSequence([seed, split])``).
    split: ``"train"`` or ``"test"`` (independent streams).
    size: image height and width (>= 8).
    classes: class ids (into ``SHAPE_CLASSES``) to sample uniformly from;
      default all 16.

  Returns:
    ``ImageDataset`` with images ``[N, size, size, 3]`` and labels into the full
    ``SHAPE_CLASSES`` list (also when ``classes`` is a subset).
  """
  _check_split(split, "shapes")
  if size < 8:
    raise ValueError(f"shapes: size must be >= 8 pixels, got {size}")
  if num_examples < 0:
    raise ValueError(f"shapes: num_examples must be >= 0, got {num_examples}")
  allowed = np.arange(len(SHAPE_CLASSES)) if classes is None else np.asarray(classes, np.int32)
  if allowed.size == 0 or allowed.min() < 0 or allowed.max() >= len(SHAPE_CLASSES):
    raise ValueError(f"shapes: classes must be non-empty ids in [0, {len(SHAPE_CLASSES)}), got {list(allowed)}")
  rng = np.random.default_rng(np.random.SeedSequence([seed, _SPLIT_ID[split]]))
  n = num_examples
  labels = allowed[rng.integers(0, len(allowed), n)].astype(np.int32)
  colour_N, kind_N = np.divmod(labels, len(SHAPES))
  r = rng.uniform(0.18, 0.33, n).astype(np.float32) * size
  cy = rng.uniform(r + 0.5, size - r - 0.5).astype(np.float32)
  cx = rng.uniform(r + 0.5, size - r - 0.5).astype(np.float32)
  rgb = np.asarray(list(COLOURS.values()), np.float32)[colour_N]
  rgb = np.clip(rgb + rng.uniform(-0.1, 0.1, (n, 3)).astype(np.float32), 0.0, 1.0)
  background = rng.uniform(0.05, 0.45, (n, 1, 1, 1)).astype(np.float32)
  images = np.broadcast_to(background, (n, size, size, 3)).copy()
  masks = _shape_masks(kind_N, cy, cx, r, size)
  images = np.where(masks[..., None], rgb[:, None, None, :], images)
  images += noise * rng.standard_normal(images.shape).astype(np.float32)
  return ImageDataset(np.clip(images, 0.0, 1.0).astype(np.float32), labels, list(SHAPE_CLASSES))


def heldout_ids(class_names: Sequence[str] = SHAPE_CLASSES, heldout: Sequence[str] = HELDOUT_SHAPES) -> np.ndarray:
  """Class ids of the held-out combinations."""
  missing = [h for h in heldout if h not in class_names]
  if missing:
    raise ValueError(f"held-out labels {missing} are not among the classes {list(class_names)}")
  return np.asarray([list(class_names).index(h) for h in heldout], np.int32)


# ----------------------------------------------------------------------------- digits

DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def load_digits(split: str = "train", *, seed: int = 0, test_fraction: float = 0.2) -> ImageDataset:
  """scikit-learn's 8x8 digits (1797 images, bundled, no download) as ``[N, 8, 8, 1]`` in [0, 1].

  The train/test split is a seeded permutation (``seed``), ``test_fraction`` held out.
  """
  _check_split(split, "digits")
  try:
    from sklearn import datasets as sk_datasets  # pylint: disable=import-outside-toplevel
  except ImportError as e:
    raise ImportError(
        "the 'digits' data set needs scikit-learn (an optional extra): pip install 'jaxequiv[digits]'"
        " or pip install scikit-learn") from e
  d = sk_datasets.load_digits()
  images = (d.images.astype(np.float32) / 16.0)[..., None]
  labels = d.target.astype(np.int32)
  perm = np.random.default_rng(np.random.SeedSequence([seed, 7])).permutation(len(labels))
  n_test = int(round(test_fraction * len(labels)))
  idx = np.sort(perm[:n_test] if split == "test" else perm[n_test:])
  return ImageDataset(images[idx], labels[idx], [w + "." for w in DIGIT_WORDS])


# ----------------------------------------------------------------------------- common


def _with_class_names(ds: ImageDataset, raw: Sequence[str], spec: str) -> ImageDataset:
  """``ds`` with ``raw`` class names normalised to label sentences; their number must fit the labels."""
  from jaxequiv.labels import names as names_lib  # pylint: disable=import-outside-toplevel
  if isinstance(raw, str):
    raise TypeError(f"{spec}: class_names must be a sequence of str, not one str")
  raw, k = list(raw), len(ds.class_names)
  if len(raw) != k:
    raise ValueError(f"{spec}: got {len(raw)} class names for {k} classes; give one name per class, in label order")
  return ImageDataset(ds.images, ds.labels, names_lib.normalize_labels(raw))


def load_images(
    spec: str,
    split: str = "train",
    *,
    num_examples: int | None = None,
    seed: int = 0,
    holdout: bool = False,
    image_size: int | None = None,
    data_dir: str | None = None,
    download: bool = False,
    class_names: Sequence[str] | None = None,
) -> ImageDataset:
  """Loads ``spec`` (``shapes``, ``digits`` or ``tfds:<name>[/<config>][:<splits>]``) as an ``ImageDataset``.

  Args:
    spec: which data set (see the module docstring).
    split: ``"train"`` or ``"test"``.
    num_examples: how many images (shapes: default 4096 train / 1024 test;
      others: a seeded subset, default all).
    seed: shapes' drawing seed / digits' split seed / tfds' subset seed.
    holdout: shapes only: leave ``HELDOUT_SHAPES`` out of the train split.
    image_size: shapes' side (default 16); tfds' resize (see ``tfds_images.load_tfds``).
    data_dir, download: tfds only.
    class_names: raw names replacing the data set's own, one per class in label
      order (normalised by ``jaxequiv.labels.names.normalize_labels``).

  Returns:
    ``ImageDataset(images_NxHxWxC float32, labels_N int32, class_names)``.

  >>> load_images("digits", "test").class_names[7]
  'seven.'
  """
  if spec == "shapes":
    n = num_examples if num_examples is not None else (4096 if split == "train" else 1024)
    classes = None
    if holdout and split == "train":
      classes = np.setdiff1d(np.arange(len(SHAPE_CLASSES)), heldout_ids())
    ds = make_shapes(n, seed=seed, split=split, size=image_size or 16, classes=classes)
    return ds if class_names is None else _with_class_names(ds, class_names, spec)
  if holdout:
    raise ValueError(f"holdout=True is only defined for 'shapes', not {spec!r}")
  if spec == "digits":
    ds = load_digits(split, seed=seed)
    if num_examples is not None:
      ds = ImageDataset(ds.images[:num_examples], ds.labels[:num_examples], ds.class_names)
    return ds if class_names is None else _with_class_names(ds, class_names, spec)
  if spec.startswith("tfds:"):
    name, tfds_splits = tfds_images.parse_tfds_spec(spec[5:])
    _check_split(split, spec)
    x, y, names = tfds_images.load_tfds(name, split, num_examples=num_examples, seed=seed, data_dir=data_dir,
                                        download=download, image_size=image_size, tfds_split=tfds_splits[split])
    return _with_class_names(ImageDataset(x, y, names), names if class_names is None else class_names, f"tfds:{name}")
  raise ValueError(f"unknown image data spec {spec!r}; use 'shapes', 'digits' or 'tfds:<name>' with name in"
                   f" {sorted(tfds_images.TFDS_SPLITS)}")
