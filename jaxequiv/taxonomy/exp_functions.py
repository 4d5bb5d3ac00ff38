"""Function-valued models: a CNP against the exact GP posterior, and expression recovery from point sets.

CNP: trained on fresh GP draws (RBF, lengthscale 0.4, x in [-2, 2], noise 0.1)
each step (``exp_cnp.train``, which also trains to a plateau at the reference
widths); evaluated on held-out draws against the exact GP posterior
predictive NLL (the floor) and the GP prior NLL (a context-blind model).

Expressions: the grammar's strings up to ``max_len`` symbols, deduplicated by
their values on a grid, are K labels. A DeepSets encoder (permutation-invariant:
mean of per-point features) reads a point set ``{(x_i, f(x_i))}`` with fresh x
each time; two heads, a K-way classifier and a string head over the
expressions' trie (the core causal transformer reading the encoder's features
as a prefix embedding, ``taxonomy.decoder``, trained with ``lm_nll``; the same
trie converts each head into the other). Exact recovery: the decoded expression
equals the target's on the grid. NLL: nats per test set of the true expression
(the decoder's trie-constrained probability, normalised over the K strings).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxequiv import labels
from jaxequiv.taxonomy import decoder, exp_cnp, expressions, nets, retrieval


def cnp_vs_gp(steps: int = 3000, tasks_per_step: int = 16, num_ctx: int = 10, num_tgt: int = 20,
              test_tasks: int = 256, seed: int = 0) -> dict[str, Any]:
  """Trains one CNP (width 64, Adam 1e-3) on fresh GP draws each step for ``steps`` steps (``exp_cnp.train``, no
  early stop); returns test NLL per target point for the CNP, the GP posterior and the GP prior."""
  cfg = exp_cnp.NPConfig(model="cnp", width=64, enc_hidden=2, batch=tasks_per_step, num_ctx=num_ctx, num_tgt=num_tgt,
                         lr=1e-3, max_steps=steps, eval_every=min(steps, 1000), patience=steps,  # never reached
                         test_tasks=test_tasks, seeds=1, seed=seed)
  r = exp_cnp.train(cfg, log=None)
  return {"cnp_nll": r["final_test_nll"][0], "gp_posterior_nll": r["gp_posterior_nll"],
          "gp_prior_nll": r["gp_prior_nll"], "train_tasks": steps * tasks_per_step, "steps": steps,
          "final_train_nll": r["train_nll_SxE"][0][-1], "tasks_per_step": tasks_per_step,
          "context_points": [3, num_ctx], "target_points": num_tgt,
          "gp": {"kernel": "RBF", "lengthscale": 0.4, "amplitude": 1.0, "noise": 0.1, "x_range": [-2, 2]},
          "encoder": [2, 64, 64, 64], "decoder": [65, 64, 64, 2], "test_tasks": test_tasks,
          "params": jax.tree.map(lambda x: x[0], r["params"]), "test": r["test"]}


def _point_features(x_BxP: jax.Array, y_BxP: jax.Array) -> jax.Array:
  """Per-point inputs (x, squashed y) ``[B, P, 2]``; squashing keeps large values in range."""
  return jnp.stack([x_BxP / 2.0, jnp.arcsinh(y_BxP)], -1)


def expression_recovery(max_len: int = 4, points: int = 16, steps: int = 2000, batch: int = 128, width: int = 128,
                        test_sets: int = 2000, seed: int = 0, decoder_width: int = 64,
                        decoder_layers: int = 2) -> dict[str, Any]:
  """Trains the K-way and decoder heads; returns exact-recovery rates on fresh point sets."""
  grid = np.linspace(-2, 2, 33)
  exprs = expressions.unique_by_value(sorted(expressions.grammar_strings(max_len), key=len), grid)
  k = len(exprs)
  trie = labels.label_trie(exprs)
  head = decoder.string_head(trie, width=decoder_width, num_layers=decoder_layers)
  rng = np.random.default_rng(seed)

  def sample(n):
    cls = rng.integers(0, k, n)
    x = rng.uniform(-2, 2, (n, points))
    y = np.stack([expressions.evaluate(exprs[c], x[i]) for i, c in enumerate(cls)])
    return x.astype(np.float32), y.astype(np.float32), cls.astype(np.int32)

  pool = [sample(batch) for _ in range(min(steps, 400))]
  k1, k2, k3 = jax.random.split(jax.random.key(seed), 3)
  enc0 = {"phi": nets.mlp_init(k1, [2, width, width]), "rho": nets.mlp_init(k2, [width, width])}

  def encode(p, x, y):
    h = nets.mlp_apply(p["enc"]["phi"], _point_features(x, y), final_act=True)
    return nets.mlp_apply(p["enc"]["rho"], jnp.mean(h, axis=1), final_act=True)   # permutation-invariant

  def clf_loss(p, b):
    return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(encode(p, b[0], b[1]) @ p["w"] + p["b"], b[2]))

  def dec_loss(p, b):
    return decoder.nll(p["dec"], encode(p, b[0], b[1]), b[2], head)

  batches = lambda i: pool[i % len(pool)]  # noqa: E731
  clf, _ = nets.fit(clf_loss, {"enc": enc0, "w": jnp.zeros((width, k)), "b": jnp.zeros((k,))}, batches, steps)
  dec, _ = nets.fit(dec_loss, {"enc": enc0, "dec": decoder.init(k3, width, head)}, batches, steps)
  rng = np.random.default_rng(seed + 1)
  x, y, cls = sample(test_sets)
  clf_scores = jax.jit(lambda p: encode(p, x, y) @ p["w"] + p["b"])(clf)
  node = jax.jit(lambda p: decoder.node_logits(p["dec"], encode(p, x, y), head))(dec)
  dec_scores = retrieval.decoder_to_atomic(trie, node)   # = exact beam search over the trie (beam >= K)

  def greedy(node_logits):
    step = lambda tok, t: _node_logits_at(trie, node_logits, tok, t)  # noqa: E731
    return np.asarray(labels.greedy_decode(trie, step, node_logits.shape[0]).classes)

  return {"num_expressions": k, "max_len": max_len, "points_per_set": points, "test_sets": test_sets,
          "recovery_kway": float(np.mean(np.argmax(np.asarray(clf_scores), 1) == cls)),
          "recovery_decoder_exact_argmax": float(np.mean(np.argmax(np.asarray(dec_scores), 1) == cls)),
          "recovery_decoder_greedy": float(np.mean(greedy(node) == cls)),
          "nll_kway": nets.class_nll(clf_scores, cls), "nll_decoder": nets.class_nll(dec_scores, cls),
          "chance": 1.0 / k, "examples": exprs[:12], "steps": steps, "batch": batch, "encoder_width": width,
          "decoder": head.describe()}


def _node_logits_at(trie: labels.LabelTrie, node_logits_BxNx64: jax.Array, tokens: jax.Array, t: jax.Array) -> jax.Array:
  """A greedy-decoding step function over precomputed per-node logits: walks ``tokens[:, 1:t+1]`` down the trie."""
  node = jnp.zeros(tokens.shape[0], jnp.int32)
  for i in range(1, trie.max_len + 1):
    nxt = labels.advance(trie, node, jnp.clip(tokens[:, i], 0, 63))
    node = jnp.where((i <= t) & (nxt >= 0), nxt, node)
  return node_logits_BxNx64[jnp.arange(tokens.shape[0]), node]
