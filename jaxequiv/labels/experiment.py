"""One labels run: flags -> ``ExperimentConfig`` -> ``run`` -> results (and a run directory).

``run(config)`` loads the images, trains a one-hot head and a string head on the
same minibatches (``jaxequiv.labels.train``), measures both
(``jaxequiv.labels.evaluate``), renders the report (``jaxequiv.labels.report``)
and, with ``config.out_dir``, saves the run through ``jaxequiv.rundir`` and ``jaxequiv.checkpoint``::

    OUT/config.json                  the ExperimentConfig (atomic)
    OUT/checkpoints/<steps>/         both heads' params, checksummed (``save_heads``, ``load_heads``)
    OUT/metrics.json, OUT/metrics.md the summary and the printed report (atomic)

``python -m jaxequiv labels`` is flags -> config -> ``run`` -> print; notebook 03
calls ``run_experiment`` (the same run without files) and reads its pieces.

Examples:
  >>> ExperimentConfig(steps=20, width=32, heads=2).steps
  20
  >>> ExperimentConfig(channels=[8, 16]).channels   # JSON lists back to tuples: hashable, comparable
  (8, 16)
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np

from jaxequiv import checkpoint, rundir
from jaxequiv import labels as labels_lib
from jaxequiv.labels import evaluate as evaluate_lib
from jaxequiv.labels import heads as heads_lib
from jaxequiv.labels import images as images_lib
from jaxequiv.labels import report as report_lib
from jaxequiv.labels import train as train_lib
from jaxequiv.labels.heads import ImageModelConfig
from jaxequiv.labels.train import TrainedHeads
from jaxequiv.model import ModelConfig


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
  """Everything one labels run depends on; ``dataclasses.asdict`` of it is ``OUT/config.json``.

  Attributes:
    data: ``shapes``, ``digits`` or ``tfds:NAME[/CONFIG][:TRAIN_SPLIT[,TEST_SPLIT]]``.
    steps: training steps per head.
    batch_size: images per training step.
    seed: seeds the data, the parameters and the minibatch order.
    learning_rate: Adam's (constant) learning rate.
    zero_shot_holdout: shapes only: hold out colour-shape combinations from training and test them.
    beam_size: beams of the trie-constrained beam search.
    num_train: training images (None: the loader's own number).
    num_test: test images (None: the loader's own number).
    layers: string decoder layers.
    width: image embedding and decoder width.
    heads: decoder attention heads.
    token_dropout: string head's input-character dropout rate while training, in [0, 1).
    channels: CNN channels per stage.
    encoder: ``cnn`` or ``vit``.
    patch: ViT patch side.
    image_size: shapes side / tfds resize (None: the loader's default).
    data_dir: tfds ``data_dir``.
    download: let tfds download and prepare the data.
    class_names: replace the data set's own class names (None: keep them).
    out_dir: the run directory to write (None: write nothing).
  """

  data: str = "shapes"
  steps: int = 600
  batch_size: int = 64
  seed: int = 0
  learning_rate: float = 3e-3
  zero_shot_holdout: bool = False
  beam_size: int = 4
  num_train: int | None = None
  num_test: int | None = None
  layers: int = 1
  width: int = 64
  heads: int = 4
  token_dropout: float = 0.0
  channels: tuple[int, ...] = (16, 32, 64)
  encoder: str = "cnn"
  patch: int = 4
  image_size: int | None = None
  data_dir: str | None = None
  download: bool = False
  class_names: tuple[str, ...] | None = None
  out_dir: str | None = None

  def __post_init__(self):
    object.__setattr__(self, "channels", tuple(int(c) for c in self.channels))
    if self.class_names is not None:
      object.__setattr__(self, "class_names", tuple(self.class_names))


def run(config: ExperimentConfig, progress: Callable[[str, int, float], None] | None = None) -> dict[str, Any]:
  """Runs one labels experiment: ``run_experiment`` of the config's settings, the report, the run directory.

  Args:
    config: the run's settings.
    progress: called as ``progress(head, step_index, loss)`` after every training step.

  Returns:
    ``run_experiment``'s dict plus ``"experiment"`` (the config), ``"report"``
    (the printed text) and ``"files"`` (paths written under ``config.out_dir``,
    empty without one).
  """
  settings = {f.name: getattr(config, f.name) for f in dataclasses.fields(config) if f.name != "out_dir"}
  res = run_experiment(**settings, progress=progress)
  res["experiment"] = config
  res["report"] = report_lib.report_text(res)
  res["files"] = [] if config.out_dir is None else save_run(config.out_dir, config, res)
  return res


def save_run(out_dir: str, config: ExperimentConfig, res: dict[str, Any]) -> list[str]:
  """Writes ``run``'s results to ``out_dir`` through ``jaxequiv.checkpoint``; returns the paths written."""
  summary = {k: res[k] for k in ("data", "steps", "batch_size", "seed", "num_train", "num_test", "metrics",
                                 "zero_shot", "examples", "seconds")}
  summary["onehot_curve"] = np.asarray(res["trained"].onehot_curve, np.float64).tolist()
  summary["string_curve"] = np.asarray(res["trained"].string_curve, np.float64).tolist()
  with rundir.RunLock(out_dir):
    rundir.write_config(out_dir, dataclasses.asdict(config))
    rundir.write_text_atomic(f"{out_dir}/metrics.md", res["report"] + "\n")
  ckpt = save_heads(out_dir, res["trained"], res["config"], res["test"].images.shape[1:], res["test"].class_names,
                    summary)
  return [f"{out_dir}/{rundir.CONFIG_FILE}", ckpt, f"{out_dir}/metrics.json", f"{out_dir}/metrics.md"]


def decoder_config_for(class_names: Sequence[str], *, layers: int = 1, width: int = 64, heads: int = 4) -> ModelConfig:
  """A decoder config whose ``seq_len`` fits the longest label (rounded up to a multiple of 8)."""
  longest = max(len(s) for s in class_names)
  return ModelConfig(num_layers=layers, width=width, num_heads=heads, seq_len=-(-longest // 8) * 8)


def run_experiment(data: str = "shapes", *, steps: int = 600, batch_size: int = 64, seed: int = 0,
                   learning_rate: float = 3e-3, zero_shot_holdout: bool = False, beam_size: int = 4,
                   num_train: int | None = None, num_test: int | None = None, layers: int = 1, width: int = 64,
                   heads: int = 4, token_dropout: float = 0.0, channels: Sequence[int] = (16, 32, 64),
                   encoder: str = "cnn", patch: int = 4,
                   image_size: int | None = None, data_dir: str | None = None,
                   download: bool = False, class_names: Sequence[str] | None = None,
                   progress=None) -> dict[str, Any]:
  """Loads data, trains both heads, evaluates. Returns a dict (see keys) for ``run`` and notebook 03.

  ``examples`` holds the first four (seen-class) test images as each head labels them
  (``jaxequiv.labels.evaluate.examples``); computing them changes no metric.

  ``class_names`` replaces the data set's own names (e.g. words for imagenet2012's WordNet ids).
  """
  t0 = time.perf_counter()
  kw = dict(seed=seed, image_size=image_size, data_dir=data_dir, download=download, class_names=class_names)
  train = images_lib.load_images(data, "train", num_examples=num_train, holdout=zero_shot_holdout, **kw)
  test = images_lib.load_images(data, "test", num_examples=num_test, **kw)
  labels_lib.label_trie(test.class_names)  # validates the label sentences, naming a bad one
  config = ImageModelConfig(channels=tuple(channels), embed_dim=width, encoder=encoder, patch=patch,
                            decoder=decoder_config_for(test.class_names, layers=layers, width=width, heads=heads))
  t_load = time.perf_counter()
  trained = train_lib.train_heads(train.images, train.labels, train.class_names, config, steps=steps,
                                  batch_size=batch_size, learning_rate=learning_rate, seed=seed,
                                  token_dropout=token_dropout, progress=progress)
  t_train = time.perf_counter()
  if zero_shot_holdout:
    seen = ~np.isin(test.labels, images_lib.heldout_ids(test.class_names))
    test_seen = images_lib.ImageDataset(test.images[seen], test.labels[seen], test.class_names)
  else:
    test_seen = test
  metrics = evaluate_lib.evaluate(trained, test_seen, config, beam_size=beam_size)
  zs = evaluate_lib.zero_shot(trained, test, config, beam_size=beam_size) if zero_shot_holdout else None
  shown = evaluate_lib.examples(trained, test_seen, config, beam_size=beam_size)
  t_eval = time.perf_counter()
  return {
      "data": data, "steps": steps, "batch_size": batch_size, "seed": seed, "token_dropout": token_dropout,
      "config": config,
      "train": train, "test": test, "trained": trained, "metrics": metrics, "zero_shot": zs,
      "examples": shown,
      "num_train": int(len(train.labels)), "num_test": int(len(test.labels)),
      "seconds": {"load": t_load - t0, "train": t_train - t_load, "eval": t_eval - t_train},
  }


# ----------------------------------------------------------------------------- run directory


def image_config_from_dict(d: dict) -> ImageModelConfig:
  """Inverse of ``dataclasses.asdict(ImageModelConfig)`` (JSON lists back to tuples)."""
  return ImageModelConfig(**{**d, "channels": tuple(d["channels"]), "decoder": ModelConfig(**d["decoder"])})


def save_heads(out_dir: str, trained: TrainedHeads, config: ImageModelConfig, image_shape: Sequence[int],
               class_names: Sequence[str], summary: dict | None = None) -> str:
  """Saves both heads' params through ``jaxequiv.checkpoint`` (checksummed, under the writer lock).

  ``out_dir/checkpoints/<steps>/{onehot,string}/`` hold the params; the meta
  records the config, image shape, class names, one-hot classes and loss
  curves; ``summary`` (if given) is written atomically to ``out_dir/metrics.json``.

  Returns:
    The checkpoint's directory.
  """
  items = {k: v for k, v in (("onehot", trained.onehot_params), ("string", trained.string_params)) if v is not None}
  steps = max(len(trained.onehot_curve), len(trained.string_curve))
  meta = {"config": dataclasses.asdict(config), "image_shape": [int(d) for d in image_shape],
          "class_names": list(class_names), "onehot_classes": np.asarray(trained.onehot_classes).tolist(),
          "onehot_curve": np.asarray(trained.onehot_curve, np.float64).tolist(),
          "string_curve": np.asarray(trained.string_curve, np.float64).tolist()}
  with rundir.RunLock(out_dir):
    path = checkpoint.save(out_dir, steps, items, meta)
    if summary is not None:
      rundir.write_json(f"{out_dir}/metrics.json", summary)
  return path


def load_heads(out_dir: str, step: int | None = None) -> tuple[TrainedHeads, ImageModelConfig, list[str]]:
  """``(trained, config, class_names)`` from ``save_heads``' newest good (or given) checkpoint, on one device.

  Raises:
    jaxequiv.rundir.RunDirError: one line naming the directory if no good checkpoint is there.
  """
  found = {}

  def like(meta):
    found["config"] = config = image_config_from_dict(meta["config"])
    shape, k = tuple(meta["image_shape"]), len(meta["onehot_classes"])
    out = {}
    if meta["onehot_curve"]:
      out["onehot"] = jax.eval_shape(lambda: heads_lib.init_onehot(jax.random.key(0), config, k, shape))
    if meta["string_curve"]:
      out["string"] = jax.eval_shape(lambda: heads_lib.init_string(jax.random.key(0), config, shape))
    return {name: checkpoint.single_device(tree) for name, tree in out.items()}

  r = checkpoint.restore(out_dir, like, step)
  meta, config = r.meta, found["config"]
  trained = TrainedHeads(r.items.get("onehot"), r.items.get("string"), np.asarray(meta["onehot_classes"], np.int32),
                         np.asarray(meta["onehot_curve"], np.float32), np.asarray(meta["string_curve"], np.float32))
  return trained, config, list(meta["class_names"])
