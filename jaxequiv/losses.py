r"""The two objectives: LM negative log-likelihood and classification cross-entropy.

Both are pure and jit-able, and take any causal ``apply_fn(params, tokens_RxT)
-> logits_RxTx64``. Bind it with ``functools.partial`` to get the
``loss(params, batch)`` form that ``jax.grad`` wants.

Both compute the per-token cross-entropy over the full ``[R, T, 64]`` logits
with one shared function, then reduce with weights ``[R, T]``. The classifier
scatters its N examples into that grid (weight 1 at each example's slot); the
LM's weights are its mask. On the same rows the two losses are therefore the
same arithmetic on the same shapes, which is what makes their gradients equal
bit for bit. (Gathering the N logits first is the same maths but a different
program, and XLA may then sum in another order.)

Four forms of each objective:

* ``lm_nll`` / ``classification_xent``: the mean, from ``(params, batch, apply_fn)``.
* ``*_sum``: ``(sum, count)``, for exact gradient accumulation. The mean of
  per-micro-batch means is biased when micro-batches hold different numbers of
  predictions; :math:`\sum_m \nabla S_m / \sum_m C_m` is the full batch's gradient.
* ``*_from_logits`` and ``*_sum_from_logits``: the same from logits you computed
  yourself (a model that is not a pure ``apply_fn``, extra outputs, an NNX module).

What is checked: shapes and dtypes always; values (ids in range, distinct
slots, a non-empty batch) only when the arrays are concrete, i.e. outside
``jax.jit``. Under ``jax.jit`` nothing about the values is checked: use
``jaxequiv.validation.batch_checks`` with ``checkify`` (see ``jaxequiv.validation``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from jaxequiv import alphabet
from jaxequiv.batches import ClassificationBatch, LMBatch
from jaxequiv.types import ApplyFn, Params
from jaxequiv.validation import check_classification_batch, check_lm_batch


def token_xent(logits_RxTxV: jax.Array, targets_RxT: jax.Array) -> jax.Array:
  """Per-token cross-entropy ``-log softmax(logits)[target]``, in float32.

  Args:
    logits_RxTxV: logits ``[R, T, 64]`` (cast to float32).
    targets_RxT: integer class ids ``[R, T]``.

  Returns:
    ``[R, T]`` float32 losses.
  """
  return optax.softmax_cross_entropy_with_integer_labels(logits_RxTxV.astype(jnp.float32), targets_RxT)


def weighted_sum(losses_RxT: jax.Array, weights_RxT: jax.Array) -> tuple[jax.Array, jax.Array]:
  """``(sum(losses * weights), sum(weights))``: the one reduction both objectives use."""
  return jnp.sum(losses_RxT * weights_RxT), jnp.sum(weights_RxT)


def weighted_mean(losses_RxT: jax.Array, weights_RxT: jax.Array) -> jax.Array:
  """``sum(losses * weights) / sum(weights)``."""
  total, count = weighted_sum(losses_RxT, weights_RxT)
  return total / count


def _check_logits(logits_RxTxV: jax.Array, tokens_RxT) -> jax.Array:
  want = (*jnp.shape(tokens_RxT), alphabet.NUM_CLASSES)
  if logits_RxTxV.shape != want:
    raise ValueError(f"logits have shape {logits_RxTxV.shape} for tokens {jnp.shape(tokens_RxT)}; expected {want}")
  return logits_RxTxV


def _logits(apply_fn: ApplyFn, params: Params, tokens_RxT: jax.Array) -> jax.Array:
  logits = apply_fn(params, tokens_RxT)
  want = (*tokens_RxT.shape, alphabet.NUM_CLASSES)
  if logits.shape != want:
    raise ValueError(f"apply_fn returned logits of shape {logits.shape} for tokens {tokens_RxT.shape}; expected {want}")
  return logits


# ----------------------------------------------------------------------------- LM


def _lm_terms(logits_RxTxV: jax.Array, batch: LMBatch) -> tuple[jax.Array, jax.Array]:
  return token_xent(logits_RxTxV, batch.targets), jnp.asarray(batch.mask).astype(jnp.float32)


def lm_nll_per_token(params: Params, batch: LMBatch, apply_fn: ApplyFn) -> jax.Array:
  """Per-token NLL ``[R, T]``; zero-weighted positions are not masked out (use ``batch.mask``)."""
  check_lm_batch(batch)
  return token_xent(_logits(apply_fn, params, batch.inputs), batch.targets)


def lm_nll_sum_from_logits(logits_RxTxV: jax.Array, batch: LMBatch) -> tuple[jax.Array, jax.Array]:
  """``(sum of NLL over real predictions, number of real predictions)`` from logits ``[R, T, 64]`` of ``batch.inputs``."""
  check_lm_batch(batch)
  return weighted_sum(*_lm_terms(_check_logits(logits_RxTxV, batch.inputs), batch))


def lm_nll_from_logits(logits_RxTxV: jax.Array, batch: LMBatch) -> jax.Array:
  """``lm_nll`` from logits ``[R, T, 64]`` that you computed from ``batch.inputs``.

  Examples:
    >>> import jax, jaxequiv
    >>> cfg = jaxequiv.ModelConfig(num_layers=1, width=16, num_heads=2, seq_len=8)
    >>> params = jaxequiv.init(jax.random.key(0), cfg)
    >>> batch = jaxequiv.lm_batch(["Hi.", "Ok."], 8)
    >>> logits = jaxequiv.apply(params, batch.inputs, cfg)
    >>> bool(jaxequiv.losses.lm_nll_from_logits(logits, batch) == jaxequiv.lm_nll(params, batch, jaxequiv.make_apply(cfg)))
    True
  """
  check_lm_batch(batch)
  return weighted_mean(*_lm_terms(_check_logits(logits_RxTxV, batch.inputs), batch))


def lm_nll_sum(params: Params, batch: LMBatch, apply_fn: ApplyFn) -> tuple[jax.Array, jax.Array]:
  r"""``(sum, count)``: summed NLL of the real next characters, and how many there are.

  For exact gradient accumulation over micro-batches m:
  :math:`\nabla \mathcal{L} = \sum_m \nabla S_m / \sum_m C_m`.

  Examples:
    >>> import jax, jaxequiv
    >>> cfg = jaxequiv.ModelConfig(num_layers=1, width=16, num_heads=2, seq_len=8)
    >>> params, apply_fn = jaxequiv.init(jax.random.key(0), cfg), jaxequiv.make_apply(cfg)
    >>> total, count = jaxequiv.losses.lm_nll_sum(params, jaxequiv.lm_batch(["Hi.", "Ok."], 8), apply_fn)
    >>> int(count)
    6
  """
  check_lm_batch(batch)
  return weighted_sum(*_lm_terms(_logits(apply_fn, params, batch.inputs), batch))


def lm_nll(params: Params, batch: LMBatch, apply_fn: ApplyFn) -> jax.Array:
  r"""Mean negative log-likelihood of every real next character in a batch of sentences.

  .. math:: \mathcal{L} = -\frac{1}{\sum_{r,t} m_{rt}} \sum_{r,t} m_{rt}
     \log p_\theta(y_{rt} \mid x_{r,0..t})

  Args:
    params: the model's parameter pytree.
    batch: ``LMBatch`` with ``inputs``, ``targets`` and ``mask`` of shape ``[R, T]``.
    apply_fn: causal ``apply_fn(params, tokens_RxT) -> logits_RxTx64``.

  Returns:
    Scalar float32 loss in nats per character.

  Examples:
    >>> import jax, jaxequiv
    >>> cfg = jaxequiv.ModelConfig(num_layers=1, width=16, num_heads=2, seq_len=16)
    >>> params = jaxequiv.init(jax.random.key(0), cfg)
    >>> batch = jaxequiv.lm_batch(["Hi.", "Ok."], 16)
    >>> loss = jaxequiv.lm_nll(params, batch, jaxequiv.make_apply(cfg))
    >>> loss.shape, loss.dtype
    ((), dtype('float32'))
  """
  check_lm_batch(batch)
  return weighted_mean(*_lm_terms(_logits(apply_fn, params, batch.inputs), batch))


# ----------------------------------------------------------------------------- classification


def _scatter(batch: ClassificationBatch):
  """Labels and weights ``[R, T]``: each example's label and weight 1 at its slot; rows == R drop."""
  r, t = batch.tokens.shape
  targets = jnp.zeros((r, t), jnp.int32).at[batch.rows, batch.positions].set(batch.labels, mode="drop")
  weights = jnp.zeros((r, t), jnp.bool_).at[batch.rows, batch.positions].set(True, mode="drop")
  return targets, weights.astype(jnp.float32)


def _clf_terms(logits_RxTxV: jax.Array, batch: ClassificationBatch) -> tuple[jax.Array, jax.Array]:
  targets, weights = _scatter(batch)
  return token_xent(logits_RxTxV, targets), weights


def classification_xent_per_example(params: Params, batch: ClassificationBatch, apply_fn: ApplyFn) -> jax.Array:
  """Per-example cross-entropy ``[N]`` (padding examples, row == R, give 0)."""
  check_classification_batch(batch)
  targets, _ = _scatter(batch)
  losses = token_xent(_logits(apply_fn, params, batch.tokens), targets)
  return losses.at[batch.rows, batch.positions].get(mode="fill", fill_value=0.0)


def classification_xent_sum_from_logits(logits_RxTxV: jax.Array,
                                        batch: ClassificationBatch) -> tuple[jax.Array, jax.Array]:
  """``(sum of cross-entropies, number of real examples)`` from logits ``[R, T, 64]`` of ``batch.tokens``."""
  check_classification_batch(batch)
  return weighted_sum(*_clf_terms(_check_logits(logits_RxTxV, batch.tokens), batch))


def classification_xent_from_logits(logits_RxTxV: jax.Array, batch: ClassificationBatch) -> jax.Array:
  """``classification_xent`` from logits ``[R, T, 64]`` that you computed from ``batch.tokens``."""
  check_classification_batch(batch)
  return weighted_mean(*_clf_terms(_check_logits(logits_RxTxV, batch.tokens), batch))


def classification_xent_sum(params: Params, batch: ClassificationBatch,
                            apply_fn: ApplyFn) -> tuple[jax.Array, jax.Array]:
  """``(sum, count)``: summed cross-entropy over the real examples, and how many there are (see ``lm_nll_sum``)."""
  check_classification_batch(batch)
  return weighted_sum(*_clf_terms(_logits(apply_fn, params, batch.tokens), batch))


def classification_xent(params: Params, batch: ClassificationBatch, apply_fn: ApplyFn) -> jax.Array:
  r"""Mean cross-entropy over the N examples of a classification batch.

  Example i is classified by the logits at ``(rows[i], positions[i])`` of
  ``apply_fn(params, tokens)``, with label ``labels[i]``:

  .. math:: \mathcal{L} = -\frac{1}{N} \sum_i \log \mathrm{softmax}
     (f_\theta(\mathrm{tokens})_{\mathrm{row}_i, \mathrm{pos}_i})_{y_i}

  Computed as the weighted mean of per-token losses over ``[R, T]`` (see the
  module docstring). Examples must occupy distinct slots; ``pack`` and
  ``unpacked`` guarantee it. Rows equal to R mark padding examples.

  Args:
    params: the model's parameter pytree.
    batch: ``ClassificationBatch``: ``tokens [R, T]``; ``rows``, ``positions``,
      ``labels`` ``[N]``.
    apply_fn: causal ``apply_fn(params, tokens_RxT) -> logits_RxTx64``.

  Returns:
    Scalar float32 loss in nats per example.

  Examples:
    >>> import jax, jaxequiv
    >>> cfg = jaxequiv.ModelConfig(num_layers=1, width=16, num_heads=2, seq_len=16)
    >>> params, apply_fn = jaxequiv.init(jax.random.key(0), cfg), jaxequiv.make_apply(cfg)
    >>> ex = jaxequiv.prefix_examples(["Hi.", "Ok."])
    >>> clf = jaxequiv.classification_xent(params, jaxequiv.pack(ex, 16), apply_fn)
    >>> lm = jaxequiv.lm_nll(params, jaxequiv.lm_batch(jaxequiv.canonical_order(["Hi.", "Ok."]), 16), apply_fn)
    >>> bool(clf == lm)
    True
  """
  check_classification_batch(batch)
  return weighted_mean(*_clf_terms(_logits(apply_fn, params, batch.tokens), batch))
