"""Both image heads for many seeds at once: ``jax.vmap`` over seeds of training and of scoring.

``train_seeds`` trains S one-hot heads and S string heads, one per seed, with the
losses, optimizer and minibatch order of ``jaxequiv.labels.train`` (seed s: the keys
and batches ``train_heads(seed=s)`` uses), as one vmapped train step per head
(``jaxequiv.training.vmap_train_step``). ``onehot_logprobs`` and ``string_logprobs``
score test images with every seed's parameters: the one-hot head's log-softmax over
its classes, and the string head's rank classification of every label by teacher
forcing (``jaxequiv.labels.label_logprobs``, unconstrained: the probability of
spelling exactly that string).

Usage (``scripts/labels_compositional.py``; ``tests/labels/compositional_test.py`` runs it)::

  heads = train_seeds(train.images, train.labels, train.class_names, config, seeds=range(5), steps=1200)
  onehot_SxNxC = onehot_logprobs(heads, test.images, config)  # C = len(heads.onehot_classes)
  string_SxNxK = string_logprobs(heads, test.images, test.class_names, config)
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxequiv import labels as labels_lib
from jaxequiv import training
from jaxequiv.labels import predict
from jaxequiv.labels import train as train_lib
from jaxequiv.labels.heads import (ImageModelConfig, Params, decode_logits, gather_rows, image_embeddings,
                                   init_onehot, init_string, label_rows, onehot_logits)


class SeededHeads(NamedTuple):
  onehot_params: Params       # every leaf with a leading seed axis S
  string_params: Params
  onehot_classes: np.ndarray  # [K_train] global class id of each one-hot output
  onehot_curve: np.ndarray    # [S, steps] training loss (nats per image)
  string_curve: np.ndarray    # [S, steps] training loss (nats per character)


def train_seeds(images_NxHxWxC: np.ndarray, labels_N: np.ndarray, class_names: Sequence[str],
                config: ImageModelConfig, *, seeds: Sequence[int], steps: int, batch_size: int = 64,
                learning_rate: float = 3e-3,
                progress: Callable[[str, int, np.ndarray], None] | None = None) -> SeededHeads:
  """Trains one one-hot and one string head per seed, all seeds in one vmapped step per head.

  Seed s initialises from ``jax.random.split(jax.random.key(s))`` and draws the
  minibatches ``train.batch_indices(N, batch_size, steps, s)``, as ``train_heads``
  does; the one-hot head has one output per class present in ``labels_N``. A
  non-finite loss in any seed raises ``jaxequiv.training.NonFiniteLossError``.
  ``progress(head, step_index, losses_S)`` is called after every step.

  Returns:
    ``SeededHeads``: both heads' stacked parameters and ``[S, steps]`` loss curves.
  """
  seeds = [int(s) for s in seeds]
  if not seeds:
    raise ValueError("train_seeds needs at least one seed")
  onehot_classes = np.unique(labels_N).astype(np.int32)
  local = np.full(len(class_names), -1, np.int32)
  local[onehot_classes] = np.arange(len(onehot_classes), dtype=np.int32)
  rows = label_rows(list(class_names), config.decoder.seq_len)
  keys = [jax.random.split(jax.random.key(s)) for s in seeds]
  shape = tuple(int(d) for d in images_NxHxWxC.shape[1:])
  stack = lambda trees: jax.tree.map(lambda *x: jnp.stack(x), *trees)  # noqa: E731
  inits = {"onehot": stack([init_onehot(k[0], config, len(onehot_classes), shape) for k in keys]),
           "string": stack([init_string(k[1], config, shape) for k in keys])}
  make_batch = {"onehot": lambda idx: (images_NxHxWxC[idx], local[labels_N[idx]]),
                "string": lambda idx: (images_NxHxWxC[idx], gather_rows(rows, labels_N[idx]))}
  out = {}
  for head in ("onehot", "string"):
    optimizer = training.make_optimizer(train_lib.optimizer_config(learning_rate))
    state = training.init_train_state(inits[head], optimizer)
    step = training.jit_train_step(training.vmap_train_step(
        training.make_train_step(train_lib.head_loss_fn(head, config), optimizer), state))
    orders = [train_lib.batch_indices(len(labels_N), batch_size, steps, s) for s in seeds]
    curve = np.zeros((len(seeds), steps), np.float32)
    for i in range(steps):
      idx_SxB = np.stack([next(o) for o in orders])
      state, metrics = step(state, make_batch[head](idx_SxB))
      m = jax.device_get(metrics)
      training.check_finite(i + 1, [{k: float(np.max(np.abs(v))) for k, v in m.items()}])
      curve[:, i] = m["loss"]
      if progress is not None:
        progress(head, i, curve[:, i])
    out[head] = (state.params, curve)
  return SeededHeads(out["onehot"][0], out["string"][0], onehot_classes, out["onehot"][1], out["string"][1])


@functools.partial(jax.jit, static_argnums=2)
def _onehot_logprobs(params_S, images_NxHxWxC, config):
  logits = jax.vmap(onehot_logits, (0, None, None))(params_S, images_NxHxWxC, config)
  return jnp.swapaxes(jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1), 0, 1)  # [N, S, K]


def onehot_logprobs(heads: SeededHeads, images_NxHxWxC: np.ndarray, config: ImageModelConfig,
                    chunk: int = 256) -> np.ndarray:
  """``[S, N, K_train]`` log-probabilities of every seed's one-hot head over its classes (``onehot_classes``)."""
  fn = lambda x: _onehot_logprobs(heads.onehot_params, x, config)  # noqa: E731
  return np.swapaxes(predict.chunked(fn, np.asarray(images_NxHxWxC, np.float32), chunk)[0], 0, 1)


@functools.partial(jax.jit, static_argnums=4)
def _string_logprobs(params_S, trie, inputs_KxT, images_NxHxWxC, config):
  k, t = inputs_KxT.shape

  def one_seed(params):
    emb_NxE = image_embeddings(params, images_NxHxWxC, config)
    n = emb_NxE.shape[0]
    logits = decode_logits(params, jnp.repeat(emb_NxE, k, axis=0), jnp.tile(inputs_KxT, (n, 1)), config)
    return labels_lib.label_logprobs(trie, logits.reshape(n, k, t, -1))

  return jnp.swapaxes(jax.vmap(one_seed)(params_S), 0, 1)  # [N, S, K]


def string_logprobs(heads: SeededHeads, images_NxHxWxC: np.ndarray, class_names: Sequence[str],
                    config: ImageModelConfig, chunk: int = 8) -> np.ndarray:
  """``[S, N, K]`` log p(label k | image) of every seed's string head, teacher forcing over 64 characters.

  K = ``len(class_names)`` (any labels, also ones never trained on). ``chunk``
  images go through at a time (each makes S x chunk x K decoder rows).
  """
  trie = labels_lib.label_trie(list(class_names))
  inputs_KxT = jnp.asarray(labels_lib.label_model_inputs(trie).inputs)
  fn = lambda x: _string_logprobs(heads.string_params, trie, inputs_KxT, x, config)  # noqa: E731
  return np.swapaxes(predict.chunked(fn, np.asarray(images_NxHxWxC, np.float32), chunk)[0], 0, 1)
