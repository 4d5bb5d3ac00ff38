"""The taxonomy's fast identities for ``python -m jaxequiv verify``: one ``(passed, line)`` per identity.

Every check is jit-compiled. Bitwise checks compare raw bits
(``jaxequiv.bitwise.compare_bits``); the others state their float32 tolerance
and print the measured error.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from jaxequiv import alphabet, bitwise, labels
from jaxequiv.taxonomy import cnp, embeddings, expressions, nets, regression, retrieval


def _bits_line(name: str, what: str, report: bitwise.BitwiseReport) -> tuple[bool, str]:
  detail = f"{report.elements:,} elements in {report.leaves} leaves, {report.mismatched_elements} differ"
  return report.equal, f"{'PASS' if report.equal else 'FAIL'}  {name}: {what}: {detail}"


def _tol_line(name: str, what: str, err: float, tol: float) -> tuple[bool, str]:
  ok = bool(err <= tol)
  return ok, f"{'PASS' if ok else 'FAIL'}  {name}: {what}: max error {err:.2e} (tolerance {tol:.2g})"


def gaussian_vs_squared_error() -> tuple[bool, str]:
  params = nets.mlp_init(jax.random.key(0), [3, 16, 1])
  x, y = jax.random.normal(jax.random.key(1), (32, 3)), jax.random.normal(jax.random.key(2), (32,))
  pred = lambda p: nets.mlp_apply(p, x)[:, 0]  # noqa: E731
  g1 = jax.jit(jax.grad(lambda p: regression.gaussian_nll(pred(p), y, 0.5)))(params)
  g2 = jax.jit(jax.grad(lambda p: regression.squared_error(pred(p), y)))(params)
  return _bits_line("gaussian_nll_is_squared_error", "MLP gradients, Gaussian NLL (var 1/2) vs squared error",
                    bitwise.compare_bits(g1, g2))


def binned_is_digits() -> tuple[bool, str]:
  base, num_digits, lo, hi = 10, 3, 0.0, 1.0
  trie, k = regression.digit_trie(base, num_digits), base**num_digits
  logits = 3 * jax.random.normal(jax.random.key(0), (8, k))
  bins = jax.random.randint(jax.random.key(1), (8,), 0, k)

  @jax.jit
  def f(logits, bins):
    hist = regression.histogram_nll(logits, bins, lo, hi)
    digits = jnp.sum(regression.digit_xents(trie, logits, bins), -1) - num_digits * math.log(base)
    return jnp.max(jnp.abs(hist - digits))

  return _tol_line("binned_regression_is_digit_generation",
                   f"histogram NLL vs sum of digit xents - L log B ({k} bins, B=10, L=3)", float(f(logits, bins)), 1e-4)


def expectation_by_trie() -> tuple[bool, str]:
  trie, k = regression.digit_trie(10, 3), 1000
  centres = regression.bin_centers(0.0, 1.0, k)
  logits = 2 * jax.random.normal(jax.random.key(3), (8, k))
  f = jax.jit(lambda x: jnp.max(jnp.abs(regression.expected_value_trie(trie, labels.char_conditionals(trie, x), centres)
                                        - regression.expected_value_enum(x, centres))))
  return _tol_line("expectation_by_trie_recursion", "E[y] by recursion over the digit trie vs enumeration of 1000 bins",
                   float(f(logits)), 1e-5)


def two_hot_mean() -> tuple[bool, str]:
  support = jnp.arange(16.0)
  y = jnp.arange(0, 120, 7, dtype=jnp.float32) / 8
  e = jax.jit(lambda y: regression.two_hot(y, support) @ support)(y)
  return _bits_line("two_hot_is_mean_preserving", f"E[two_hot(y)] vs y, {y.size} dyadic targets",
                    bitwise.compare_bits(e, y))


def hl_gauss_bias() -> tuple[bool, str]:
  lo, hi, k = 0.0, 10.0, 40
  sigma = 0.75 * (hi - lo) / k
  y = np.linspace(lo + 4 * sigma, hi - 4 * sigma, 501).astype(np.float32)
  e = np.asarray(jax.jit(lambda y: regression.hl_gauss(y, jnp.linspace(lo, hi, k + 1), sigma)
                         @ jnp.asarray(regression.bin_centers(lo, hi, k)))(y))
  bias = float(np.max(np.abs(e - y)))
  bound = float(np.max(regression.hl_gauss_bias_bound(y, lo, hi, k, sigma))) + 1e-5 * (hi - lo)
  return _tol_line("hl_gauss_bias_bound", "HL-Gauss mean bias >= 4 sigma from the edges vs its analytic bound",
                   bias, bound)


def clip_is_classification() -> tuple[bool, str]:
  img = embeddings.l2_normalize(jax.random.normal(jax.random.key(0), (10, 8)))
  txt = embeddings.l2_normalize(jax.random.normal(jax.random.key(1), (10, 8)))
  lab = jnp.arange(10)
  g1 = jax.jit(jax.grad(lambda u, v: embeddings.clip_loss(u, v, 14.3), argnums=(0, 1)))(img, txt)
  g2 = jax.jit(jax.grad(lambda u, v: 0.5 * (embeddings.linear_xent(u, v, lab, 14.3)
                                            + embeddings.linear_xent(v, u, lab, 14.3)), argnums=(0, 1)))(img, txt)
  return _bits_line("clip_is_classification", "CLIP gradients vs classifiers with the other modality as class weights",
                    bitwise.compare_bits(g1, g2))


def clip_log_count() -> tuple[bool, str]:
  classes = embeddings.l2_normalize(jax.random.normal(jax.random.key(2), (10, 8)))
  lab = jax.random.randint(jax.random.key(3), (64,), 0, 10)
  img = embeddings.l2_normalize(classes[lab] + 0.5 * jax.random.normal(jax.random.key(4), (64, 8)))
  f = jax.jit(lambda u, w: (embeddings.clip_loss(u, w[lab], 10.0, symmetric=False),
                            embeddings.count_adjusted_xent(u, w, lab, 10.0)))
  a, b = f(img, classes)
  return _tol_line("clip_repeated_classes_is_log_count_adjusted", "in-batch CLIP (B=64, K=10) vs adjusted 10-way loss",
                   abs(float(a) - float(b)), 1e-6 * 64)


def dsi_round_trip() -> tuple[bool, str]:
  trie = labels.label_trie(retrieval.doc_id_labels(100))
  x = 3 * jax.random.normal(jax.random.key(0), (4, 100))
  f = jax.jit(lambda x: jnp.max(jnp.abs(retrieval.decoder_to_atomic(trie, retrieval.atomic_to_decoder(trie, x))
                                        - jax.nn.log_softmax(x))))
  return _tol_line("dsi_atomic_is_id_decoder", "100 doc ids: atomic -> id decoder -> atomic log-probs", float(f(x)), 1e-5)


def cnp_checks() -> list[tuple[bool, str]]:
  params = cnp.init(jax.random.key(0), width=32, r_dim=32)
  batch = cnp.sample_tasks(jax.random.key(0), num=8, num_ctx=10, num_tgt=12)
  g1 = jax.jit(jax.grad(cnp.fixed_var_nll))(params, batch)
  g2 = jax.jit(jax.grad(cnp.mean_squared_error))(params, batch)
  perm = np.random.default_rng(1).permutation(10)
  pb = batch._replace(x_ctx_BxC=batch.x_ctx_BxC[:, perm], y_ctx_BxC=batch.y_ctx_BxC[:, perm], mask_BxC=batch.mask_BxC[:, perm])
  pred = jax.jit(cnp.predict)
  err = float(jnp.max(jnp.abs(pred(params, batch)[0] - pred(params, pb)[0])))
  return [_bits_line("cnp_fixed_variance_is_squared_error", "CNP gradients, NLL (var 1/2) vs squared error",
                     bitwise.compare_bits(g1, g2)),
          _tol_line("cnp_permutation_invariance", "CNP predictions, context permuted vs not", err, 1e-5)]


def expression_grammar() -> tuple[bool, str]:
  max_len = 5
  support, grammar = expressions.decoder_support(max_len), expressions.grammar_strings(max_len)
  table = 3 * jax.random.normal(jax.random.key(0), (max_len + 1, 64))
  chars = np.zeros((len(grammar), max_len + 1), np.int32)
  for i, s in enumerate(grammar):
    chars[i, :len(s)] = alphabet.encode(s)
  lengths = np.array([len(s) for s in grammar], np.int32)
  logits = jnp.broadcast_to(table[None], (len(grammar), max_len + 1, 64))
  lp = jax.jit(expressions.string_logprobs, static_argnums=3)(logits, chars, lengths, max_len)
  err = abs(float(jnp.sum(jnp.exp(lp))) - 1.0)
  ok = support == grammar and err <= 1e-5
  return ok, (f"{'PASS' if ok else 'FAIL'}  expression_decoder_is_the_grammar: constrained decoder support vs "
              f"grammar strings up to {max_len} symbols: {len(support)} vs {len(grammar)} strings, "
              f"{'equal' if support == grammar else 'DIFFERENT'}; |total probability - 1| = {err:.2e} (tolerance 1e-05)")


def run_checks() -> list[tuple[bool, str]]:
  """Runs every taxonomy identity; returns ``(passed, line)`` for each (about 10 s on a CPU)."""
  out = [gaussian_vs_squared_error(), binned_is_digits(), expectation_by_trie(), two_hot_mean(), hl_gauss_bias(),
         clip_is_classification(), clip_log_count(), dsi_round_trip()]
  out += cnp_checks()
  out.append(expression_grammar())
  return out


if __name__ == "__main__":
  for _, line in run_checks():
    print(line)
