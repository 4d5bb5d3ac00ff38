"""Samplers: exact tokens from fake step functions, and LM sampling == generation by classification."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxequiv import alphabet, model
from jaxequiv.lm import sample as sampling
from tests import archs

A = alphabet.ALPHABET
PAD, PERIOD = alphabet.PAD, alphabet.PERIOD


def _onehot_logits(target_B):
  """Logits putting all mass on ``target_B``: 0 there, -inf elsewhere."""
  return jnp.where(jnp.arange(64)[None, :] == target_B[:, None], 0.0, -jnp.inf)


def _counting_step(stop_B):
  """Next character = the letter after the input (BOS -> 'a', 'z' -> 'a'); '.' at position stop_B[b].

  Its state counts calls, and is used instead of ``position`` to check that the sampler threads it.
  """
  stop_B = jnp.asarray(stop_B)

  def step(calls, tokens_B, position):
    nxt = jnp.where(tokens_B == alphabet.BOS, 0, (tokens_B + 1) % 26)
    nxt = jnp.where(calls == stop_B, PERIOD, nxt)
    return _onehot_logits(nxt), calls + 1

  return step


def _run(step, prompts, max_len, **kw):
  b = len(prompts) if isinstance(prompts, list) else kw.pop("b")
  prompt_BxL, lengths = sampling.encode_prompts(prompts, b, max_len)
  fn = jax.jit(functools.partial(sampling.sample_tokens, step), static_argnames="top_k")
  return fn(jnp.int32(0), jax.random.key(0), prompt_BxL, lengths, **kw)


def test_fake_step_exact_tokens_stop_at_period_and_at_max_len():
  samples = _run(_counting_step([2, 5, 100]), ["", "", ""], 8)
  assert sampling.to_strings(samples) == ["ab.", "abcde.", "abcdefgh"]
  np.testing.assert_array_equal(np.asarray(samples.lengths), [3, 6, 8])
  np.testing.assert_array_equal(np.asarray(samples.finished), [True, True, False])
  tokens = np.asarray(samples.tokens)
  assert tokens.shape == (3, 8) and tokens.dtype == np.int32
  np.testing.assert_array_equal(tokens[0], [0, 1, PERIOD, PAD, PAD, PAD, PAD, PAD])


def test_loop_stops_when_every_sample_has_finished():
  seen = []

  def step(state, tokens_B, position):
    jax.debug.callback(lambda p: seen.append(int(p)), position)
    return _counting_step([1, 3])(state, tokens_B, position)

  samples = _run(step, ["", ""], 16)
  jax.block_until_ready(samples)
  assert sampling.to_strings(samples) == ["a.", "abc."]
  assert sorted(seen) == [0, 1, 2, 3], seen


def test_prompts_are_forced_and_fed_to_the_step_function():
  # The counting step continues from the last prompt character, so it must have seen it as input.
  samples = _run(_counting_step([100, 4, 100]), ["xyz", "q", ""], 6)
  assert sampling.to_strings(samples) == ["xyzabc", "qrst.", "abcdef"]
  # One prompt for all samples; it counts toward max_len.
  assert sampling.to_strings(_run(_counting_step(100), "hey", 5, b=2)) == ["heyzaa"[:5]] * 2


@pytest.mark.parametrize("prompt, match", [
    ("a.", r"prompt has '\.' at position 1: '\.' ends a sentence"),
    ("ab!", r"prompt: character '!' \(U\+0021\) at position 2 is not in"),
    ("abcdefgh", r"prompt has 8 characters, too long: samples have at most max_len=8 .* at most 7"),
    (["ok", "caf\u00e9"], r"prompt 1: character 'é' \(U\+00E9\) at position 3"),
    (["a", "b", "c"], "got 3 prompts for num_samples=2"),
])
def test_bad_prompts_raise_naming_the_culprit(prompt, match):
  with pytest.raises(ValueError, match=match):
    sampling.encode_prompts(prompt, 2, 8)


def test_top_k_keeps_only_the_k_best_and_temperature_zero_is_greedy():
  logits_1x64 = -jnp.arange(64, dtype=jnp.float32)[None] / 8  # 'a' best, then 'b', 'c', ...; '.' worst
  step = lambda s, tokens_B, p: (jnp.broadcast_to(logits_1x64, (tokens_B.shape[0], 64)), s)
  prompt_BxL, lengths = sampling.encode_prompts("", 64, 16)
  fn = jax.jit(functools.partial(sampling.sample_tokens, step), static_argnames="top_k")
  hot = np.asarray(fn((), jax.random.key(1), prompt_BxL, lengths, 100.0, top_k=3).tokens)
  assert set(np.unique(hot).tolist()) == {0, 1, 2}, "a near-uniform top-3 draws exactly a, b and c"
  greedy = np.asarray(fn((), jax.random.key(1), prompt_BxL, lengths, 0.0).tokens)
  assert np.all(greedy == 0)
  assert np.all(np.asarray(fn((), jax.random.key(1), prompt_BxL, lengths, 5.0, top_k=1).tokens) == 0)


@pytest.mark.parametrize("temperature, p_a", [(1.0, 0.75), (2.0, np.sqrt(3) / (np.sqrt(3) + 1)), (0.5, 0.9)])
def test_temperature_rescales_the_distribution(temperature, p_a):
  """P(a) = 0.75 at tau=1; softmax(logits / tau) gives sqrt(3)/(sqrt(3)+1) at tau=2 and 9/10 at tau=0.5."""
  logits = jnp.full(64, -jnp.inf).at[0].set(jnp.log(0.75)).at[1].set(jnp.log(0.25))
  step = lambda s, tokens_B, p: (jnp.broadcast_to(logits, (tokens_B.shape[0], 64)), s)
  prompt_BxL, lengths = sampling.encode_prompts("", 256, 16)
  tokens = np.asarray(jax.jit(functools.partial(sampling.sample_tokens, step))(
      (), jax.random.key(2), prompt_BxL, lengths, temperature).tokens)
  freq = float(np.mean(tokens == 0))
  print(f"tau={temperature}: P(a) measured {freq:.4f}, expected {p_a:.4f} (4096 draws, tolerance 0.03)")
  assert abs(freq - p_a) < 0.03


def test_choose_next_depends_only_on_the_key_and_position_of_each_sample():
  keys = jax.random.split(jax.random.key(3), 4)
  logits = jax.random.normal(jax.random.key(4), (4, 64))
  a = sampling.choose_next(keys, logits, jnp.array([0, 1, 2, 3]), 1.0)
  b = sampling.choose_next(keys[::-1], logits[::-1], jnp.array([3, 2, 1, 0]), 1.0)[::-1]
  np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  draws = np.stack([np.asarray(sampling.choose_next(keys, logits, jnp.full(4, p), 1.0)) for p in range(20)])
  assert len(np.unique(draws)) > 5, "different positions give different draws"


def test_sampling_argument_errors():
  cfg = model.ModelConfig(num_layers=1, width=16, num_heads=2, seq_len=8)
  params = jax.eval_shape(lambda: model.init(jax.random.key(0), cfg))  # errors come before any computation
  key = jax.random.key(0)
  with pytest.raises(ValueError, match="temperature must be a finite number >= 0"):
    sampling.sample(params, cfg, key, 2, temperature=-1.0)
  with pytest.raises(ValueError, match=r"top_k must be None or an int in \[1, 64\], got 65"):
    sampling.sample(params, cfg, key, 2, top_k=65)
  with pytest.raises(ValueError, match=r"max_len must be in \[1, 8\] \(the context length T\), got 9"):
    sampling.sample(params, cfg, key, 2, max_len=9)
  with pytest.raises(ValueError, match="prompt has 8 characters, too long"):
    sampling.sample(params, cfg, key, 2, prompt="abcdefgh")
  with pytest.raises(ValueError, match="num_samples must be >= 1"):
    sampling.sample(params, cfg, key, 0)


# ---------------------------------------------------------------- a real (random) transformer

CFG = model.ModelConfig(num_layers=2, width=32, num_heads=4, seq_len=24, activation="gelu")
APPLY = model.make_apply(CFG)  # one object, so the jitted classifier compiles once


@functools.lru_cache(maxsize=None)
def _params(seed=0):
  params = model.init(jax.random.key(seed), CFG)
  # Make '.' likelier (bias +3) so that random-model samples end within the context.
  head = dict(params["head"], bias=params["head"]["bias"].at[PERIOD].add(3.0))
  return {**params, "head": head}


@pytest.mark.parametrize("temperature, top_k, prompt", [
    (1.0, None, ""),
    (0.6, 8, "Th"),
    (1.7, None, ["", "a", "bc", "x y"] * 8),
    (0.0, None, "q"),
])
def test_generation_by_classification_equals_lm_sampling_exactly(temperature, top_k, prompt):
  params, key = _params(), jax.random.key(11)
  kw = dict(temperature=temperature, top_k=top_k, prompt=prompt)
  lm = sampling.sample(params, CFG, key, 32, use_cache=False, **kw)
  clf = sampling.generate_by_classification(params, APPLY, key, 32, seq_len=CFG.seq_len, **kw)
  cached = sampling.sample(params, CFG, key, 32, use_cache=True, **kw)
  agree = np.mean([a == b for a, b in zip(cached, lm)])
  print(f"tau={temperature} top_k={top_k}: by-classification == no-cache LM for all 32; "
        f"cached agrees with no-cache on {agree:.0%}; e.g. {lm[:3]}")
  assert clf == lm, [(a, b) for a, b in zip(clf, lm) if a != b][:3]
  assert agree >= 0.9
  finished = [s for s in lm if s.endswith(".")]
  assert len(finished) >= 16 and len(set(lm)) > (1 if temperature else 0)
  for i, s in enumerate(finished):
    alphabet.check_sentence(s, i)  # only one '.', at the end
  assert all(len(s) <= CFG.seq_len for s in lm)
  prompts = [prompt] * 32 if isinstance(prompt, str) else prompt
  assert all(s.startswith(p) for s, p in zip(lm, prompts))


def test_greedy_equals_top_1_equals_argmax_of_apply():
  params, cfg = _params(), CFG
  key = jax.random.key(5)
  greedy = sampling.sample_ids(params, cfg, key, 2, temperature=0.0, prompt=["", "ab"])
  top1 = sampling.sample_ids(params, cfg, jax.random.key(6), 2, temperature=1.3, top_k=1, prompt=["", "ab"])
  np.testing.assert_array_equal(np.asarray(greedy.tokens), np.asarray(top1.tokens))
  # By hand: argmax of model.apply on the row so far, [BOS, text, PAD, ..].
  apply = jax.jit(APPLY)
  for b, prompt in enumerate(["", "ab"]):
    text = prompt
    while len(text) < cfg.seq_len and not text.endswith("."):
      row = np.full((1, cfg.seq_len), PAD, np.int32)
      row[0, : len(text) + 1] = [alphabet.BOS, *alphabet.encode(text)]
      text += A[int(np.argmax(apply(params, row)[0, len(text)]))]
    assert sampling.to_strings(greedy)[b] == text


def test_same_key_same_samples_different_key_different_samples():
  params = _params()
  a = sampling.sample(params, CFG, jax.random.key(1), 16)
  assert a == sampling.sample(params, CFG, jax.random.key(1), 16)
  assert a != sampling.sample(params, CFG, jax.random.key(2), 16)


_CONV = archs.CausalConv(width=16, layers=1)  # not a transformer: any causal apply_fn samples
_CONV_APPLY = lambda p, tokens: _CONV.apply({"params": p}, tokens)  # noqa: E731


def test_any_causal_apply_fn_samples_the_same_by_classification():
  params = _CONV.init(jax.random.key(0), jnp.zeros((1, 12), jnp.int32))["params"]
  params["Dense_0"]["bias"] = params["Dense_0"]["bias"].at[PERIOD].add(2.0)
  key = jax.random.key(9)
  lm = sampling.to_strings(sampling.sample_ids_with_apply_fn(params, _CONV_APPLY, key, 16, seq_len=12, top_k=20))
  clf = sampling.generate_by_classification(params, _CONV_APPLY, key, 16, seq_len=12, top_k=20)
  assert lm == clf
  assert any(s.endswith(".") for s in lm) and len(set(lm)) > 8


def test_no_cache_step_logits_are_bitwise_the_classifier_logits():
  """Why the samples are equal: at every step the LM step and the classifier give the same bits."""
  from jaxequiv import bitwise, packing, prefix  # pylint: disable=import-outside-toplevel
  params = _params()
  texts = ["Hello world", "ab", "x"]
  b, t = len(texts), CFG.seq_len
  prompt_BxL = jnp.asarray(sampling.encode_prompts(texts, b, t)[0])
  step = sampling.full_step_fn(params, APPLY)

  def body(rows, p):
    inputs = jnp.where(p == 0, alphabet.BOS, prompt_BxL[:, jnp.maximum(p - 1, 0)])
    logits, rows = step(rows, inputs, p)
    return rows, logits

  _, lm_PxBx64 = jax.jit(lambda: jax.lax.scan(body, sampling.empty_rows(b, t), jnp.arange(12)))()
  for p in range(12):
    real = np.array([len(s) >= p for s in texts])
    ids = [alphabet.encode(s[:p] if r else "") for s, r in zip(texts, real)]
    lengths = np.array([len(i) for i in ids], np.int32)
    ex = prefix.PrefixExamples(np.concatenate(ids).astype(np.uint8),
                               np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64),
                               lengths, np.zeros(b, np.uint8))
    clf = sampling._classification_logits_jit(params, packing.unpacked(ex, t), apply_fn=APPLY)  # pylint: disable=protected-access
    bitwise.assert_bitwise_equal(np.asarray(clf)[real], np.asarray(lm_PxBx64[p])[real])
