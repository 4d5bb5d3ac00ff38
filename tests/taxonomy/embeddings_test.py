"""CLIP = classification (bitwise with one example per class; log-count adjustment otherwise); distances as softmaxes."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxequiv import bitwise
from jaxequiv.taxonomy import embeddings as E


def _emb(seed, n, d=8):
  return E.l2_normalize(jax.random.normal(jax.random.key(seed), (n, d)))


def test_clip_is_classification_with_text_embeddings_as_class_weights_bitwise():
  img, txt, scale = _emb(0, 10), _emb(1, 10), jnp.float32(14.3)
  labels = jnp.arange(10)   # one example per class, in class order

  @jax.jit
  def grads(img, txt, scale):
    clip = jax.grad(lambda u, v, s: E.clip_loss(u, v, s, symmetric=False), argnums=(0, 1, 2))(img, txt, scale)
    clf = jax.grad(E.linear_xent, argnums=(0, 1, 3))(img, txt, labels, scale)
    sym = jax.grad(E.clip_loss, argnums=(0, 1, 2))(img, txt, scale)
    both = jax.grad(lambda u, v, s: 0.5 * (E.linear_xent(u, v, labels, s) + E.linear_xent(v, u, labels, s)),
                    argnums=(0, 1, 2))(img, txt, scale)
    return clip, clf, sym, both

  clip, clf, sym, both = grads(img, txt, scale)
  r1, r2 = bitwise.compare_bits(clip, clf), bitwise.compare_bits(sym, both)
  print("image->text:", r1, "\nsymmetric:", r2)
  assert r1.equal and r1.elements == 161
  assert r2.equal


def test_clip_with_classes_out_of_batch_order_agrees_to_tolerance():
  img, txt = _emb(0, 10), _emb(1, 10)
  perm = jnp.array([3, 1, 4, 0, 5, 9, 2, 6, 8, 7])
  a = jax.jit(lambda u, v: E.clip_loss(u, v, 10.0, symmetric=False))(img, txt)
  b = jax.jit(lambda u, v: E.linear_xent(u, v[perm], jnp.argsort(perm), 10.0))(img, txt)
  print(f"permuted: |diff| = {abs(float(a) - float(b)):.2e}")
  assert abs(float(a) - float(b)) < 1e-5


@pytest.mark.parametrize("batch", [16, 256])   # B=64 runs in checks_test
def test_in_batch_clip_with_repeated_classes_is_a_log_count_adjusted_classifier(batch):
  k = 10
  classes = _emb(2, k)
  labels = jax.random.randint(jax.random.key(batch), (batch,), 0, k)
  img = E.l2_normalize(classes[labels] + 0.5 * jax.random.normal(jax.random.key(3), (batch, 8)))

  @jax.jit
  def both(img, classes):
    f_clip = lambda u, w: E.clip_loss(u, w[labels], 10.0, symmetric=False)
    f_adj = lambda u, w: E.count_adjusted_xent(u, w, labels, 10.0)
    return jax.value_and_grad(f_clip, argnums=(0, 1))(img, classes), jax.value_and_grad(f_adj, argnums=(0, 1))(img, classes)

  (l1, g1), (l2, g2) = both(img, classes)
  rel = bitwise.max_relative_error(g1, g2)
  print(f"B={batch}: |loss diff| = {abs(float(l1) - float(l2)):.2e}, max relative grad error {rel:.2e}")
  # float32: the in-batch softmax sums B terms where the classifier sums K; error grows ~ B * eps.
  assert abs(float(l1) - float(l2)) <= 1e-6 * batch
  assert rel <= 1e-5 * batch ** 0.5 + 1e-5
  plain = jax.jit(lambda u, w: E.linear_xent(u, w, labels, 10.0))(img, classes)
  assert abs(float(plain) - float(l1)) > 0.1   # negative: without the adjustment it is a different loss


def test_distance_softmax_is_a_linear_classifier_and_a_distribution():
  q, items = jax.random.normal(jax.random.key(0), (5, 6)), jax.random.normal(jax.random.key(1), (7, 6))

  @jax.jit
  def f(q, items):
    logits = E.distance_logits(q, items, 0.5)
    w, b = E.distance_as_linear(items, 0.5)
    return jax.nn.log_softmax(logits), jax.nn.log_softmax(q @ w.T + b)

  a, b = f(q, items)
  err = float(jnp.max(jnp.abs(a - b)))
  total = float(jnp.max(jnp.abs(jnp.sum(jnp.exp(a), -1) - 1)))
  print(f"max |log p_dist - log p_linear| = {err:.2e}; |sum p - 1| = {total:.2e}")
  assert err < 1e-4 and total < 1e-6
  assert float(E.distance_nll(q, items, jnp.zeros(5, jnp.int32), 0.5)) == pytest.approx(float(-jnp.mean(a[:, 0])), rel=1e-6)


def test_bad_shapes_raise():
  with pytest.raises(ValueError, match="same shape"):
    E.clip_loss(np.zeros((3, 4)), np.zeros((3, 5)), 1.0)
  with pytest.raises(ValueError, match="width"):
    E.linear_xent(np.zeros((3, 4)), np.zeros((2, 5)), np.zeros(3, np.int32), 1.0)
