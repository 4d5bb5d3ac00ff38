r"""Sampling sentences: from the LM (with or without a KV cache) and from the classifier.

The core, ``sample_tokens(step_fn, init_state, key, ...)``, is generic over a
*step function* (as in flax's lm1b example)::

    step_fn(state, tokens_B, position) -> (logits_Bx64, state)

which, given the input tokens at ``position`` (``BOS`` at position 0, then the
previous characters), returns the next-character logits. It runs one
``lax.while_loop`` over positions with fixed shapes, for all samples at once;
each sample stops at its ``'.'`` or after ``max_len`` (default T) characters.
Two step functions are built on it:

* ``cached_step_fn``: ``decoding.decode_step`` (the model itself in decode mode,
  with a KV cache), O(T) work per character.
* ``full_step_fn``: re-runs ``apply_fn`` on the whole padded row
  ``[BOS, c_0, .., c_{p-1}, PAD, ..]`` and takes the logits at ``p``
  (O(T^2) per character; works for any causal ``apply_fn``).

``generate_by_classification`` samples without any LM code: each round it asks
the classification API for the next-label logits of every unfinished prefix (a
``ClassificationBatch`` with one ``[BOS, prefix, PAD..]`` row per sample and its
example at the prefix's last position, built with ``packing.unpacked``).

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
standalone jit) give the same bits (``tests/lm/sample_test.py`` checks the logits
bit for bit at every step). With the same key and the same ``choose_next`` on
the same float32 logits, both therefore emit exactly the same characters (the
tests check string equality for several temperatures and top-k; a backend that
compiled ``apply_fn`` differently in the two programs could break this, which
those tests would show). The cached sampler's logits
differ from those by float32 rounding (~1.5e-6 measured, see ``decoding``), so its samples
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
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxequiv import alphabet, model, packing, prefix
from jaxequiv.lm import decoding
from jaxequiv.batches import ClassificationBatch
from jaxequiv.validation import check_classification_batch
from jaxequiv.model import ModelConfig
from jaxequiv.sampler import (Samples, State, StepFn, choose_next, empty_rows, full_step_fn,  # noqa: F401
                              sample_tokens, to_strings)
from jaxequiv.types import ApplyFn, Params

# ---------------------------------------------------------------- choosing a token


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


# ---------------------------------------------------------------- step functions


def cached_step_fn(params: Params, config: ModelConfig) -> StepFn:
  """The KV-cached transformer step; its state is ``decoding.init_cache(config, B)``."""

  def step(cache, tokens_B, position):
    return decoding.decode_step(params, cache, tokens_B, position, config)

  return step


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
  prefixes (``prefix.PrefixExamples`` -> ``packing.unpacked``: one row
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
    batch = packing.unpacked(examples, seq_len)
    batch = batch._replace(rows=np.where(active, batch.rows, num_samples).astype(np.int32))
    logits_Bx64 = _classification_logits_jit(params, batch, apply_fn=apply_fn)
    labels = np.asarray(_choose_next_jit(keys_B, logits_Bx64, jnp.asarray(lengths), temperature, top_k=top_k))
    for b in np.flatnonzero(active):
      prefixes[b].append(int(labels[b]))
      done[b] = labels[b] == alphabet.PERIOD
  return [alphabet.decode(p) for p in prefixes]
