"""The reductio: {relu, tanh} x {trained as an LM, trained as a classifier}, several seeds, one program per cell.

Each run trains ``jaxequiv.model``'s transformer with Adam, seeds vmapped, all steps in one
``training.jit_train_step`` dispatch (a ``lax.scan``). The LM objective sees
``lm_batch(canonical_order(S))``; the classifier objective sees ``pack(prefix_examples(S))`` for the same sentence
batches S, padded to fixed shapes. Because the two gradients are bitwise equal, so are the whole trajectories:
the objective axis of the grid differs by exactly zero, while the activation axis differs like any other
hyper-parameter, by about the seed spread.

Datasets (offline): the ``builtin`` corpus (``pydoc_data`` prose) and sklearn digits spelled as sentences, 64 pixel
letters (grey level 0..16 -> ``a``..``q``) then the label digit and ``'.'``, so classifying a digit is predicting the
65th character.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxequiv
from jaxequiv import alphabet, bitwise, model, training

OBJECTIVES = ("lm", "classifier")


def digit_sentences() -> tuple[list[str], list[str]]:
  """sklearn digits as 66-character sentences: (train, test) with the roles wing's fixed 80/20 split."""
  from jaxequiv.roles import digits  # pylint: disable=import-outside-toplevel
  images, labels = digits.images_0_16()
  letters = "abcdefghijklmnopq"
  s = ["".join(letters[int(v)] for v in img.ravel()) + str(int(y)) + "." for img, y in zip(images, labels)]
  tr, te = digits.split(len(s))
  return [s[i] for i in tr], [s[i] for i in te]


def corpus_sentences(max_len: int = 64) -> tuple[list[str], list[str]]:
  """The library's ``builtin`` corpus (``pydoc_data``), sentences of at most ``max_len`` chars: (train, val)."""
  try:
    from jaxequiv.lm import corpus  # pylint: disable=import-outside-toplevel
  except ImportError:  # before the restructuring
    from jaxequiv import corpus  # pylint: disable=import-outside-toplevel,no-name-in-module
  sentences = [s for s in corpus.load_sentences("builtin", max_len=max_len, too_long="split") if len(s) <= max_len]
  return corpus.train_val_split(sentences, 0.1, seed=0)


def make_batches(sentences: list[str], objective: str, seq_len: int, batch_size: int, steps: int, seed: int):
  """Stacked fixed-shape batches ``[steps, ...]`` for one objective; the sentence draws depend only on ``seed``."""
  if objective not in OBJECTIVES:
    raise ValueError(f"objective must be one of {OBJECTIVES}, got {objective!r}")
  rng = np.random.default_rng(seed)
  out = []
  for _ in range(steps):
    s = [sentences[i] for i in rng.choice(len(sentences), batch_size, replace=False)]
    if objective == "lm":
      out.append(jaxequiv.lm_batch(jaxequiv.canonical_order(s), seq_len, num_rows=batch_size))
    else:
      packed = jaxequiv.pack(jaxequiv.prefix_examples(s), seq_len, num_rows=batch_size)
      out.append(jaxequiv.pad_examples(packed, batch_size * seq_len))
  return jax.tree.map(lambda *xs: np.stack(xs), *out)


def train_cell(sentences: list[str], cfg: model.ModelConfig, objective: str, seeds: list[int], steps: int,
               batch_size: int = 16, lr: float = 3e-3) -> Any:
  """Final parameters ``[S, ...]`` of one grid cell, one run per seed (vmapped; all steps in one dispatch)."""
  apply_fn = model.make_apply(cfg)
  loss = jaxequiv.lm_nll if objective == "lm" else jaxequiv.classification_xent
  loss = functools.partial(loss, apply_fn=apply_fn)
  opt = optax.adam(lr)
  # Steps x seeds: one vmapped step per scan iteration, all ``steps`` in one dispatch.
  batches_KxS = jax.tree.map(lambda *xs: np.stack(xs, 1),
                             *[make_batches(sentences, objective, cfg.seq_len, batch_size, steps, s) for s in seeds])
  params_S = jax.jit(jax.vmap(lambda key: model.init(key, cfg)))(jnp.stack([jax.random.key(s) for s in seeds]))
  state = training.init_train_state(params_S, opt)
  run = training.jit_train_step(training.vmap_train_step(training.make_train_step(loss, opt), state),
                                steps_per_call=steps)
  state, _ = run(state, jax.tree.map(lambda a: jnp.asarray(a if steps > 1 else a[0]), batches_KxS))
  return state.params


def evaluate(params_S, sentences: list[str], cfg: model.ModelConfig, label_position: int | None = None):
  """Per seed: NLL (nats/char) and next-char accuracy on ``sentences``; with ``label_position``, the digit-label
  accuracy and NLL (renormalised over the 10 digits) at that position."""
  apply_fn = model.make_apply(cfg)
  b = jax.tree.map(jnp.asarray, jaxequiv.lm_batch(sentences, cfg.seq_len))
  digit_ids = jnp.asarray(alphabet.encode("0123456789"))

  @jax.jit
  @jax.vmap
  def ev(params):
    logits = apply_fn(params, b.inputs)
    m = b.mask.astype(jnp.float32)
    nll = jnp.sum(jaxequiv.token_xent(logits, b.targets) * m) / jnp.sum(m)
    acc = jnp.sum((jnp.argmax(logits, -1) == b.targets) * m) / jnp.sum(m)
    out = {"nll": nll, "acc": acc}
    if label_position is not None:
      lp = jax.nn.log_softmax(logits[:, label_position][:, digit_ids])
      y = b.targets[:, label_position] - digit_ids[0]
      out["label_acc"] = jnp.mean(jnp.argmax(lp, -1) == y)
      out["label_nll"] = -jnp.mean(jnp.take_along_axis(lp, y[:, None], -1))
    return out

  return jax.tree.map(np.asarray, ev(params_S))


def run_grid(dataset: str, seeds: list[int], steps: int, batch_size: int = 16, width: int = 32, num_layers: int = 2,
             activations: tuple[str, ...] = ("relu", "tanh"), objectives: tuple[str, ...] = OBJECTIVES) -> dict[str, Any]:
  """The 2x2 grid on ``dataset`` (``"builtin"`` or ``"digits"``): per-cell metrics and the objective-axis bit check.

  With ``objectives=("lm",)`` only the activation axis is trained (half the cost; no bit check, since the classifier
  trajectory, bitwise equal to the LM's, is not run).
  """
  if not objectives or any(o not in OBJECTIVES for o in objectives):
    raise ValueError(f"objectives must be a non-empty subset of {OBJECTIVES}, got {objectives}")
  if dataset == "digits":
    train, test = digit_sentences()
    seq_len, label_position = 66, 64
  elif dataset == "builtin":
    train, test = corpus_sentences()
    seq_len, label_position = 64, None
  else:
    raise ValueError(f"dataset must be 'builtin' or 'digits', got {dataset!r}")
  out: dict[str, Any] = {"dataset": dataset, "train_sentences": len(train), "eval_sentences": len(test), "cells": {}}
  for act in activations:
    cfg = model.ModelConfig(num_layers=num_layers, width=width, num_heads=2, seq_len=seq_len, activation=act)
    params = {obj: train_cell(train, cfg, obj, seeds, steps, batch_size) for obj in objectives}
    for obj in objectives:
      m = evaluate(params[obj], test, cfg, label_position)
      out["cells"][f"{act}/{obj}"] = {k: v.tolist() for k, v in m.items()}
    if len(params) == len(OBJECTIVES):
      report = bitwise.compare_bits(params["lm"], params["classifier"])
      out[f"{act}/bits"] = {"elements": report.elements, "mismatched": report.mismatched_elements}
  return out
