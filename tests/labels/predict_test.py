"""Tests for jaxequiv.labels.predict: trie-constrained scores and decoding, free greedy decoding."""

import jax.numpy as jnp
import numpy as np

from jaxequiv import alphabet, labels
from jaxequiv.labels import heads as im
from jaxequiv.labels import predict
from tests.labels.tiny import CFG, NAMES


def test_constrained_decoding_yields_valid_labels(data, string_params):
  trie = labels.label_trie(NAMES)
  s = predict.string_scores(string_params, data.images[:10], trie, CFG, beam_size=3)
  wide = predict.string_scores(string_params, data.images[:10], trie, CFG, beam_size=trie.num_classes)
  for key in ("greedy", "beam"):
    assert s[key].shape == (10,), (key, s[key].shape)
  # A beam as wide as K is exact: it finds the argmax of the constrained distribution computed by teacher forcing.
  np.testing.assert_array_equal(wide["beam"], np.argmax(s["logp_constrained"], -1))
  # The constrained distribution is proper: it sums to 1 over the K labels.
  np.testing.assert_allclose(np.exp(s["logp_constrained"]).sum(-1), 1.0, atol=1e-5)
  # Leakage is in [0, 1]; an untrained model spells mostly non-labels.
  leak = np.asarray(labels.leakage(s["logp"]))
  assert np.all((0 <= leak) & (leak <= 1)) and leak.mean() > 0.5
  free = predict.greedy_unconstrained(string_params, data.images[:4], CFG, chunk=3)  # two chunks, one padded
  assert free == _greedy_by_hand(string_params, data.images[:4])


def _greedy_by_hand(params, images):
  """Reference: argmax of the full-recompute decoder logits, one position at a time, in numpy."""
  emb = im.image_embeddings(params, jnp.asarray(images), CFG)
  t_max = CFG.decoder.seq_len
  tokens = np.full((len(images), t_max), alphabet.PAD, np.int32)
  tokens[:, 0] = alphabet.BOS
  out = [[] for _ in images]
  done = np.zeros(len(images), bool)
  for t in range(t_max):
    nxt = np.asarray(jnp.argmax(im.decode_logits(params, emb, jnp.asarray(tokens), CFG)[:, t], -1))
    for i in np.flatnonzero(~done):
      out[i].append(int(nxt[i]))
    done |= nxt == alphabet.PERIOD
    if t + 1 < t_max:
      tokens[:, t + 1] = nxt
  return [alphabet.decode(np.array(o)) for o in out]
