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
    ``"tfds:imagenette"``, ``"tfds:imagenet2012"``: TensorFlow Datasets through
    ``tfds.data_source`` (random access; reading needs tensorflow-datasets,
    ``pip install 'jaxequiv[tfds]'``, not TensorFlow). A builder config and
    split slices may follow: ``"tfds:imagenette/160px-v2"``,
    ``"tfds:cifar10:train[:1000]"`` (the train side; the test side keeps its
    default), ``"tfds:cifar10:train[:1000],test[:500]"`` (both), or
    ``"tfds:cifar10:[:1000]"`` (the same slice of both default splits). Data
    must be prepared in ``array_record`` format; preparing it (``download=True``,
    the first time) needs TensorFlow: ``pip install 'jaxequiv[tfds-prepare]'``
    (imagenet2012 needs a manual download, see ``IMAGENET_MANUAL``).

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

from jaxequiv import tfds_source
from jaxequiv.tfds_source import TFDS_EXTRA, TFDS_PREPARE_EXTRA


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


# ----------------------------------------------------------------------------- tfds

CIFAR10_NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
CIFAR100_NAMES = (
    "apple aquarium_fish baby bear beaver bed bee beetle bicycle bottle bowl boy bridge bus butterfly camel can"
    " castle caterpillar cattle chair chimpanzee clock cloud cockroach couch crab crocodile cup dinosaur dolphin"
    " elephant flatfish forest fox girl hamster house kangaroo keyboard lamp lawn_mower leopard lion lizard"
    " lobster man maple_tree motorcycle mountain mouse mushroom oak_tree orange orchid otter palm_tree pear"
    " pickup_truck pine_tree plain plate poppy porcupine possum rabbit raccoon ray road rocket rose sea seal"
    " shark shrew skunk skyscraper snail snake spider squirrel streetcar sunflower sweet_pepper table tank"
    " telephone television tiger tractor train trout tulip turtle wardrobe whale willow_tree wolf woman worm"
).split()
IMAGENETTE_NAMES = {  # tfds labels imagenette by WordNet id
    "n01440764": "tench", "n02102040": "English springer", "n02979186": "cassette player",
    "n03000684": "chain saw", "n03028079": "church", "n03394916": "French horn",
    "n03417042": "garbage truck", "n03425413": "gas pump", "n03445777": "golf ball",
    "n03888257": "parachute",
}
assert len(CIFAR100_NAMES) == 100
TFDS_SPLITS = {  # our split -> tfds split
    "cifar10": {"train": "train", "test": "test"},
    "cifar100": {"train": "train", "test": "test"},
    "imagenette": {"train": "train", "test": "validation"},
    "imagenet2012": {"train": "train", "test": "validation"},
}
IMAGENET_MANUAL = (
    "imagenet2012 cannot be downloaded automatically. Register at https://image-net.org/download-images,"
    " download ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar into tfds' manual_dir"
    " (<data_dir>/downloads/manual/, default ~/tensorflow_datasets/downloads/manual/), then prepare it in"
    " array_record format, e.g. `tfds build imagenet2012 --file_format=array_record`"
    " (see https://www.tensorflow.org/datasets/catalog/imagenet2012). Its labels are WordNet ids unless you"
    " pass class_names=[...]."
)




def parse_tfds_spec(rest: str) -> tuple[str, dict[str, str]]:
  """``(name[/config], {"train": tfds split, "test": tfds split})`` from what follows ``tfds:``.

  >>> parse_tfds_spec("cifar10:train[:1000]")
  ('cifar10', {'train': 'train[:1000]', 'test': 'test'})
  >>> parse_tfds_spec("imagenette/160px-v2:[:10%]")
  ('imagenette/160px-v2', {'train': 'train[:10%]', 'test': 'validation[:10%]'})

  Raises:
    ValueError: for an unsupported data set or a malformed split part, naming it.
  """
  name, _, splits = rest.partition(":")
  base = name.split("/")[0]
  if base not in TFDS_SPLITS or name.endswith("/"):
    raise ValueError(f"tfds:{name} is not supported; choose one of {sorted(TFDS_SPLITS)}"
                     " (optionally /<config>, e.g. tfds:imagenette/160px-v2)")
  out = dict(TFDS_SPLITS[base])
  if splits:
    parts = splits.split(",")
    if len(parts) > 2 or not all(parts):
      raise ValueError(f"tfds:{rest}: the split part must be TRAIN or TRAIN,TEST (tfds split strings such as"
                       f" train[:1000]), or a slice such as [:1000]; got {splits!r}")
    if len(parts) == 1 and parts[0].startswith("["):
      out = {k: v + parts[0] for k, v in out.items()}
    else:
      for ours, given in zip(SPLITS, parts):
        out[ours] = TFDS_SPLITS[base][ours] + given if given.startswith("[") else given
  return name, out


def _tfds_names(name: str, builder_names: Sequence[str]) -> list[str]:
  """Human-readable class names: tfds' own unless they are numbers or WordNet ids we can map."""
  builder_names = list(builder_names)
  if name == "cifar10" and (not builder_names or builder_names[0].isdigit()):
    return list(CIFAR10_NAMES)
  if name == "cifar100" and (not builder_names or builder_names[0].isdigit()):
    return list(CIFAR100_NAMES)
  if name == "imagenette":
    return [IMAGENETTE_NAMES.get(n, n) for n in builder_names]
  return builder_names


def _to_float_image(img: np.ndarray, image_size: int | None) -> np.ndarray:
  img = np.asarray(img)
  if img.ndim == 2:
    img = img[..., None]
  if image_size is not None and img.shape[:2] != (image_size, image_size):
    from PIL import Image  # pylint: disable=import-outside-toplevel
    h, w = img.shape[:2]
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    crop = img[top:top + s, left:left + s]
    pil = Image.fromarray(crop.squeeze(-1) if crop.shape[-1] == 1 else crop)
    img = np.asarray(pil.resize((image_size, image_size), Image.BILINEAR)).reshape(image_size, image_size, -1)
  return img.astype(np.float32) / 255.0


def load_tfds(
    name: str,
    split: str = "train",
    *,
    num_examples: int | None = None,
    seed: int = 0,
    data_dir: str | None = None,
    download: bool = False,
    image_size: int | None = None,
    class_names: Sequence[str] | None = None,
    tfds_split: str | None = None,
) -> ImageDataset:
  """A TFDS image-classification set through ``tfds.data_source`` (reading needs no TensorFlow).

  Args:
    name: ``cifar10``, ``cifar100`` (fine labels), ``imagenette`` or
      ``imagenet2012``, optionally with a builder config
      (``imagenette/160px-v2``).
    split: ``"train"`` or ``"test"`` (imagenette/imagenet2012 test = validation).
    num_examples: a seeded random subset of this size (sorted indices), or all.
    seed: selects the subset.
    data_dir: tfds data directory (default tfds').
    download: let tfds download and prepare (array_record) when missing;
      preparing needs TensorFlow (``pip install 'jaxequiv[tfds-prepare]'``).
    image_size: centre-crop and resize to ``image_size`` squared (needed for
      imagenette/imagenet2012, whose images vary in size; default 32 there).
    class_names: raw names to use instead of tfds' (e.g. words for WordNet ids),
      one per class in label order.
    tfds_split: the tfds split string to read instead of ``split``'s default,
      e.g. ``"train[:1000]"``.

  Returns:
    ``ImageDataset`` whose class names are label sentences (``"maple tree."``).

  Raises:
    ValueError: an unsupported name, or class names that do not fit.
    FileNotFoundError: the data is not prepared (the message says how).
    ImportError: naming the extra that installs what is missing.
  """
  base = name.split("/")[0]
  if base not in TFDS_SPLITS:
    raise ValueError(f"tfds:{name} is not supported; choose one of {sorted(TFDS_SPLITS)}")
  _check_split(split, f"tfds:{name}")
  try:
    import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel
  except ImportError as e:
    raise ImportError(f"tfds:* data needs tensorflow-datasets: {TFDS_EXTRA}") from e
  if image_size is None and base in ("imagenette", "imagenet2012"):
    image_size = 32
  tfds_split = tfds_split or TFDS_SPLITS[base][split]
  try:
    source = tfds_source.array_record_source(tfds, name, tfds_split, data_dir, download)
  except ImportError:
    raise  # it already names the extra to install
  except Exception as e:  # pylint: disable=broad-except
    first = (str(e).splitlines() or [""])[0]
    if isinstance(e, tfds.core.registered.DatasetNotFoundError) or "BuilderConfig" in str(e):
      raise ValueError(f"tfds:{name}: no such TFDS dataset or config ({first})") from e
    if base == "imagenet2012":
      raise FileNotFoundError(f"tfds:imagenet2012 is not prepared in data_dir={data_dir!r}"
                              f" ({type(e).__name__}: {first}). {IMAGENET_MANUAL}") from e
    raise FileNotFoundError(
        f"tfds:{name} split {tfds_split!r} is not prepared in array_record format in data_dir={data_dir!r}"
        f" ({type(e).__name__}: {first}). Pass download=True (CLI: --download; preparing needs TensorFlow:"
        f" {TFDS_PREPARE_EXTRA}) or run `tfds build {name} --file_format=array_record`.") from e
  n_all = len(source)
  if num_examples is None or num_examples >= n_all:
    idx = np.arange(n_all)
  else:
    idx = np.sort(np.random.default_rng(np.random.SeedSequence([seed, 11])).choice(n_all, num_examples, replace=False))
  # One record at a time: works for real array_record sources and under tfds.testing.mock_data
  # (whose batched __getitems__ is not mocked in tfds 4.9.10).
  records = [source[int(i)] for i in idx]
  if not records:
    raise ValueError(f"tfds:{name} split {split!r} has no examples (num_examples={num_examples})")
  images = np.stack([_to_float_image(r["image"], image_size) for r in records])
  y = np.asarray([int(r["label"]) for r in records], np.int32)
  builder_names = list(tfds.builder(name, data_dir=data_dir).info.features["label"].names)
  if class_names is None:
    class_names = builder_names = _tfds_names(base, builder_names)
  return _with_class_names(ImageDataset(images, y, builder_names), class_names, f"tfds:{name}")


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
    image_size: shapes' side (default 16); tfds' resize (see ``load_tfds``).
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
    name, tfds_splits = parse_tfds_spec(spec[5:])
    _check_split(split, spec)
    return load_tfds(name, split, num_examples=num_examples, seed=seed, data_dir=data_dir, download=download,
                     image_size=image_size, class_names=class_names, tfds_split=tfds_splits[split])
  raise ValueError(f"unknown image data spec {spec!r}; use 'shapes', 'digits' or 'tfds:<name>' with name in"
                   f" {sorted(TFDS_SPLITS)}")
