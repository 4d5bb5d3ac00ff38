"""Training both image heads on the same minibatches through ``jaxequiv.training``.

``train_heads`` trains the one-hot and the string head of ``jaxequiv.labels.heads``
with the shared train step and optimizer the text models use; ``TrainedHeads``
holds both parameter trees and loss curves.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Sequence
from typing import NamedTuple

import jax
import numpy as np

from jaxequiv import alphabet, batches, training
from jaxequiv.labels.heads import (ImageModelConfig, Params, gather_rows, init_onehot, init_string, label_rows,
                                   onehot_loss, string_loss)


def drop_tokens(batch: batches.LMBatch, rate: float, rng: np.random.Generator) -> batches.LMBatch:
  """Replaces each input character after ``BOS`` by ``PAD`` with probability ``rate`` (targets unchanged)."""
  if rate <= 0.0:
    return batch
  if not 0.0 <= rate < 1.0:
    raise ValueError(f"token dropout rate must be in [0, 1), got {rate}")
  inputs = np.asarray(batch.inputs)
  drop = (rng.random(inputs.shape) < rate) & (inputs != alphabet.BOS) & (inputs != alphabet.PAD)
  return batches.LMBatch(np.where(drop, alphabet.PAD, inputs).astype(inputs.dtype), batch.targets, batch.mask)



def batch_indices(n: int, batch_size: int, steps: int, seed: int) -> Iterator[np.ndarray]:
  """Seeded minibatch indices: reshuffled epochs, ``steps`` batches of ``batch_size``."""
  if n < 1:
    raise ValueError("cannot draw batches from an empty data set")
  rng = np.random.default_rng(np.random.SeedSequence([seed, 3]))
  perm, pos = rng.permutation(n), 0
  for _ in range(steps):
    idx = []
    while len(idx) < batch_size:
      if pos == n:
        perm, pos = rng.permutation(n), 0
      take = min(batch_size - len(idx), n - pos)
      idx.extend(perm[pos:pos + take])
      pos += take
    yield np.asarray(idx)


def optimizer_config(learning_rate: float) -> training.OptimizerConfig:
  """Adam at a constant ``learning_rate`` (b2 = 0.999, no clipping, no weight decay) in the shared optimizer.

  With no warm-up and ``end_lr_fraction=1`` the schedule is constant, so its
  length (``steps=1``) does not matter and one compile serves every run length.
  """
  return training.OptimizerConfig(steps=1, learning_rate=learning_rate, warmup_steps=0, end_lr_fraction=1.0,
                                  weight_decay=0.0, clip_norm=None, b1=0.9, b2=0.999, eps=1e-8)


def head_loss_fn(head: str, config: ImageModelConfig) -> Callable[[Params, tuple], jax.Array]:
  """``loss(params, (images, targets))`` of a head: ``onehot_loss`` (targets: labels ``[N]``) or
  ``string_loss`` (targets: the ``LMBatch`` of the label sentences)."""
  if head == "onehot":
    return lambda p, b: onehot_loss(p, b[0], b[1], config)
  if head == "string":
    return lambda p, b: string_loss(p, b[0], b[1], config)
  raise ValueError(f"unknown head {head!r}; use 'onehot' and/or 'string'")


@functools.lru_cache(maxsize=32)
def _cached_step(config: ImageModelConfig, learning_rate: float, head: str):
  """``jaxequiv.training``'s train step, jitted with the state donated, per (config, learning rate, head)."""
  optimizer = training.make_optimizer(optimizer_config(learning_rate))
  return training.jit_train_step(training.make_train_step(head_loss_fn(head, config), optimizer)), optimizer


class TrainedHeads(NamedTuple):
  onehot_params: Params
  string_params: Params
  onehot_classes: np.ndarray  # [K_train] global class id of each one-hot output
  onehot_curve: np.ndarray    # [steps] training loss (nats per image)
  string_curve: np.ndarray    # [steps] training loss (nats per character)


def train_heads(
    images_NxHxWxC: np.ndarray,
    labels_N: np.ndarray,
    class_names: Sequence[str],
    config: ImageModelConfig,
    *,
    steps: int = 300,
    batch_size: int = 64,
    learning_rate: float = 3e-3,
    seed: int = 0,
    heads: Sequence[str] = ("onehot", "string"),
    token_dropout: float = 0.0,
    progress: Callable[[str, int, float], None] | None = None,
) -> TrainedHeads:
  """Trains the one-hot and the string model on the same minibatches (Adam, ``steps`` each).

  Both go through ``jaxequiv.training`` (``make_train_step``, ``make_optimizer``
  with ``optimizer_config(learning_rate)``), the stack the text models use. A
  non-finite loss raises ``jaxequiv.training.NonFiniteLossError`` naming the step.

  The one-hot head gets one output per class present in ``labels_N``
  (``onehot_classes``): with held-out combinations it cannot name them at all.

  ``token_dropout`` (string head, default 0): each input character after ``BOS``
  is replaced by ``PAD`` with this probability (word dropout, Bowman et al.
  2016), so the decoder must predict more of the label from the image than from
  its prefix. Targets and mask are unchanged; the loss is still ``lm_nll``.

  Returns:
    ``TrainedHeads`` with both parameter trees and loss curves.
  """
  class_names = list(class_names)
  onehot_classes = np.unique(labels_N).astype(np.int32)
  local = np.full(len(class_names), -1, np.int32)
  local[onehot_classes] = np.arange(len(onehot_classes), dtype=np.int32)
  rows = label_rows(class_names, config.decoder.seq_len)
  k_onehot, k_string = jax.random.split(jax.random.key(seed))
  image_shape = images_NxHxWxC.shape[1:]
  out = {"onehot": (None, np.zeros(0, np.float32)), "string": (None, np.zeros(0, np.float32))}
  for head in heads:
    if head == "onehot":
      params = init_onehot(k_onehot, config, len(onehot_classes), image_shape)
      make_batch = lambda idx: (images_NxHxWxC[idx], local[labels_N[idx]])  # noqa: E731
    elif head == "string":
      params = init_string(k_string, config, image_shape)
      drop_rng = np.random.default_rng(np.random.SeedSequence([seed, 5]))
      make_batch = lambda idx: (images_NxHxWxC[idx],  # noqa: E731
                                drop_tokens(gather_rows(rows, labels_N[idx]), token_dropout, drop_rng))
    else:
      raise ValueError(f"unknown head {head!r}; use 'onehot' and/or 'string'")
    step, optimizer = _cached_step(config, float(learning_rate), head)
    state = training.init_train_state(params, optimizer)
    curve = np.zeros(steps, np.float32)
    for i, idx in enumerate(batch_indices(len(labels_N), batch_size, steps, seed)):
      state, metrics = step(state, make_batch(idx))
      m = jax.device_get(metrics)
      training.check_finite(i + 1, [m])
      curve[i] = m["loss"]
      if progress is not None:
        progress(head, i, curve[i])
    out[head] = (state.params, curve)
  return TrainedHeads(out["onehot"][0], out["string"][0], onehot_classes, out["onehot"][1], out["string"][1])
