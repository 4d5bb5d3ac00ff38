r"""Embeddings and distances as conditional likelihoods.

* **CLIP is classification.** CLIP's image-to-text loss on a batch of B pairs
  is the cross-entropy of a linear classifier on the image embeddings whose
  class weights are the B text embeddings (times the logit scale). With one
  example per class, in class order, the two are the same program and agree
  bit for bit. With repeated classes, class c occurring :math:`n_c` times,
  the in-batch softmax sums :math:`n_c` equal columns:

  .. math:: \ell_i = -s_{y_i} + \log \sum_c n_c e^{s_c}
     = \underbrace{-(s_{y_i} + \log n_{y_i}) + \log \sum_c e^{s_c + \log n_c}}_{
       \text{classifier with logit adjustment } \log n_c} + \log n_{y_i}

  (``count_adjusted_xent``): a classifier over the distinct classes with a
  log-count logit adjustment, plus a constant.
* **A softmax over negative distances** :math:`p(j \mid q) \propto
  e^{-\lVert q - x_j\rVert^2/\tau}` is a conditional distribution over items
  and a metric-learning loss (NCA, prototypical networks) is its NLL. The
  :math:`\lVert q\rVert^2` term cancels, so it is a linear classifier with
  weights :math:`2x_j/\tau` and biases :math:`-\lVert x_j\rVert^2/\tau`.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import optax


def _xent(logits_BxK: jax.Array, labels_B: jax.Array) -> jax.Array:
  return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits_BxK, labels_B))


def l2_normalize(x_BxD: jax.Array, eps: float = 1e-12) -> jax.Array:
  """Rows scaled to unit norm (``eps`` guards zero rows)."""
  return x_BxD / jnp.sqrt(jnp.maximum(jnp.sum(jnp.square(x_BxD), axis=-1, keepdims=True), eps))


def linear_xent(features_BxD: jax.Array, class_weights_KxD: jax.Array, labels_B: jax.Array,
                logit_scale: jax.Array | float) -> jax.Array:
  r"""Cross-entropy of the linear classifier ``logit_scale * features @ W^T``, mean over B.

  Args:
    features_BxD: inputs' embeddings.
    class_weights_KxD: one weight vector per class.
    labels_B: int class ids in ``0..K-1``.
    logit_scale: the inverse temperature :math:`1/\tau`.
  """
  if features_BxD.shape[-1] != class_weights_KxD.shape[-1]:
    raise ValueError(f"features {features_BxD.shape} and class weights {class_weights_KxD.shape} differ in width")
  return _xent(logit_scale * (features_BxD @ class_weights_KxD.T), labels_B)


def clip_loss(image_BxD: jax.Array, text_BxD: jax.Array, logit_scale: jax.Array | float,
              symmetric: bool = True) -> jax.Array:
  r"""CLIP's in-batch contrastive loss (InfoNCE): pair i is the positive of row i.

  ``logits = logit_scale * image @ text^T``; image-to-text cross-entropy with
  targets ``arange(B)``, averaged with text-to-image when ``symmetric``.
  Embeddings are used as given (normalise them first for CLIP proper).

  Examples:
    >>> import jax.numpy as jnp
    >>> u = jnp.eye(2)
    >>> round(float(clip_loss(u, u, 1.0)), 4)   # log(1 + e^-1)
    0.3133
  """
  if image_BxD.shape != text_BxD.shape:
    raise ValueError(f"image {image_BxD.shape} and text {text_BxD.shape} embeddings must have the same shape")
  targets = jnp.arange(image_BxD.shape[0])
  i2t = _xent(logit_scale * (image_BxD @ text_BxD.T), targets)
  if not symmetric:
    return i2t
  return 0.5 * (i2t + _xent(logit_scale * (text_BxD @ image_BxD.T), targets))


def count_adjusted_xent(features_BxD: jax.Array, class_weights_KxD: jax.Array, labels_B: jax.Array,
                        logit_scale: jax.Array | float) -> jax.Array:
  r"""In-batch CLIP written as a K-way classifier: logits :math:`s_c + \log n_c`, plus :math:`\log n_{y}`.

  :math:`n_c` counts label c in the batch (classes absent from it get
  :math:`-\infty`). Equals ``clip_loss(features, class_weights[labels],
  logit_scale, symmetric=False)`` in real arithmetic.
  """
  k = class_weights_KxD.shape[0]
  log_n_K = jnp.log(jnp.zeros((k,)).at[labels_B].add(1.0))
  logits = logit_scale * (features_BxD @ class_weights_KxD.T) + log_n_K
  return _xent(logits, labels_B) + jnp.mean(log_n_K[labels_B])


def distance_logits(query_BxD: jax.Array, items_NxD: jax.Array, temperature: float = 1.0) -> jax.Array:
  r"""``[B, N]`` logits :math:`-\lVert q_b - x_n \rVert^2 / \tau` of the distribution over items."""
  diff = query_BxD[:, None, :] - items_NxD[None, :, :]
  return -jnp.sum(jnp.square(diff), axis=-1) / temperature


def distance_nll(query_BxD: jax.Array, items_NxD: jax.Array, targets_B: jax.Array, temperature: float = 1.0) -> jax.Array:
  """Metric-learning loss (NCA / prototypical networks) = mean NLL of ``softmax(distance_logits)``."""
  return _xent(distance_logits(query_BxD, items_NxD, temperature), targets_B)


def distance_as_linear(items_NxD: jax.Array, temperature: float = 1.0) -> tuple[jax.Array, jax.Array]:
  r"""The equivalent linear classifier: weights :math:`2x_n/\tau` ``[N, D]`` and biases :math:`-\lVert x_n\rVert^2/\tau` ``[N]``."""
  return 2.0 * items_NxD / temperature, -jnp.sum(jnp.square(items_NxD), axis=-1) / temperature


def infonce_bound(xent: float, batch_size: int) -> float:
  r"""InfoNCE's lower bound on mutual information, :math:`\log N - \mathcal L` (nats)."""
  return math.log(batch_size) - float(xent)
