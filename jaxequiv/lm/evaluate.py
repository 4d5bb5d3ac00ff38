"""Validation NLL of sentences under a model read as an LM, in nats and bits per character."""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxequiv import alphabet, losses
from jaxequiv.batches import LMBatch, lm_batch
from jaxequiv.types import ApplyFn


class EvalResult(NamedTuple):
  nats_per_char: float
  bits_per_char: float
  num_chars: int



def make_eval_batches(sentences: Sequence[str], seq_len: int, batch_size: int = 64) -> list[LMBatch]:
  """Validation sentences as fixed-shape ``LMBatch`` es (the last one padded with empty rows)."""
  sentences = alphabet.validate_sentences(sentences, max_len=seq_len)
  if not sentences:
    raise ValueError("no validation sentences")
  return [lm_batch(sentences[i : i + batch_size], seq_len, num_rows=batch_size)
          for i in range(0, len(sentences), batch_size)]


@functools.partial(jax.jit, static_argnames="apply_fn")
def _nll_sum(params, batch: LMBatch, apply_fn):
  per_token = losses.lm_nll_per_token(params, batch, apply_fn)
  return jnp.sum(jnp.where(batch.mask, per_token, 0.0))


def evaluate_batches(params, batches: Iterable[LMBatch], apply_fn: ApplyFn) -> EvalResult:
  """Mean NLL over every character of the batches (sums in float64 on the host)."""
  total, count = 0.0, 0
  for b in batches:
    total += float(_nll_sum(params, b, apply_fn))
    count += int(np.sum(b.mask))
  nats = total / count
  return EvalResult(nats, nats / math.log(2), count)


def evaluate(params, sentences: Sequence[str], apply_fn: ApplyFn, seq_len: int,
             batch_size: int = 64) -> EvalResult:
  r"""Validation NLL of sentences under the model read as an LM.

  .. math:: \frac{1}{\sum_s |s|} \sum_s \sum_{t<|s|} -\log p_\theta(s_t \mid s_{<t})

  i.e. the mean over all characters (the final period included), in nats and
  bits (``nats / ln 2``) per character. A classifier's params evaluate the
  same way: it is the same model.

  Args:
    params: model parameters.
    sentences: validation sentences of at most ``seq_len`` characters.
    apply_fn: ``make_apply(config)``; pass the same object each call to reuse the compiled function.
    seq_len: the model's context length T.
    batch_size: sentences per batch.

  Returns:
    ``EvalResult(nats_per_char, bits_per_char, num_chars)``.

  Examples:
    >>> import math, jax, jaxequiv
    >>> from jaxequiv.lm.evaluate import evaluate
    >>> cfg = jaxequiv.ModelConfig(num_layers=1, width=16, num_heads=2, seq_len=16)
    >>> r = evaluate(jaxequiv.init(jax.random.key(0), cfg), ["Hi there.", "Ok."], jaxequiv.make_apply(cfg), cfg.seq_len)
    >>> r.num_chars, math.isclose(r.bits_per_char, r.nats_per_char / math.log(2))
    (12, True)
  """
  return evaluate_batches(params, make_eval_batches(sentences, seq_len, batch_size), apply_fn)
