"""Test metrics of trained image heads: accuracy, NLL, calibration, decoding; and the zero-shot test.

``evaluate`` measures both heads on a test set (one-hot: accuracy, NLL per image,
ECE; string: rank classification, leakage, trie-constrained greedy and beam,
free greedy). ``zero_shot`` (shapes) measures how the string head scores and
names held-out colour-shape combinations, which the one-hot head cannot output.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from jaxequiv import labels as labels_lib
from jaxequiv.labels import calibration, predict
from jaxequiv.labels import images as images_lib
from jaxequiv.labels.heads import ImageModelConfig
from jaxequiv.labels.train import TrainedHeads


def _log_softmax(x: np.ndarray) -> np.ndarray:
  x = x - x.max(-1, keepdims=True)
  return x - np.log(np.exp(x).sum(-1, keepdims=True))


def evaluate(trained: TrainedHeads, test: images_lib.ImageDataset, config: ImageModelConfig,
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
    logits = predict.chunked(lambda v: predict.onehot_logits_jit(trained.onehot_params, v, config), x, 256)[0]
    logp = _log_softmax(logits.astype(np.float64))
    local = np.searchsorted(trained.onehot_classes, y)
    pred = trained.onehot_classes[logp.argmax(-1)]
    out["onehot"] = {
        "images": float(len(y)),
        "accuracy": float(np.mean(pred == y)),
        "nll_per_image": float(-np.mean(logp[np.arange(len(y)), local])),
        "ece": calibration.expected_calibration_error(np.exp(logp.max(-1)), pred == y),
    }
  if trained.string_params is not None:
    s = predict.string_scores(trained.string_params, test.images, trie, config, beam_size=beam_size)
    idx = np.arange(len(y_trie))
    renorm = _log_softmax(s["logp"].astype(np.float64))
    rank_pred = s["logp"].argmax(-1)
    free = predict.greedy_unconstrained(trained.string_params, test.images, config)
    out["string"] = {
        "images": float(len(y_trie)),
        "accuracy": float(np.mean(rank_pred == y_trie)),  # rank classification
        "nll_per_image": float(-np.mean(s["logp"][idx, y_trie])),
        "nll_per_image_constrained": float(-np.mean(s["logp_constrained"][idx, y_trie])),
        "ece": calibration.expected_calibration_error(np.exp(renorm.max(-1)), rank_pred == y_trie),
        "leakage": float(np.mean(np.asarray(labels_lib.leakage(s["logp"])))),
        "greedy_accuracy": float(np.mean(s["greedy"] == y_trie)),
        "beam_accuracy": float(np.mean(s["beam"] == y_trie)),
        "free_greedy_accuracy": float(np.mean(np.asarray(free) == np.asarray(trie_labels)[y_trie])),
        "free_greedy_valid": float(np.mean(np.isin(free, trie_labels))),
    }
  return out


def zero_shot(trained: TrainedHeads, test: images_lib.ImageDataset, config: ImageModelConfig,
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
  s_all = predict.string_scores(trained.string_params, test.images, trie, config, beam_size=beam_size)
  s = {k: v[sel] for k, v in s_all.items()}
  x, y = test.images[sel], test.labels[sel]
  idx = np.arange(len(y))
  logp_true = s["logp"][idx, y]
  rank = 1 + np.sum(s["logp"] > logp_true[:, None], axis=-1)
  blank = np.full((1, *test.images.shape[1:]), test.images.mean(), np.float32)
  prior_K = predict.string_scores(trained.string_params, blank, trie, config, beam_size=beam_size)["logp"][0]
  pmi_all = s_all["logp"] - prior_K
  pmi = pmi_all[sel]
  pmi_rank = 1 + np.sum(pmi > pmi[idx, y][:, None], axis=-1)
  free = predict.greedy_unconstrained(trained.string_params, x, config)
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


def examples(trained: TrainedHeads, test: images_lib.ImageDataset, config: ImageModelConfig, num: int = 4,
             *, beam_size: int = 4) -> list[dict[str, Any]]:
  """The first ``num`` test images as the heads see them, for the report.

  Each row holds the true ``label``; the one-hot head's top label and its
  probability (``onehot``, ``p_onehot``); the string head's top label by rank
  classification and the probability of spelling exactly that string over the
  64 characters (``string``, ``p_string``), the same renormalised over the K
  labels (``p_string_k``), and its free greedy spelling (``spelled``).
  """
  names = list(test.class_names)
  x, y = test.images[:num], test.labels[:num]
  rows: list[dict[str, Any]] = [{"label": names[k]} for k in y]
  if trained.onehot_params is not None:
    logits = predict.chunked(lambda v: predict.onehot_logits_jit(trained.onehot_params, v, config), x, 256)[0]
    for row, logp in zip(rows, _log_softmax(logits.astype(np.float64))):
      k = int(logp.argmax())
      row.update(onehot=names[trained.onehot_classes[k]], p_onehot=float(np.exp(logp[k])))
  if trained.string_params is not None:
    s = predict.string_scores(trained.string_params, x, labels_lib.label_trie(names), config, beam_size=beam_size)
    spelled = predict.greedy_unconstrained(trained.string_params, x, config)
    for row, logp, free in zip(rows, s["logp"].astype(np.float64), spelled):
      k = int(logp.argmax())
      row.update(string=names[k], p_string=float(np.exp(logp[k])), p_string_k=float(np.exp(_log_softmax(logp)[k])),
                 spelled=free)
  return rows
