"""The generic sampler: one ``lax.while_loop`` over positions, for any step function.

A step function maps ``(state, tokens_B, position)`` to ``(logits_Bx64, state)``:
a KV cache (``jaxequiv.lm.sample.cached_step_fn``), or the whole rows re-run
through any causal ``apply_fn`` (``full_step_fn``). Both the LM wing's sampler
and the labels wing's string head (a conditional LM of its label) decode through
``sample_tokens``; temperature 0 is greedy decoding.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxequiv import alphabet
from jaxequiv.types import ApplyFn, Params

State = Any
StepFn = Callable[[State, jax.Array, jax.Array], tuple[jax.Array, State]]


class Samples(NamedTuple):
  tokens: jax.Array    # [B, L] int32 class ids (prompt included), PAD after each sample's end.
  lengths: jax.Array   # [B] int32 characters per sample, prompt included.
  finished: jax.Array  # [B] bool: the sample ended with '.' (else it hit max_len).


def to_strings(samples: Samples) -> list[str]:
  """The samples' text: ``alphabet.decode`` of each row's first ``length`` tokens."""
  tokens, lengths = np.asarray(samples.tokens), np.asarray(samples.lengths)
  return [alphabet.decode(row[:n]) for row, n in zip(tokens, lengths)]



def choose_next(
    keys_B: jax.Array, logits_Bx64: jax.Array, positions_B: jax.Array, temperature, top_k: int | None = None
) -> jax.Array:
  r"""Draws one class id per row: ``categorical(fold_in(keys_B[b], positions_B[b]), logits / temperature)``.

  .. math:: y_b \sim \mathrm{softmax}(\ell_b / \tau) \text{ restricted to the } k \text{ largest } \ell_b

  Args:
    keys_B: one PRNG key per sample ``[B]``.
    logits_Bx64: float logits ``[B, 64]`` (cast to float32).
    positions_B: int ``[B]``, the position being sampled (folded into the key).
    temperature: scalar tau >= 0; 0 means greedy (argmax). May be traced.
    top_k: keep only the k largest logits (``lax.top_k``; ties go to the lower
      class id), or None for all 64. ``top_k=1`` is greedy.

  Returns:
    int32 class ids ``[B]``.
  """
  logits_Bx64 = logits_Bx64.astype(jnp.float32)
  keys_B = jax.vmap(jax.random.fold_in)(keys_B, positions_B.astype(jnp.uint32))
  if top_k is None:
    values_BxK = logits_Bx64
  else:
    values_BxK, index_BxK = jax.lax.top_k(logits_Bx64, top_k)
  t = jnp.asarray(temperature, jnp.float32)
  drawn_B = jax.vmap(jax.random.categorical)(keys_B, values_BxK / jnp.where(t > 0, t, 1.0))
  choice_B = jnp.where(t > 0, drawn_B, jnp.argmax(values_BxK, axis=-1))
  if top_k is not None:
    choice_B = jnp.take_along_axis(index_BxK, choice_B[:, None], axis=-1)[:, 0]
  return choice_B.astype(jnp.int32)


def sample_tokens(
    step_fn: StepFn,
    init_state: State,
    key: jax.Array,
    prompt_BxL: jax.Array,
    prompt_lengths_B: jax.Array,
    temperature=1.0,
    top_k: int | None = None,
) -> Samples:
  """Samples B sequences of up to L characters with ``step_fn``, in one ``lax.while_loop``.

  At step p (0..L-1) every row feeds its input token (``BOS`` at p=0, else its
  character p-1) to ``step_fn``, then sets character p to the prompt's if
  ``p < prompt_lengths_B[b]``, else to ``choose_next``'s draw. A row stops after
  its ``'.'`` (later characters are PAD); the loop stops when every row has
  stopped or after L steps. Traceable: wrap it in ``jax.jit`` with ``step_fn``
  static.

  Args:
    step_fn: ``(state, tokens_B, position) -> (logits_Bx64, state)``.
    init_state: the state before position 0 (e.g. an empty KV cache).
    key: one PRNG key; sample b uses ``split(key, B)[b]``.
    prompt_BxL: int32 prompt class ids ``[B, L]`` (PAD after each prompt); L is
      the most characters a sample may have.
    prompt_lengths_B: int32 ``[B]`` prompt lengths, ``< L``.
    temperature: tau >= 0 (0 = greedy), may be traced.
    top_k: None or k in [1, 64], static.

  Returns:
    ``Samples`` with ``tokens [B, L]``.

  Examples:
    A step function that always says "a", then ".":

    >>> import jax, jax.numpy as jnp
    >>> from jaxequiv import alphabet
    >>> from jaxequiv.sampler import sample_tokens, to_strings
    >>> key = jax.random.key(0)
    >>> def step(state, tokens_B, position):
    ...   nxt = jnp.where(position < 2, 0, alphabet.PERIOD)
    ...   return jnp.where(jnp.arange(64) == nxt, 0.0, -jnp.inf) * jnp.ones((tokens_B.shape[0], 1)), state
    >>> to_strings(sample_tokens(step, (), key, jnp.full((1, 8), alphabet.PAD), jnp.zeros(1, jnp.int32)))
    ['aa.']
  """
  b, max_len = prompt_BxL.shape
  keys_B = jax.random.split(key, b)
  prompt_BxL = jnp.asarray(prompt_BxL, jnp.int32)
  prompt_lengths_B = jnp.asarray(prompt_lengths_B, jnp.int32)

  def cond(carry):
    p, _, done_B, _ = carry
    return (p < max_len) & ~jnp.all(done_B)

  def body(carry):
    p, out_BxL, done_B, state = carry
    previous_B = jax.lax.dynamic_index_in_dim(out_BxL, jnp.maximum(p - 1, 0), axis=1, keepdims=False)
    inputs_B = jnp.where(p == 0, alphabet.BOS, previous_B)
    logits_Bx64, state = step_fn(state, inputs_B, p)
    if logits_Bx64.shape != (b, alphabet.NUM_CLASSES):
      raise ValueError(f"step_fn returned logits of shape {logits_Bx64.shape}; expected ({b}, {alphabet.NUM_CLASSES})")
    drawn_B = choose_next(keys_B, logits_Bx64, jnp.full((b,), p), temperature, top_k)
    forced_B = jax.lax.dynamic_index_in_dim(prompt_BxL, p, axis=1, keepdims=False)
    token_B = jnp.where(p < prompt_lengths_B, forced_B, drawn_B)
    token_B = jnp.where(done_B, alphabet.PAD, token_B)
    out_BxL = jax.lax.dynamic_update_slice(out_BxL, token_B[:, None], (0, p))
    return p + 1, out_BxL, done_B | (token_B == alphabet.PERIOD), state

  init = (jnp.int32(0), jnp.full((b, max_len), alphabet.PAD, jnp.int32), jnp.zeros(b, bool), init_state)
  _, out_BxL, done_B, _ = jax.lax.while_loop(cond, body, init)
  return Samples(out_BxL, jnp.sum(out_BxL != alphabet.PAD, axis=1, dtype=jnp.int32), done_B)


def full_step_fn(params: Params, apply_fn: ApplyFn) -> StepFn:
  """The no-cache step for any causal ``apply_fn``; its state is the input rows ``[B, T]`` (start: all PAD).

  Writes ``tokens_B`` at ``position``, runs ``apply_fn`` on the whole rows and
  returns the logits at ``position``.
  """

  def step(rows_BxT, tokens_B, position):
    rows_BxT = jax.lax.dynamic_update_slice(rows_BxT, tokens_B[:, None].astype(rows_BxT.dtype), (0, position))
    logits_BxTxV = apply_fn(params, rows_BxT)
    return jax.lax.dynamic_index_in_dim(logits_BxTxV, position, axis=1, keepdims=False), rows_BxT

  return step


def empty_rows(batch_size: int, seq_len: int) -> jax.Array:
  """The no-cache step's initial state: ``[B, T]`` int32 PAD."""
  return jnp.full((batch_size, seq_len), alphabet.PAD, jnp.int32)
