"""``check_model`` on user models: linen, NNX, Equinox, a GRU and plain ``jnp``, causal and not, and the negative controls.

Each model is tiny (width 16, T=8) and ``check_model`` compiles each loss once
per shape. ``pytest -s`` prints every report's table.
"""

import contextlib
import io
import pathlib
import re

import equinox as eqx
import flax.linen as nn
import flax.nnx as nnx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxequiv
from jaxequiv import alphabet, batches, bitwise, losses, model_check, packing, prefix

T = 8
SENTENCES = model_check.default_sentences(8, T)  # edge cases ('.', duplicates, shared prefixes) and random words
KEY = jax.random.key(0)


def _pad(lookahead):
  """Padding of a width-4 convolution: (3, 0) is causal; (2, 1) sees the next token."""
  return ((3 - lookahead, lookahead),)


# ----------------------------------------------------------------------------- the models


class LinenConv(nn.Module):
  lookahead: int = 0

  @nn.compact
  def __call__(self, tokens):
    return nn.Dense(64)(jax.nn.relu(nn.Conv(16, (4,), padding=_pad(self.lookahead))(nn.Embed(66, 16)(tokens))))


class LinenGRU(nn.Module):
  @nn.compact
  def __call__(self, tokens):
    return nn.Dense(64)(nn.RNN(nn.GRUCell(16))(nn.Embed(66, 16)(tokens)))


def linen(module):
  params = module.init(KEY, jnp.zeros((1, T), jnp.int32))["params"]
  return lambda p, tokens: module.apply({"params": p}, tokens), params


class NnxAttention(nnx.Module):
  """One attention layer; ``causal=False`` leaves out the mask (a bidirectional layer)."""

  def __init__(self, causal, rngs):
    self.causal = causal
    self.embed, self.pos, self.out = nnx.Embed(66, 16, rngs=rngs), nnx.Embed(T, 16, rngs=rngs), nnx.Linear(16, 64, rngs=rngs)
    self.attn = nnx.MultiHeadAttention(2, 16, decode=False, keep_rngs=False, rngs=rngs)

  def __call__(self, tokens):
    h = self.embed(tokens) + self.pos(jnp.arange(tokens.shape[1]))
    return self.out(h + self.attn(h, mask=nnx.make_causal_mask(tokens) if self.causal else None))


def nnx_model(module):
  graphdef, params = nnx.split(module)
  return lambda p, tokens: nnx.merge(graphdef, p)(tokens), params


class EqxConv(eqx.Module):
  embed: eqx.nn.Embedding
  conv: eqx.nn.Conv1d
  out: eqx.nn.Linear

  def __init__(self, lookahead, key):
    k1, k2, k3 = jax.random.split(key, 3)
    self.embed, self.out = eqx.nn.Embedding(66, 16, key=k1), eqx.nn.Linear(16, 64, key=k3)
    self.conv = eqx.nn.Conv1d(16, 16, 4, padding=_pad(lookahead), key=k2)

  def __call__(self, tokens_T):
    return jax.vmap(self.out)(jax.nn.relu(self.conv(jax.vmap(self.embed)(tokens_T).T)).T)


def eqx_model(module):
  params, static = eqx.partition(module, eqx.is_array)
  return lambda p, tokens: jax.vmap(eqx.combine(p, static))(tokens), params


def jnp_params():
  k1, k2 = jax.random.split(KEY)
  return {"embed": jax.random.normal(k1, (66, 16)), "out": jax.random.normal(k2, (16, 64)) / 4}


def jnp_segment_average(params, tokens_RxT):
  """Plain jnp: each position averages the embeddings of its own segment up to itself (restarts at every BOS)."""
  seg_RxT = jnp.cumsum(tokens_RxT == alphabet.BOS, axis=1)
  t = tokens_RxT.shape[1]
  sees_RxTxT = (seg_RxT[:, :, None] == seg_RxT[:, None, :]) & jnp.tril(jnp.ones((t, t), bool))
  h_RxTxD = jnp.einsum("rts,rsd->rtd", sees_RxTxT.astype(jnp.float32), params["embed"][tokens_RxT])
  return jnp.tanh(h_RxTxD / sees_RxTxT.sum(-1, keepdims=True)) @ params["out"]


def jnp_batch_statistics(params, tokens_RxT):
  """Batch-norm-like: embeddings normalised by their mean over the rows of the batch (causal, but rows see each other)."""
  h_RxTxD = params["embed"][tokens_RxT]
  return jnp.tanh(h_RxTxD - h_RxTxD.mean(axis=0)) @ params["out"]


# name -> (model factory, check_model kwargs, expected status per check, expected ok)
MODELS = {
    "jnp segment average, packed": (lambda: (jnp_segment_average, jnp_params()), {"packed": True},
                                    {"causality": "PASS", "segment safety": "PASS", "row independence": "PASS"}, True),
    "linen causal conv": (lambda: linen(LinenConv(0)), {}, {"causality": "PASS", "segment safety": "WARN"}, True),
    "linen GRU": (lambda: linen(LinenGRU()), {}, {"causality": "PASS", "segment safety": "WARN"}, True),
    "nnx causal attention": (lambda: nnx_model(NnxAttention(True, nnx.Rngs(0))), {}, {"causality": "PASS"}, True),
    "nnx unmasked attention": (lambda: nnx_model(NnxAttention(False, nnx.Rngs(0))), {}, {"causality": "FAIL"}, False),
    "equinox causal conv": (lambda: eqx_model(EqxConv(0, KEY)), {}, {"causality": "PASS"}, True),
    "equinox centred conv": (lambda: eqx_model(EqxConv(1, KEY)), {}, {"causality": "FAIL"}, False),
    "jnp batch statistics": (lambda: (jnp_batch_statistics, jnp_params()), {},
                             {"causality": "PASS", "row independence": "FAIL"}, False),
}


# The README runs check_model on its linen, NNX and Equinox causal convolutions (test_readme_check_model below).
SLOW = ("linen causal conv", "equinox causal conv")


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in MODELS])
def test_check_model_report(name):
  """Every model gets the full report; the statuses named in MODELS are asserted, and what the rest must be."""
  factory, kwargs, expected, ok = MODELS[name]
  apply_fn, params = factory()
  report = jaxequiv.check_model(apply_fn, params, seq_len=T, sentences=SENTENCES, **kwargs)
  print(f"\n{name}\n{report}")
  assert {c.name: c.status for c in report.checks if c.name in expected} == expected
  assert report.ok == ok
  assert str(report).splitlines()[-1].endswith("OK" if ok else "FAIL")
  if expected.get("row independence") != "FAIL":  # a model whose rows see each other fails the unpacked path too
    assert report["independent path"].passed == (expected["causality"] == "PASS"), report["independent path"].line
    assert report["accumulation"].passed, report["accumulation"].line
  # The equivalence holds in bits for every model, causal or not: by itself it proves nothing about the model.
  assert report["equivalence float32"].passed, report["equivalence float32"].line


def test_non_causal_model_passes_the_bits_and_the_report_says_why_that_is_not_enough():
  """A linen convolution that sees the next token: every check of the bits passes, causality fails and says where."""
  report = jaxequiv.check_model(*linen(LinenConv(1)), seq_len=T, sentences=SENTENCES)
  print(report)
  assert report["independent path"].status == "FAIL" and report["accumulation"].passed
  causality = report["causality"]
  assert not causality.passed and "first leak at t=0" in causality.detail
  assert "position 0" in causality.detail and "token at 1 alone" in causality.detail
  assert report["equivalence float32"].passed and not report.ok
  assert any("not enough" in n and "reads the character it is asked to predict" in n for n in report.notes)


def test_causal_conv_leaks_across_bos_so_packing_fails_when_required():
  apply_fn, params = linen(LinenConv(0))
  logits_fn = lambda tokens: np.asarray(jax.jit(apply_fn)(params, tokens))  # noqa: E731
  check = model_check.segment_safety(logits_fn, T, np.random.default_rng(0), required=True)
  print(check.line)
  assert check.status == "FAIL" and "does not restart at BOS" in check.detail and "packed=True" in check.detail
  # The library's transformer restarts at BOS: the same probe passes.
  cfg = jaxequiv.ModelConfig(num_layers=1, width=16, num_heads=2, seq_len=T)
  p = jaxequiv.init(KEY, cfg)
  ok = model_check.segment_safety(lambda x: np.asarray(jax.jit(jaxequiv.make_apply(cfg))(p, x)), T,
                                  np.random.default_rng(0))
  print(ok.line)
  assert ok.passed


def test_absolute_positions_fail_the_restart_half_of_segment_safety():
  """BOS-masked, but position embeddings count from the row's start: isolation holds, restart does not."""
  params = {**jnp_params(), "pos": jax.random.normal(KEY, (T, 16))}
  apply_fn = lambda p, x: jnp_segment_average(p, x) + (p["pos"][: x.shape[1]] @ p["out"])[None]  # noqa: E731
  check = model_check.segment_safety(lambda x: np.asarray(jax.jit(apply_fn)(params, x)), T, np.random.default_rng(0))
  print(check.line)
  assert check.status == "FAIL" and "positions do not restart at BOS" in check.detail


def gather_first_xent(params, batch, apply_fn):
  """The classifier as usually written: gather the N example logits, then the cross-entropy. Same maths."""
  logits_NxV = apply_fn(params, batch.tokens)[batch.rows, batch.positions]
  return optax.softmax_cross_entropy_with_integer_labels(logits_NxV.astype(jnp.float32), batch.labels).mean()


def test_gather_first_classifier_is_the_same_maths_and_not_the_same_bits():
  """Measured on CPU (jax 0.10.2): the gathered classifier's gradients differ from the LM's in 1,020 of 3,185
  elements, by at most 6.7e-08 relative per leaf (96 ULP). The bits depend on the program (scatter into [R, T], then
  the LM's weighted sum), not only on the maths. Any backend: the test asserts what it measures (float32 rounding
  only, and the equivalence check fails, naming the leaves, exactly when the bits differ).
  """
  apply_fn, params = linen(LinenConv(0))
  lm_fn = model_check.value_and_grad(losses.lm_nll, apply_fn)
  gathered = model_check.value_and_grad(gather_first_xent, apply_fn)
  ref = lm_fn(params, batches.lm_batch(batches.canonical_order(SENTENCES), T))
  got = gathered(params, packing.pack(prefix.prefix_examples(SENTENCES), T))
  bits = bitwise.compare_bits(ref, got)
  err = bitwise.max_relative_error(ref, got)
  check = model_check.equivalence(lm_fn, gathered, params, SENTENCES, T)
  print(f"gather-first vs LM on {jax.default_backend()}: {bits.mismatched_elements} of {bits.elements} elements differ"
        f" in bits, max relative error per leaf {err:.2e}, max ULP distance"
        f" {bitwise.max_ulp_distance(ref[1], got[1], rel_floor=1e-3)}\n{check.line}")
  assert err <= 1e-5  # same maths: float32 rounding only
  assert check.passed == bits.equal  # the check reports what was measured
  if not bits.equal:
    assert "bits differ" in check.detail and "plain" in check.detail


def test_model_dtype_gets_its_own_equivalence_check():
  apply_fn, params = (jnp_segment_average, jax.tree.map(lambda x: x.astype(jnp.bfloat16), jnp_params()))
  report = jaxequiv.check_model(apply_fn, params, seq_len=T, sentences=SENTENCES[:4])
  print(report)
  assert [c.name for c in report.checks if c.name.startswith("equivalence")] == ["equivalence float32",
                                                                                  "equivalence bfloat16"]
  assert report["equivalence bfloat16"].passed


@pytest.mark.parametrize("kwargs, message", [
    ({"seq_len": 2}, "seq_len must be an integer >= 3"),
    ({"seq_len": T, "sentences": ["Hi."]}, "at least 2 sentences"),
    ({"seq_len": T, "sentences": ["Hi.", "Too long a sentence."]}, "Too long"),
])
def test_bad_input_is_named(kwargs, message):
  with pytest.raises(ValueError, match=message):
    jaxequiv.check_model(jnp_segment_average, jnp_params(), **kwargs)


def test_logits_of_the_wrong_shape_are_named():
  with pytest.raises(ValueError, match=r"logits of shape \(4, 8, 16\).*expected \(4, 8, 64\)"):
    jaxequiv.check_model(lambda p, x: p["embed"][x], jnp_params(), seq_len=T)


def test_report_lookup_names_the_checks():
  report = model_check.ModelReport((model_check.Check("causality", True, "ok"),))
  assert report.ok and report["causality"].line == "PASS  causality: ok"
  with pytest.raises(KeyError, match="causality"):
    report["segment"]  # pylint: disable=pointless-statement


DOCS = pathlib.Path(__file__).parent.parent / "docs" / "own_model.md"
PAGES = {"README.md": pathlib.Path(__file__).parent.parent / "README.md", "docs/own_model.md": DOCS}


def _models_and_check(page):
  blocks = re.findall(r"```python\n(.*?)```", PAGES[page].read_text(), re.S)
  return [b for b in blocks if "jaxequiv.lm_nll" in b], next(b for b in blocks if "check_model" in b)


# The page's linen example is the README's (tests/docs_test.py checks which text is where), so it runs once.
@pytest.mark.parametrize("page, index", [("README.md", 0), ("docs/own_model.md", 1), ("docs/own_model.md", 2)],
                         ids=["readme-linen", "nnx", "equinox"])
def test_documented_check_model(page, index):
  """The README and the own-model page end with check_model; run it after each of their models."""
  models, check = _models_and_check(page)
  scope, out = {}, io.StringIO()
  with contextlib.redirect_stdout(out):
    exec(compile(models[index], page, "exec"), scope)  # pylint: disable=exec-used
    exec(compile(check, page, "exec"), scope)  # pylint: disable=exec-used
  print(out.getvalue())
  report = scope["report"]
  assert report.ok and str(report) in out.getvalue()
  assert {c.name: c.status for c in report.checks} == {
      "causality": "PASS", "segment safety": "WARN", "row independence": "PASS", "equivalence float32": "PASS",
      "independent path": "PASS", "accumulation": "PASS"}
