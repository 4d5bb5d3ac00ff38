"""TensorFlow Datasets image-classification sets, read as arrays: ``load_tfds(name, split)``.

``jaxequiv.labels.images.load_images("tfds:...")`` reads them through this
module and turns their class names into label sentences. Supported:
``"tfds:cifar10"``, ``"tfds:cifar100"`` (fine labels: ``"maple tree."``),
``"tfds:imagenette"``, ``"tfds:imagenet2012"``, through ``tfds.data_source``
(random access; reading needs tensorflow-datasets, ``pip install
'jaxequiv[tfds]'``, not TensorFlow). A builder config and split slices may
follow (``parse_tfds_spec``): ``"tfds:imagenette/160px-v2"``,
``"tfds:cifar10:train[:1000]"`` (the train side; the test side keeps its
default), ``"tfds:cifar10:train[:1000],test[:500]"`` (both), or
``"tfds:cifar10:[:1000]"`` (the same slice of both default splits). Data must
be prepared in ``array_record`` format; preparing it (``download=True``, the
first time) needs TensorFlow: ``pip install 'jaxequiv[tfds-prepare]'``
(imagenet2012 needs a manual download, see ``IMAGENET_MANUAL``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from jaxequiv import tfds_source
from jaxequiv.tfds_source import TFDS_EXTRA, TFDS_PREPARE_EXTRA

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
      for ours, given in zip(TFDS_SPLITS[base], parts):
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
    tfds_split: str | None = None,
) -> tuple[np.ndarray, np.ndarray, list[str]]:
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
    tfds_split: the tfds split string to read instead of ``split``'s default,
      e.g. ``"train[:1000]"``.

  Returns:
    ``(images_NxHxWxC float32 in [0, 1], labels_N int32, names_K)``: the class
    names are tfds' own, or words where tfds has numbers or WordNet ids
    (cifar10, cifar100, imagenette); ``images.load_images`` makes them label
    sentences (``"maple tree."``).

  Raises:
    ValueError: an unsupported name or split.
    FileNotFoundError: the data is not prepared (the message says how).
    ImportError: naming the extra that installs what is missing.
  """
  base = name.split("/")[0]
  if base not in TFDS_SPLITS:
    raise ValueError(f"tfds:{name} is not supported; choose one of {sorted(TFDS_SPLITS)}")
  if split not in TFDS_SPLITS[base]:
    raise ValueError(f"tfds:{name}: split must be one of {tuple(TFDS_SPLITS[base])}, got {split!r}")
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
  builder_names = tfds.builder(name, data_dir=data_dir).info.features["label"].names
  return images, y, _tfds_names(base, builder_names)
