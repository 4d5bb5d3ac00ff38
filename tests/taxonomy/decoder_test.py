"""taxonomy.decoder: the core transformer as a string head, conditioned by a prefix embedding."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxequiv import alphabet, bitwise, labels, losses, model
from jaxequiv.batches import LMBatch
from jaxequiv.taxonomy import decoder, nets, retrieval

TRIE = labels.label_trie(["ab.", "b.", "aab."])


def _head(prefix_len=1):
  return decoder.string_head(TRIE, width=16, num_layers=1, num_heads=2, prefix_len=prefix_len)


def test_zero_prefix_is_the_plain_lm_bitwise():
  head = _head(1)
  p = decoder.init(jax.random.key(0), 3, head)
  p["prefix"] = jax.tree.map(jnp.zeros_like, p["prefix"])
  tokens = jnp.asarray(head.rows.inputs)
  got = jax.jit(lambda p: decoder.logits(p, jnp.ones((3, 3)), tokens, head))(p)
  want = jax.jit(lambda q: model.apply(q, tokens, head.config))(p["transformer"])
  report = bitwise.compare_bits(got, want)
  print(report)
  assert report.equal and report.elements == 3 * head.config.seq_len * 64


@pytest.mark.parametrize("prefix_len", [1, 3])
def test_node_logits_are_the_logits_after_each_node_prefix(prefix_len):
  head = _head(prefix_len)
  p = decoder.init(jax.random.key(1), 3, head)
  h = jax.random.normal(jax.random.key(2), (2, 3))
  node = np.asarray(decoder.node_logits(p, h, head, batch_size=1))
  assert node.shape == (2, TRIE.num_nodes, 64)
  err = 0.0
  leaf = TRIE.leaf_class >= 0
  assert np.all(node[:, leaf] == 0.0) and np.all(head.node_label[~leaf] >= 0)
  for n in np.flatnonzero(~leaf):   # each inner node run on its own row
    prefix = labels.node_prefixes(TRIE)[n]
    row = [alphabet.BOS] + [alphabet.PAD] * (prefix_len - 1) + list(alphabet.encode(prefix) if prefix else [])
    row += [alphabet.PAD] * (head.config.seq_len - len(row))
    direct = decoder.logits(p, h, jnp.asarray([row, row], jnp.int32), head)[:, prefix_len - 1 + len(prefix)]
    err = max(err, float(np.max(np.abs(node[:, n] - np.asarray(direct)))))
  print(f"node logits vs a direct run per node: max error {err:.2e} (tolerance 1e-5)")
  assert err <= 1e-5


def test_the_prefix_conditions_every_position():
  head = _head(2)
  p = decoder.init(jax.random.key(3), 3, head)
  tokens = jnp.asarray(head.rows.inputs)
  a = decoder.logits(p, jnp.zeros((3, 3)), tokens, head)
  b = decoder.logits(p, jnp.ones((3, 3)), tokens, head)
  assert np.all(np.max(np.abs(np.asarray(a - b)), axis=-1) > 1e-4)   # every row, every position


def test_nll_is_lm_nll_of_the_label_rows_and_it_learns_a_mapping():
  head = _head(1)
  p0 = decoder.init(jax.random.key(4), 3, head)
  h, cls = jnp.eye(3), jnp.array([0, 1, 2])
  rows = LMBatch(*(a[np.array([0, 1, 2])] for a in head.rows))
  direct = losses.lm_nll(p0, rows, lambda p, t: decoder.logits(p, h, t, head))
  assert float(decoder.nll(p0, h, cls, head)) == float(direct)
  p, hist = nets.fit(lambda p, b: decoder.nll(p, b[0], b[1], head), p0, lambda i: (h, cls), 150, learning_rate=1e-2)
  scores = retrieval.decoder_to_atomic(TRIE, decoder.node_logits(p, h, head))
  print(f"nll {hist[0]:.3f} -> {hist[-1]:.3f}")
  assert hist[-1] < 0.1 * hist[0] and np.all(np.argmax(np.asarray(scores), 1) == np.arange(3))
  np.testing.assert_allclose(np.exp(np.asarray(scores)).sum(1), 1.0, atol=1e-5)


def test_bad_prefix_len_is_one_line():
  with pytest.raises(ValueError, match="prefix_len must be an int >= 1, got 0"):
    decoder.string_head(TRIE, prefix_len=0)
