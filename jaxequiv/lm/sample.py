r"""Sampling sentences: from the LM (with or without a KV cache) and from the classifier.

The core, ``sample_tokens(step_fn, init_state, key, ...)``, is generic over a
*step function* (as in flax's lm1b example)::

    step_fn(state, tokens_B, position) -> (logits_Bx64, state)

which, given the input tokens at ``position`` (``BOS`` at position 0, then the
previous characters), returns the next-character logits. It runs one
``lax.while_loop`` over positions with fixed shapes, for all samples at once;
each sample stops at its ``'.'`` or after ``max_len`` (default T) characters.
Two step functions are built on it:

* ``cached_step_fn``: ``decoding.decode_step``, O(T) work per character.
* ``full_step_fn``: re-runs ``apply_fn`` on the whole padded row
  ``[BOS, c_0, .., c_{p-1}, PAD, ..]`` and takes the logits at ``p``
  (O(T^2) per character; works for any causal ``apply_fn``).

``generate_by_classification`` samples without any LM code: each round it asks
the classification API for the next-label logits of every unfinished prefix (a
``ClassificationBatch`` with one ``[BOS, prefix, PAD..]`` row per sample and its
example at the prefix's last position, built with ``prefix.unpacked``).

**Randomness.** Sample b gets ``keys[b] = split(key, num_samples)[b]``; the
character at position p is drawn with ``fold_in(keys[b], p)`` by
``choose_next``, from the float32 logits (``/ temperature``, optionally
restricted to the ``top_k`` largest). A sample therefore depends only on
``(key, b, its logits)``, not on the batch around it.

**Exactness.** The classification generator builds, for a prefix of length p,
the very row the no-cache sampler feeds ``apply_fn`` at step p (same tokens,
same ``[B, T]`` shape), and reads the logits at the same slot. Rows do not mix
in a causal transformer, so each row's logits are the same computation on the
same inputs; on XLA:CPU the two compiled programs (a ``while_loop`` body and a
standalone jit) give the same bits (``tests/sample_test.py`` checks the logits
bit for bit at every step). With the same key and the same ``choose_next`` on
the same float32 logits, both therefore emit exactly the same characters (the
tests check string equality for several temperatures and top-k; a backend that
compiled ``apply_fn`` differently in the two programs could break this, which
those tests would show). The cached sampler's logits
differ from those by float32 rounding (~1e-6, see ``decoding``), so its samples
agree with the others except when two candidates' perturbed scores tie to within
that rounding: rare, but not excluded.

**Prompts.** ``prompt`` (one string, or one per sample) is an unfinished
sentence: characters in the alphabet except ``'.'`` (a prompt with ``'.'`` would
already be a finished sentence, or not a sentence at all), with at most
``max_len - 1`` characters so that at least one character is sampled. The
prompt is fed one character per step (its characters are forced) and is part
of the returned text.

Examples:
  >>> import jax, jaxequiv
  >>> from jaxequiv.lm.sample import sample
  >>> config = jaxequiv.ModelConfig(num_layers=1, width=16, num_heads=2, seq_len=16)
  >>> params = jaxequiv.init(jax.random.key(0), config)   # untrained: the samples are noise
  >>> texts = sample(params, config, jax.random.key(0), 16, temperature=0.8, top_k=10, prompt="Th")
  >>> len(texts), all(t.startswith("Th") for t in texts)
  (16, True)
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxequiv import alphabet, model, prefix
from jaxequiv.lm import decoding
from jaxequiv.batches import ClassificationBatch
from jaxequiv.validation import check_classification_batch
from jaxequiv.model import ModelConfig
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


# ---------------------------------------------------------------- choosing a token


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


def _check_sampling_args(temperature, top_k) -> None:
  if isinstance(temperature, (int, float)) and not (np.isfinite(temperature) and temperature >= 0):
    raise ValueError(f"temperature must be a finite number >= 0 (0 = greedy), got {temperature}")
  if top_k is not None and not (isinstance(top_k, (int, np.integer)) and 1 <= top_k <= alphabet.NUM_CLASSES):
    raise ValueError(f"top_k must be None or an int in [1, {alphabet.NUM_CLASSES}], got {top_k!r}")


def encode_prompts(
    prompt: str | Sequence[str], num_samples: int, max_len: int
) -> tuple[np.ndarray, np.ndarray]:
  """Validates prompts and encodes them as ``(prompt_BxL int32 PAD-padded, lengths_B int32)``.

  Args:
    prompt: one string for every sample, or a sequence of ``num_samples`` strings.
    num_samples: B.
    max_len: L, the most characters a sample may have (prompt included).

  Raises:
    ValueError: naming the prompt and the offending character/position, or its
      length and the limit.
  """
  if num_samples < 1:
    raise ValueError(f"num_samples must be >= 1, got {num_samples}")
  prompts = [prompt] * num_samples if isinstance(prompt, str) else list(prompt)
  if len(prompts) != num_samples:
    raise ValueError(f"got {len(prompts)} prompts for num_samples={num_samples}; pass one str or one per sample")
  out = np.full((num_samples, max_len), alphabet.PAD, np.int32)
  lengths = np.zeros(num_samples, np.int32)
  for i, p in enumerate(prompts):
    where = "prompt" if isinstance(prompt, str) else f"prompt {i}"
    ids = alphabet.encode(p, where=where)
    periods = np.flatnonzero(ids == alphabet.PERIOD)
    if periods.size:
      raise ValueError(
          f"{where} has '.' at position {int(periods[0])}: '.' ends a sentence, so a prompt (an"
          f" unfinished sentence) may not contain it. Prompt: {p!r}.")
    if len(ids) >= max_len:
      raise ValueError(
          f"{where} has {len(ids)} characters, too long: samples have at most max_len={max_len}"
          f" characters (max_len defaults to the context length T), so a prompt may have at most {max_len - 1}."
          f" Prompt starts: {p[:40]!r}.")
    out[i, : len(ids)] = ids
    lengths[i] = len(ids)
  return out, lengths


def _max_len(max_len: int | None, seq_len: int) -> int:
  if max_len is None:
    return seq_len
  if not 1 <= max_len <= seq_len:
    raise ValueError(f"max_len must be in [1, {seq_len}] (the context length T), got {max_len}")
  return max_len


# ---------------------------------------------------------------- the generic sampler


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
    >>> from jaxequiv.lm.sample import sample_tokens, to_strings
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


# ---------------------------------------------------------------- step functions


def cached_step_fn(params: Params, config: ModelConfig) -> StepFn:
  """The KV-cached transformer step; its state is ``decoding.init_cache(config, B)``."""

  def step(cache, tokens_B, position):
    return decoding.decode_step(params, cache, tokens_B, position, config)

  return step


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


@functools.partial(jax.jit, static_argnames=("config", "top_k", "use_cache"))
def _sample_transformer(params, key, prompt_BxL, prompt_lengths_B, temperature, *, config, top_k, use_cache):
  b = prompt_BxL.shape[0]
  if use_cache:
    step, state = cached_step_fn(params, config), decoding.init_cache(config, b)
  else:
    step, state = full_step_fn(params, model.make_apply(config)), empty_rows(b, config.seq_len)
  return sample_tokens(step, state, key, prompt_BxL, prompt_lengths_B, temperature, top_k)


@functools.partial(jax.jit, static_argnames=("apply_fn", "seq_len", "top_k"))
def _sample_apply_fn(params, key, prompt_BxL, prompt_lengths_B, temperature, *, apply_fn, seq_len, top_k):
  step, state = full_step_fn(params, apply_fn), empty_rows(prompt_BxL.shape[0], seq_len)
  return sample_tokens(step, state, key, prompt_BxL, prompt_lengths_B, temperature, top_k)


# ---------------------------------------------------------------- public samplers


def sample_ids(
    params: Params,
    config: ModelConfig,
    key: jax.Array,
    num_samples: int,
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    prompt: str | Sequence[str] = "",
    max_len: int | None = None,
    use_cache: bool = True,
) -> Samples:
  """Samples from the transformer LM (jit-compiled); returns ``Samples`` (see ``sample``)."""
  _check_sampling_args(temperature, top_k)
  max_len = _max_len(max_len, config.seq_len)
  prompt_BxL, lengths_B = encode_prompts(prompt, num_samples, max_len)
  return _sample_transformer(params, key, prompt_BxL, lengths_B, jnp.float32(temperature),
                             config=config, top_k=top_k, use_cache=use_cache)


def sample(
    params: Params,
    config: ModelConfig,
    key: jax.Array,
    num_samples: int,
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    prompt: str | Sequence[str] = "",
    max_len: int | None = None,
    use_cache: bool = True,
) -> list[str]:
  """Samples ``num_samples`` sentences from the transformer LM, all at once.

  Args:
    params: ``model.init`` parameters for ``config``.
    config: the model's config.
    key: PRNG key; the same key gives the same samples.
    num_samples: B, sampled in one batch.
    temperature: tau >= 0; logits are divided by tau; 0 is greedy.
    top_k: sample among the k most likely characters only (None: all 64).
    prompt: unfinished sentence(s) to continue (see the module docstring).
    max_len: most characters per sample, prompt included (default and limit: T).
    use_cache: True: KV-cached decoding; False: re-run the model on the whole
      row each step (slow; bit-for-bit the classification generator).

  Returns:
    ``num_samples`` strings, each ending with ``'.'`` unless it reached ``max_len``.

  Examples:
    >>> import jax, jaxequiv
    >>> config = jaxequiv.ModelConfig(num_layers=1, width=16, num_heads=2, seq_len=12)
    >>> params = jaxequiv.init(jax.random.key(0), config)
    >>> [s[:4] for s in sample(params, config, jax.random.key(0), 2, prompt="The ")]   # a trained model continues them
    ['The ', 'The ']
  """
  return to_strings(sample_ids(params, config, key, num_samples, temperature=temperature, top_k=top_k,
                               prompt=prompt, max_len=max_len, use_cache=use_cache))


def sample_ids_with_apply_fn(
    params: Params,
    apply_fn: ApplyFn,
    key: jax.Array,
    num_samples: int,
    *,
    seq_len: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    prompt: str | Sequence[str] = "",
    max_len: int | None = None,
) -> Samples:
  """The no-cache LM sampler for any causal ``apply_fn(params, tokens_RxT) -> logits_RxTx64`` with context ``seq_len``."""
  _check_sampling_args(temperature, top_k)
  max_len = _max_len(max_len, seq_len)
  prompt_BxL, lengths_B = encode_prompts(prompt, num_samples, max_len)
  return _sample_apply_fn(params, key, prompt_BxL, lengths_B, jnp.float32(temperature),
                          apply_fn=apply_fn, seq_len=seq_len, top_k=top_k)


# ---------------------------------------------------------------- sampling through the classifier


def classification_logits(params: Params, batch: ClassificationBatch, apply_fn: ApplyFn) -> jax.Array:
  """The classifier's logits ``[N, 64]`` for each example: ``apply_fn(params, tokens)[rows[i], positions[i]]``.

  The logits that ``losses.classification_xent`` scores; padding examples (row == R) give zeros.
  """
  check_classification_batch(batch)
  logits_RxTxV = apply_fn(params, batch.tokens)
  return logits_RxTxV.at[batch.rows, batch.positions].get(mode="fill", fill_value=0.0)


_classification_logits_jit = jax.jit(classification_logits, static_argnames="apply_fn")
_choose_next_jit = jax.jit(choose_next, static_argnames="top_k")


def generate_by_classification(
    params: Params,
    apply_fn: ApplyFn,
    key: jax.Array,
    num_samples: int,
    *,
    seq_len: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    prompt: str | Sequence[str] = "",
    max_len: int | None = None,
) -> list[str]:
  """Generates sentences by repeatedly classifying the current prefixes.

  Each round builds the classification dataset of the unfinished samples'
  prefixes (``prefix.PrefixExamples`` -> ``prefix.unpacked``: one row
  ``[BOS, prefix, PAD..]`` per sample, its example at the prefix length; finished
  samples are padding examples, so shapes stay fixed), gets the 64 label logits
  with ``classification_logits``, draws each label with ``choose_next`` (key
  ``fold_in(split(key, B)[b], len(prefix))``) and appends it. With the same
  arguments it returns exactly ``sample(..., use_cache=False)``'s strings (see
  the module docstring).

  Args:
    params, apply_fn: the classifier, ``apply_fn(params, tokens_RxT) -> logits_RxTx64``.
    key, num_samples, temperature, top_k, prompt, max_len: as in ``sample``.
    seq_len: the classifier's context length T (rows are ``[B, T]``).

  Returns:
    ``num_samples`` strings.
  """
  _check_sampling_args(temperature, top_k)
  max_len = _max_len(max_len, seq_len)
  prompt_BxL, prompt_lengths = encode_prompts(prompt, num_samples, max_len)
  keys_B = jax.random.split(key, num_samples)
  prefixes = [list(row[:n]) for row, n in zip(prompt_BxL, prompt_lengths)]
  done = np.zeros(num_samples, bool)
  temperature = jnp.float32(temperature)
  while True:
    active = ~done & (np.array([len(p) for p in prefixes]) < max_len)
    if not active.any():
      break
    contexts = [p if a else [] for p, a in zip(prefixes, active)]
    lengths = np.array([len(c) for c in contexts], np.int32)
    chars = np.array([c for ctx in contexts for c in ctx], np.uint8)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    examples = prefix.PrefixExamples(chars, starts, lengths, np.zeros(num_samples, np.uint8))
    batch = prefix.unpacked(examples, seq_len)
    batch = batch._replace(rows=np.where(active, batch.rows, num_samples).astype(np.int32))
    logits_Bx64 = _classification_logits_jit(params, batch, apply_fn=apply_fn)
    labels = np.asarray(_choose_next_jit(keys_B, logits_Bx64, jnp.asarray(lengths), temperature, top_k=top_k))
    for b in np.flatnonzero(active):
      prefixes[b].append(int(labels[b]))
      done[b] = labels[b] == alphabet.PERIOD
  return [alphabet.decode(p) for p in prefixes]
