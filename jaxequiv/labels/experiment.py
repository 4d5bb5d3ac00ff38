"""The labels-as-strings experiment: train a one-hot head and a string head on the same images, then measure both.

Shared by ``python -m jaxequiv labels`` and notebook 03. For both heads: accuracy,
NLL per image, ECE (15 bins); for the string head also rank classification,
leakage, and trie-constrained greedy and beam decoding. ``zero_shot`` (shapes)
measures how the string head scores and names held-out colour-shape combinations.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxequiv import checkpoint, rundir
from jaxequiv import labels as labels_lib
from jaxequiv.labels import heads as im
from jaxequiv.labels import images as images_lib
from jaxequiv.model import ModelConfig


def _chunked(fn, x: np.ndarray, chunk: int) -> list[np.ndarray]:
  """Applies ``fn`` to fixed-size chunks of ``x`` (last one zero-padded, so one compile); trims."""
  outs, n = [], len(x)
  for s in range(0, n, chunk):
    part = x[s:s + chunk]
    pad = chunk - len(part)
    if pad:
      part = np.concatenate([part, np.zeros((pad, *part.shape[1:]), part.dtype)])
    res = fn(part)
    outs.append([np.asarray(r)[:chunk - pad] for r in (res if isinstance(res, tuple) else (res,))])
  return [np.concatenate(cols) for cols in zip(*outs)]


@functools.lru_cache(maxsize=16)
def _score_fn(config: im.ImageModelConfig, beam_size: int):
  """Jitted ``(params, trie, inputs_KxT, images) -> (logp, logp_constrained, greedy, beam)``."""

  @jax.jit
  def score(params, trie, inputs_KxT, x):
    k, t = inputs_KxT.shape
    emb_NxE = im.image_embeddings(params, x, config)
    n = emb_NxE.shape[0]
    logits = im.decode_logits(params, jnp.repeat(emb_NxE, k, axis=0), jnp.tile(inputs_KxT, (n, 1)), config)
    logits_NxKxTx64 = logits.reshape(n, k, t, -1)
    free = labels_lib.label_logprobs(trie, logits_NxKxTx64)
    cons = labels_lib.label_logprobs(trie, logits_NxKxTx64, constrained=True)
    step = lambda e: (lambda tok, pos: im.decode_logits(params, e, tok, config)[:, pos])  # noqa: E731
    greedy = labels_lib.greedy_decode(trie, step(emb_NxE), n)
    beam = labels_lib.beam_decode(trie, step(jnp.repeat(emb_NxE, beam_size, axis=0)), n, beam_size)
    return free, cons, greedy.classes, beam.classes

  return score


def string_scores(params, images_NxHxWxC: np.ndarray, trie: labels_lib.LabelTrie, config: im.ImageModelConfig,
                  *, beam_size: int = 4, chunk: int = 128) -> dict[str, np.ndarray]:
  """Everything the string head says about each image, against the labels of ``trie``.

  Returns a dict of numpy arrays (N = images, K = labels, W = beam size):
    ``logp`` ``[N, K]`` rank-classification log-probabilities (teacher forcing);
    ``logp_constrained`` ``[N, K]`` the same under trie-constrained steps (sums to 1);
    ``greedy`` ``[N]`` class from trie-constrained greedy decoding;
    ``beam`` ``[N]`` best class of a beam search with ``beam_size`` beams.

  Images go through in zero-padded chunks of ``chunk`` (one compile per chunk size).
  """
  inputs_KxT = jnp.asarray(labels_lib.label_model_inputs(trie).inputs)  # [K, Lmax]
  score = functools.partial(_score_fn(config, beam_size), params, trie, inputs_KxT)
  free, cons, greedy, beam = _chunked(score, np.asarray(images_NxHxWxC, np.float32), chunk)
  return {"logp": free, "logp_constrained": cons, "greedy": greedy, "beam": beam}


def _log_softmax(x: np.ndarray) -> np.ndarray:
  x = x - x.max(-1, keepdims=True)
  return x - np.log(np.exp(x).sum(-1, keepdims=True))


def evaluate(trained: im.TrainedHeads, test: images_lib.ImageDataset, config: im.ImageModelConfig,
             *, beam_size: int = 4, trie_labels: Sequence[str] | None = None) -> dict[str, dict[str, float]]:
  """Test metrics of both heads on ``test`` (one-hot: images of classes it has an output for).

  The string head is scored against the trie of ``trie_labels`` (default: all
  ``test.class_names``).

  Returns:
    ``{"onehot": {...}, "string": {...}}`` of floats; NaN where not applicable.
  """
  names = list(test.class_names)
  trie_labels = names if trie_labels is None else list(trie_labels)
  trie = labels_lib.label_trie(trie_labels)
  y_trie = np.asarray([trie_labels.index(names[y]) for y in test.labels])
  out: dict[str, dict[str, float]] = {}
  if trained.onehot_params is not None:
    seen = np.isin(test.labels, trained.onehot_classes)
    x, y = test.images[seen], test.labels[seen]
    logits = _chunked(lambda v: im.onehot_logits_jit(trained.onehot_params, v, config), x, 256)[0]
    logp = _log_softmax(logits.astype(np.float64))
    local = np.searchsorted(trained.onehot_classes, y)
    pred = trained.onehot_classes[logp.argmax(-1)]
    out["onehot"] = {
        "images": float(len(y)),
        "accuracy": float(np.mean(pred == y)),
        "nll_per_image": float(-np.mean(logp[np.arange(len(y)), local])),
        "ece": im.expected_calibration_error(np.exp(logp.max(-1)), pred == y),
    }
  if trained.string_params is not None:
    s = string_scores(trained.string_params, test.images, trie, config, beam_size=beam_size)
    idx = np.arange(len(y_trie))
    renorm = _log_softmax(s["logp"].astype(np.float64))
    rank_pred = s["logp"].argmax(-1)
    free = im.greedy_unconstrained(trained.string_params, test.images, config)
    out["string"] = {
        "images": float(len(y_trie)),
        "accuracy": float(np.mean(rank_pred == y_trie)),  # rank classification
        "nll_per_image": float(-np.mean(s["logp"][idx, y_trie])),
        "nll_per_image_constrained": float(-np.mean(s["logp_constrained"][idx, y_trie])),
        "ece": im.expected_calibration_error(np.exp(renorm.max(-1)), rank_pred == y_trie),
        "leakage": float(np.mean(np.asarray(labels_lib.leakage(s["logp"])))),
        "greedy_accuracy": float(np.mean(s["greedy"] == y_trie)),
        "beam_accuracy": float(np.mean(s["beam"] == y_trie)),
        "free_greedy_accuracy": float(np.mean(np.asarray(free) == np.asarray(trie_labels)[y_trie])),
        "free_greedy_valid": float(np.mean(np.isin(free, trie_labels))),
    }
  return out


def zero_shot(trained: im.TrainedHeads, test: images_lib.ImageDataset, config: im.ImageModelConfig,
              heldout: Sequence[str] = images_lib.HELDOUT_SHAPES, *, beam_size: int = 4) -> dict[str, Any]:
  """Held-out-combination test images: how the string head scores and names their labels.

  The trie holds ALL ``test.class_names`` (seen and held-out combinations).
  Word-level credit: the colour (first word) and the shape (second word) of the
  free greedy string, each compared with the true label's.

  Prior correction (``pmi_*``): rank labels by ``log p(label | x) - log p(label
  | blank)``, where ``blank`` is a uniform grey image (the test set's mean
  intensity), a content-free input whose scores estimate the decoder's label
  prior (as in contextual calibration, Zhao et al. 2021). This removes part of
  the prior that the held-out combinations never occur; ``pmi_accuracy_seen``
  shows what it costs on the seen combinations.
  """
  names = list(test.class_names)
  held_ids = images_lib.heldout_ids(names, heldout)
  sel = np.isin(test.labels, held_ids)
  trie = labels_lib.label_trie(names)
  s_all = string_scores(trained.string_params, test.images, trie, config, beam_size=beam_size)
  s = {k: v[sel] for k, v in s_all.items()}
  x, y = test.images[sel], test.labels[sel]
  idx = np.arange(len(y))
  logp_true = s["logp"][idx, y]
  rank = 1 + np.sum(s["logp"] > logp_true[:, None], axis=-1)
  blank = np.full((1, *test.images.shape[1:]), test.images.mean(), np.float32)
  prior_K = string_scores(trained.string_params, blank, trie, config, beam_size=beam_size)["logp"][0]
  pmi_all = s_all["logp"] - prior_K
  pmi = pmi_all[sel]
  pmi_rank = 1 + np.sum(pmi > pmi[idx, y][:, None], axis=-1)
  free = im.greedy_unconstrained(trained.string_params, x, config)
  truth = np.asarray(names)[y]
  words = lambda ss, i: np.asarray([(w.rstrip(".").split() + ["", ""])[i] for w in ss])  # noqa: E731
  onehot_acc = 0.0
  if trained.onehot_params is not None:
    onehot_acc = float(np.mean(np.isin(y, trained.onehot_classes)))  # 0: it has no output for them
  return {
      "images": int(len(y)),
      "heldout": list(heldout),
      "num_labels": len(names),
      "p_true_mean": float(np.mean(np.exp(logp_true))),
      "p_true_median": float(np.median(np.exp(logp_true))),
      "p_true_constrained_mean": float(np.mean(np.exp(s["logp_constrained"][idx, y]))),
      "p_heldout_set_mean": float(np.mean(np.exp(s["logp"][:, held_ids]).sum(-1))),
      "rank_mean": float(np.mean(rank)),
      "rank_median": float(np.median(rank)),
      "rank1": float(np.mean(rank == 1)),
      "rank_le3": float(np.mean(rank <= 3)),
      "named_free_greedy": float(np.mean(np.asarray(free) == truth)),
      "named_trie_greedy": float(np.mean(s["greedy"] == y)),
      "named_trie_beam": float(np.mean(s["beam"] == y)),
      "colour_word_correct": float(np.mean(words(free, 0) == words(truth, 0))),
      "shape_word_correct": float(np.mean(words(free, 1) == words(truth, 1))),
      "pmi_rank1": float(np.mean(pmi_rank == 1)),
      "pmi_rank_mean": float(np.mean(pmi_rank)),
      "pmi_accuracy_seen": float(np.mean(pmi_all[~sel].argmax(-1) == test.labels[~sel])),
      "rank_accuracy_seen": float(np.mean(s_all["logp"][~sel].argmax(-1) == test.labels[~sel])),
      "onehot_accuracy": 0.0 if trained.onehot_params is not None else float("nan"),
      "onehot_can_output": onehot_acc,
      "chance_rank1": 1.0 / len(names),
      "free_greedy_top": _top_counts(free),
  }


def _top_counts(strings: Sequence[str], n: int = 5) -> list[tuple[str, int]]:
  values, counts = np.unique(np.asarray(strings), return_counts=True)
  order = np.argsort(-counts, kind="stable")[:n]
  return [(str(values[i]), int(counts[i])) for i in order]


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
  """Loads data, trains both heads, evaluates. Returns a dict (see keys) for CLI and notebook.

  ``class_names`` replaces the data set's own names (e.g. words for imagenet2012's WordNet ids).
  """
  t0 = time.perf_counter()
  kw = dict(seed=seed, image_size=image_size, data_dir=data_dir, download=download, class_names=class_names)
  train = images_lib.load_images(data, "train", num_examples=num_train, holdout=zero_shot_holdout, **kw)
  test = images_lib.load_images(data, "test", num_examples=num_test, **kw)
  labels_lib.label_trie(test.class_names)  # validates the label sentences, naming a bad one
  config = im.ImageModelConfig(channels=tuple(channels), embed_dim=width, encoder=encoder, patch=patch,
                               decoder=decoder_config_for(test.class_names, layers=layers, width=width, heads=heads))
  t_load = time.perf_counter()
  trained = im.train_heads(train.images, train.labels, train.class_names, config, steps=steps,
                           batch_size=batch_size, learning_rate=learning_rate, seed=seed, token_dropout=token_dropout,
                           progress=progress)
  t_train = time.perf_counter()
  if zero_shot_holdout:
    seen = ~np.isin(test.labels, images_lib.heldout_ids(test.class_names))
    test_seen = images_lib.ImageDataset(test.images[seen], test.labels[seen], test.class_names)
  else:
    test_seen = test
  metrics = evaluate(trained, test_seen, config, beam_size=beam_size)
  zs = zero_shot(trained, test, config, beam_size=beam_size) if zero_shot_holdout else None
  t_eval = time.perf_counter()
  return {
      "data": data, "steps": steps, "batch_size": batch_size, "seed": seed, "config": config,
      "train": train, "test": test, "trained": trained, "metrics": metrics, "zero_shot": zs,
      "num_train": int(len(train.labels)), "num_test": int(len(test.labels)),
      "seconds": {"load": t_load - t0, "train": t_train - t_load, "eval": t_eval - t_train},
  }


_ROWS = [
    ("test images", "images", "{:.0f}"),
    ("accuracy (one-hot: argmax; string: rank classification)", "accuracy", "{:.4f}"),
    ("NLL per image, nats (string: -log p(label chars))", "nll_per_image", "{:.4f}"),
    ("NLL per image, trie-constrained (string)", "nll_per_image_constrained", "{:.4f}"),
    ("ECE, 15 bins (string: rank probs renormalised over K)", "ece", "{:.4f}"),
    ("leakage: mass on non-label strings (string)", "leakage", "{:.4f}"),
    ("accuracy, trie-constrained greedy (string)", "greedy_accuracy", "{:.4f}"),
    ("accuracy, trie-constrained beam (string)", "beam_accuracy", "{:.4f}"),
    ("accuracy, free greedy over 64 chars (string)", "free_greedy_accuracy", "{:.4f}"),
    ("free greedy output is a valid label (string)", "free_greedy_valid", "{:.4f}"),
]


def metrics_table(metrics: dict[str, dict[str, float]]) -> str:
  """Markdown table: one row per metric, one column per head."""
  lines = ["| metric | one-hot head | string head |", "|---|---:|---:|"]
  for title, key, fmt in _ROWS:
    cells = [fmt.format(metrics[h][key]) if h in metrics and key in metrics[h] else "—" for h in ("onehot", "string")]
    lines.append(f"| {title} | {cells[0]} | {cells[1]} |")
  return "\n".join(lines)


_ZS_ROWS = [
    ("held-out test images", "images", "{:.0f}"),
    ("one-hot head accuracy (no output for these classes)", "onehot_accuracy", "{:.4f}"),
    ("string: mean p(true label string)", "p_true_mean", "{:.4f}"),
    ("string: median p(true label string)", "p_true_median", "{:.4g}"),
    ("string: mean p(true label), trie-constrained over all combos", "p_true_constrained_mean", "{:.4f}"),
    ("string: mean mass on the held-out label set", "p_heldout_set_mean", "{:.4f}"),
    ("string: mean rank of true label among all combos", "rank_mean", "{:.2f}"),
    ("string: rank 1 (rank classification names it)", "rank1", "{:.4f}"),
    ("string: rank <= 3", "rank_le3", "{:.4f}"),
    ("string: named exactly, free greedy over chars", "named_free_greedy", "{:.4f}"),
    ("string: named exactly, trie greedy (all combos)", "named_trie_greedy", "{:.4f}"),
    ("string: named exactly, trie beam (all combos)", "named_trie_beam", "{:.4f}"),
    ("string: free greedy colour word correct", "colour_word_correct", "{:.4f}"),
    ("string: free greedy shape word correct", "shape_word_correct", "{:.4f}"),
    ("string, prior-corrected (PMI vs blank image): rank 1", "pmi_rank1", "{:.4f}"),
    ("string, prior-corrected: mean rank among all combos", "pmi_rank_mean", "{:.2f}"),
    ("seen-combination images: rank-classification accuracy", "rank_accuracy_seen", "{:.4f}"),
    ("seen-combination images: prior-corrected accuracy", "pmi_accuracy_seen", "{:.4f}"),
    ("chance of rank 1 (1/K)", "chance_rank1", "{:.4f}"),
]


def zero_shot_table(zs: dict[str, Any]) -> str:
  lines = ["| zero-shot metric | value |", "|---|---:|"]
  lines += [f"| {title} | {fmt.format(zs[key])} |" for title, key, fmt in _ZS_ROWS]
  return "\n".join(lines)


# ----------------------------------------------------------------------------- run directory


def image_config_from_dict(d: dict) -> im.ImageModelConfig:
  """Inverse of ``dataclasses.asdict(ImageModelConfig)`` (JSON lists back to tuples)."""
  return im.ImageModelConfig(**{**d, "channels": tuple(d["channels"]), "decoder": ModelConfig(**d["decoder"])})


def save_heads(out_dir: str, trained: im.TrainedHeads, config: im.ImageModelConfig, image_shape: Sequence[int],
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


def load_heads(out_dir: str, step: int | None = None) -> tuple[im.TrainedHeads, im.ImageModelConfig, list[str]]:
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
      out["onehot"] = jax.eval_shape(lambda: im.init_onehot(jax.random.key(0), config, k, shape))
    if meta["string_curve"]:
      out["string"] = jax.eval_shape(lambda: im.init_string(jax.random.key(0), config, shape))
    return {name: checkpoint.single_device(tree) for name, tree in out.items()}

  r = checkpoint.restore(out_dir, like, step)
  meta, config = r.meta, found["config"]
  trained = im.TrainedHeads(r.items.get("onehot"), r.items.get("string"), np.asarray(meta["onehot_classes"], np.int32),
                            np.asarray(meta["onehot_curve"], np.float32), np.asarray(meta["string_curve"], np.float32))
  return trained, config, list(meta["class_names"])
