"""What trained heads say about images: one-hot logits, the string head's scores against a trie, free greedy text.

``string_scores`` scores every label of a ``LabelTrie`` by teacher forcing (rank
classification), under trie-constrained steps, and decodes with trie-constrained
greedy and beam search; ``greedy_unconstrained`` lets the string head spell freely
over all 64 characters. Images go through in zero-padded chunks of a fixed size,
so each function compiles once per chunk size.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from jaxequiv import alphabet, sampler
from jaxequiv import labels as labels_lib
from jaxequiv.labels.heads import ImageModelConfig, Params, decode_logits, image_embeddings, onehot_logits

onehot_logits_jit = jax.jit(onehot_logits, static_argnums=2)


def chunked(fn, x: np.ndarray, chunk: int) -> list[np.ndarray]:
  """Applies ``fn`` to fixed-size chunks of ``x`` (last one zero-padded, so one compile); trims.

  ``fn`` returns an array or a tuple of arrays with a leading axis of ``chunk``;
  the result is the list of their concatenations over the chunks.

  Examples:
    >>> [a.tolist() for a in chunked(lambda v: (v * 2, v + 1), np.arange(5), 2)]
    [[0, 2, 4, 6, 8], [1, 2, 3, 4, 5]]
  """
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
def _score_fn(config: ImageModelConfig, beam_size: int):
  """Jitted ``(params, trie, inputs_KxT, images) -> (logp, logp_constrained, greedy, beam)``."""

  @jax.jit
  def score(params, trie, inputs_KxT, x):
    k, t = inputs_KxT.shape
    emb_NxE = image_embeddings(params, x, config)
    n = emb_NxE.shape[0]
    logits = decode_logits(params, jnp.repeat(emb_NxE, k, axis=0), jnp.tile(inputs_KxT, (n, 1)), config)
    logits_NxKxTx64 = logits.reshape(n, k, t, -1)
    free = labels_lib.label_logprobs(trie, logits_NxKxTx64)
    cons = labels_lib.label_logprobs(trie, logits_NxKxTx64, constrained=True)
    step = lambda e: (lambda tok, pos: decode_logits(params, e, tok, config)[:, pos])  # noqa: E731
    greedy = labels_lib.greedy_decode(trie, step(emb_NxE), n)
    beam = labels_lib.beam_decode(trie, step(jnp.repeat(emb_NxE, beam_size, axis=0)), n, beam_size)
    return free, cons, greedy.classes, beam.classes

  return score


def string_scores(params: Params, images_NxHxWxC: np.ndarray, trie: labels_lib.LabelTrie, config: ImageModelConfig,
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
  free, cons, greedy, beam = chunked(score, np.asarray(images_NxHxWxC, np.float32), chunk)
  return {"logp": free, "logp_constrained": cons, "greedy": greedy, "beam": beam}


@functools.partial(jax.jit, static_argnames="config")
def _greedy_ids(params: Params, images_BxHxWxC: jax.Array, config: ImageModelConfig) -> sampler.Samples:
  """Greedy decoding of the string head through the generic sampler's ``while_loop`` (temperature 0)."""
  emb = image_embeddings(params, images_BxHxWxC, config)
  b, t = images_BxHxWxC.shape[0], config.decoder.seq_len
  step = sampler.full_step_fn(params, lambda p, tokens: decode_logits(p, emb, tokens, config))
  empty = jnp.full((b, t), alphabet.PAD, jnp.int32)
  return sampler.sample_tokens(step, sampler.empty_rows(b, t), jax.random.key(0), empty, jnp.zeros(b, jnp.int32),
                               temperature=0.0)


def greedy_unconstrained(params: Params, images_NxHxWxC: jax.Array, config: ImageModelConfig,
                         chunk: int = 128) -> list[str]:
  """Free greedy decoding over all 64 characters until ``'.'`` or ``seq_len``: one string per image.

  No trie: the decoder may spell a label that is not a class, or a held-out one.
  The decoder is a conditional LM of the label, so this is the LM's own sampler
  (``jaxequiv.sampler.sample_tokens``) at temperature 0. Images are processed in
  zero-padded chunks of ``chunk`` (one compile per chunk size).
  """
  x = np.asarray(images_NxHxWxC, np.float32)
  if not len(x):
    return []
  fn = lambda part: tuple(_greedy_ids(params, jnp.asarray(part), config))  # noqa: E731
  return sampler.to_strings(sampler.Samples(*chunked(fn, x, chunk)))
