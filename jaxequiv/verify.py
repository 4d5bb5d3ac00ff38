"""``python -m jaxequiv verify``: check the equivalence on this backend, and time it.

Every check is jit-compiled and compares raw bits. The report names what was
compared (leaves, elements); the exit status is non-zero if any check fails.
The model checks (causality, segment safety, row independence), the equivalence
and the independent path are ``jaxequiv.model_check``'s, run here on the
library's own transformer; ``check_model`` runs them on yours.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import statistics
import time
from collections.abc import Callable

import jax
import numpy as np
import optax

from jaxequiv import batches, bitwise, determinism, losses, model, model_check, packing, prefix, training
from jaxequiv.configs import VerifyConfig  # defined there, importable without JAX
from jaxequiv.model_check import default_sentences


def _time(fn, *args, repeats: int) -> float:
  jax.block_until_ready(fn(*args))  # compile and warm up
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    jax.block_until_ready(fn(*args))
    times.append(time.perf_counter() - t0)
  return statistics.median(times)


def _bitwise_line(name: str, what: str, report: bitwise.BitwiseReport) -> tuple[bool, str]:
  return report.equal, f"{'PASS' if report.equal else 'FAIL'}  {name}: {what}: {model_check.bits_detail(report)}"


def run_checks(
    cfg: VerifyConfig = VerifyConfig(),
    lm_loss: Callable = losses.lm_nll,
    clf_loss: Callable = losses.classification_xent,
    out: Callable[[str], None] = print,
) -> bool:
  """Runs every check, printing a report through ``out``; returns True if all pass.

  ``lm_loss`` and ``clf_loss`` are injectable so that a test can show a broken
  loss is caught.
  """
  determinism.warn_if_unset()  # once, in plain words, where a GPU runs without the determinism flags
  devices = jax.devices()
  out(f"jaxequiv verify: backend {jax.default_backend()} ({len(devices)} device(s): {devices[0].device_kind}),"
      f" jax {jax.__version__}, XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}")
  sentences = default_sentences(cfg.num_sentences, cfg.seq_len, cfg.seed)
  t, r = cfg.seq_len, len(sentences)
  lm = batches.lm_batch(batches.canonical_order(sentences), t)
  ex = prefix.prefix_examples(sentences)
  packed = packing.pack(ex, t)
  naive = packing.unpacked(ex, t)
  out(f"model: {cfg.num_layers} layers, width {cfg.width}, {cfg.num_heads} heads, T={t}, {cfg.activation};"
      f" batch: {r} sentences = {len(ex)} predictions; packed rows {packed.tokens.shape[0]}, unpacked rows"
      f" {naive.tokens.shape[0]}")

  def grad_fns(dtype):
    mcfg = model.ModelConfig(cfg.num_layers, cfg.width, cfg.num_heads, t, cfg.activation, dtype)
    apply_fn = model.make_apply(mcfg)
    params = model.init(jax.random.key(cfg.seed), mcfg)
    return params, model_check.value_and_grad(lm_loss, apply_fn), model_check.value_and_grad(clf_loss, apply_fn), apply_fn

  params, lm_fn, clf_fn, apply_fn = grad_fns("float32")
  apply_jit, rng = jax.jit(apply_fn), np.random.default_rng(cfg.seed)
  logits_fn = lambda tokens: np.asarray(apply_jit(params, tokens))  # noqa: E731
  p16, lm16, clf16, _ = grad_fns("bfloat16")
  checks = [model_check.causality(logits_fn, t, rng), model_check.segment_safety(logits_fn, t, rng),
            model_check.row_independence(logits_fn, t, rng),
            model_check.equivalence(lm_fn, clf_fn, params, sentences, t, seed=cfg.seed, name="float32 gradients"),
            model_check.equivalence(lm16, clf16, p16, sentences, t, seed=cfg.seed,
                                    name="bfloat16 compute")]  # f32 params, bf16 compute
  results = [(c.passed, c.line) for c in checks]

  # Trajectories: AdamW from the same init, the same sentence batches. Not donated: both start from ``params``.
  opt = optax.adamw(1e-3)
  lm_step, clf_step = (training.jit_train_step(
      training.make_train_step(functools.partial(loss, apply_fn=apply_fn), opt), donate=False)
                        for loss in (lm_loss, clf_loss))
  rng = np.random.default_rng(cfg.seed + 1)
  sa = sb = training.init_train_state(params, opt)
  half = max(1, r // 2)
  compared, what = 0, f"params after each of {cfg.steps} steps, LM vs packed"
  for i in range(cfg.steps):
    chunk = [sentences[j] for j in rng.choice(r, half, replace=False)]
    e = prefix.prefix_examples(chunk)
    sa, _ = lm_step(sa, batches.lm_batch(batches.canonical_order(chunk), t))
    sb, _ = clf_step(sb, batches.pad_examples(packing.pack(e.take(rng.permutation(len(e))), t), half * t))
    rep = bitwise.compare_bits(sa.params, sb.params)
    compared += rep.elements
    if not rep.equal:
      what += f" (first differs after step {i + 1})"
      break
  rep = dataclasses.replace(rep, elements=compared)
  results.append(_bitwise_line("AdamW trajectory", what, rep))

  unpacked = model_check.independent_path(lm_fn, clf_fn, params, sentences, t)
  results.append((unpacked.passed, unpacked.line))
  for _, line in results:
    out(line)

  t_lm = _time(lm_fn, params, lm, repeats=cfg.repeats)
  t_pk = _time(clf_fn, params, packed, repeats=cfg.repeats)
  t_un = _time(clf_fn, params, naive, repeats=cfg.repeats)
  out(f"step time (jit value_and_grad, median of {cfg.repeats}): LM {t_lm * 1e3:.2f} ms, packed"
      f" {t_pk * 1e3:.2f} ms ({t_pk / t_lm:.2f}x LM), unpacked {t_un * 1e3:.2f} ms ({t_un / t_lm:.2f}x LM)")
  passed = sum(ok for ok, _ in results)
  out(f"{passed} of {len(results)} checks passed" + ("" if passed == len(results) else ": FAIL"))
  return passed == len(results)
