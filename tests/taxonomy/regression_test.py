"""Regression identities: Gaussian NLL vs squared error, bins = K-way = digits, two-hot, HL-Gauss."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxequiv import bitwise, labels
from jaxequiv.taxonomy import nets, regression as R


def _mlp_losses(var):
  params = nets.mlp_init(jax.random.key(0), [3, 16, 1])
  x = jax.random.normal(jax.random.key(1), (32, 3))
  y = jax.random.normal(jax.random.key(2), (32,))
  pred = lambda p: nets.mlp_apply(p, x)[:, 0]
  g_se = jax.jit(jax.grad(lambda p: R.squared_error(pred(p), y)))(params)
  g_nll = jax.jit(jax.grad(lambda p: R.gaussian_nll(pred(p), y, var)))(params)
  return g_se, g_nll


def test_gaussian_nll_half_variance_gradients_are_squared_error_gradients_bitwise():
  g_se, g_nll = _mlp_losses(0.5)
  report = bitwise.compare_bits(g_se, g_nll)
  print(report)
  assert report.equal and report.elements == 3 * 16 + 16 + 16 + 1


def test_gaussian_nll_other_variance_differs():  # negative: the check can fail
  g_se, g_nll = _mlp_losses(0.6)
  assert not bitwise.compare_bits(g_se, g_nll).equal


_NLL_SE = jax.jit(lambda m, y: (R.gaussian_nll(m, y, 0.5), R.squared_error(m, y)))
_GRADS = jax.jit(lambda m, y: (jax.grad(R.gaussian_nll)(m, y, 0.5), jax.grad(R.squared_error)(m, y)))


@settings(max_examples=10, deadline=None)
@given(st.integers(0, 2**31 - 1), st.floats(1e-3, 1e3))
def test_gaussian_nll_is_squared_error_plus_constant(seed, scale):
  m, y = scale * jax.random.normal(jax.random.key(seed), (2, 37))
  nll, se = _NLL_SE(m, y)
  err = abs(float(nll) - float(se) - R.HALF_LOG_PI)
  print(f"scale={scale:.3g}: |nll - se - log(pi)/2| = {err:.2e}")
  assert err <= 4 * np.finfo(np.float32).eps * (1 + float(se))
  g1, g2 = _GRADS(m, y)
  assert bitwise.compare_bits(g1, g2).equal


def test_digit_labels_spell_fixed_point_numbers():
  assert R.digit_labels(10, 2)[26] == "26."
  k = int(R.value_to_bin(jnp.array([2.65]), 0.0, 10.0, 100)[0])   # 2.6 at one decimal: bin [2.6, 2.7)
  assert R.digit_labels(10, 2)[k] == "26."
  with pytest.raises(ValueError, match="base"):
    R.digit_labels(11, 2)


@pytest.mark.parametrize("base,num_digits", [(10, 2), (2, 6)])
def test_binned_regression_is_kway_is_digit_by_digit(base, num_digits):
  trie = R.digit_trie(base, num_digits)
  k = base**num_digits
  lo, hi = -3.0, 5.0
  logits = 3 * jax.random.normal(jax.random.key(k), (16, k))
  y = jax.random.uniform(jax.random.key(1), (16,), minval=lo, maxval=hi)
  bins = R.value_to_bin(y, lo, hi, k)

  @jax.jit
  def both(logits, bins):
    kway = jax.nn.log_softmax(logits)
    digits = jnp.sum(labels.path_char_logprobs(trie, logits), axis=-1)
    hist = R.histogram_nll(logits, bins, lo, hi)
    from_digits = jnp.sum(R.digit_xents(trie, logits, bins), -1) - num_digits * math.log(base) + math.log(hi - lo)
    return kway, digits, hist, from_digits

  kway, digits, hist, from_digits = both(logits, bins)
  err_p = float(jnp.max(jnp.abs(kway - digits)))
  err_nll = float(jnp.max(jnp.abs(hist - from_digits)))
  print(f"B={base} L={num_digits}: max |log p_kway - sum digit log p| = {err_p:.2e}; histogram NLL err {err_nll:.2e}")
  tol = 2e-5 * num_digits * (1 + float(jnp.max(jnp.abs(kway))))   # float32 rounding, grows with the depth L
  assert err_p <= tol and err_nll <= tol


def test_digit_model_to_kway_sums_to_one():
  trie = R.digit_trie(10, 2)
  node_logits = jax.random.normal(jax.random.key(0), (4, trie.num_nodes, 64))
  from jaxequiv.taxonomy import retrieval
  lp = jax.jit(lambda x: retrieval.decoder_to_atomic(trie, x))(node_logits)
  err = float(jnp.max(jnp.abs(jax.nn.logsumexp(lp, axis=-1))))
  print(f"|log sum_k p(k)| = {err:.2e}")
  assert err < 1e-5


@pytest.mark.parametrize("base,num_digits", [(3, 4)])   # (10, 3) runs in checks_test
def test_expected_value_by_trie_recursion_matches_enumeration(base, num_digits):
  trie = R.digit_trie(base, num_digits)
  k = base**num_digits
  centres = R.bin_centers(0.0, 1.0, k)
  logits = 2 * jax.random.normal(jax.random.key(3), (8, k))

  @jax.jit
  def both(x):
    return R.expected_value_trie(trie, labels.char_conditionals(trie, x), centres), R.expected_value_enum(x, centres)

  rec, enum = both(logits)
  err = float(jnp.max(jnp.abs(rec - enum)))
  print(f"B={base} L={num_digits}: max |E_trie - E_enum| = {err:.2e}")
  assert err <= 1e-5 * num_digits
  wrong = R.expected_value_enum(logits, centres[::-1].copy())  # negative: another value per class differs
  assert float(jnp.max(jnp.abs(wrong - enum))) > 1e-3


_SUPPORT16 = jnp.arange(16.0)
_TWO_HOT_MEANS = jax.jit(lambda y: (R.two_hot(y, _SUPPORT16) @ _SUPPORT16,
                                    jnp.mean(R.two_hot(y, _SUPPORT16), axis=0) @ _SUPPORT16))


@settings(max_examples=10, deadline=None)
@given(st.lists(st.integers(0, 8 * 15), min_size=8, max_size=8))
def test_two_hot_is_exactly_mean_preserving(eighths):
  y = jnp.array(eighths, jnp.float32) / 8   # dyadic targets: every step below is exact in float32
  per_target, optimum_mean = _TWO_HOT_MEANS(y)
  assert bitwise.compare_bits(per_target, y).equal
  assert bitwise.compare_bits(optimum_mean, jnp.mean(y)).equal  # the xent optimum's mean is the SE optimum


def test_two_hot_mean_of_targets_is_the_cross_entropy_optimum():
  support = jnp.linspace(-1.0, 1.0, 11)
  y = jax.random.uniform(jax.random.key(0), (64,), minval=-1, maxval=1)
  q = jnp.mean(R.two_hot(y, support), axis=0)
  xent = lambda logits: -jnp.mean(R.two_hot(y, support) @ jax.nn.log_softmax(logits))
  g = jax.jit(jax.grad(xent))(jnp.log(q))
  err = abs(float(q @ support) - float(jnp.mean(y)))
  print(f"|grad xent at log q*| = {float(jnp.max(jnp.abs(g))):.2e}; |E_q*[z] - mean y| = {err:.2e}")
  assert float(jnp.max(jnp.abs(g))) < 1e-6 and err < 1e-6


def test_rlax_epsilon_breaks_mean_preservation():  # what rlax.transform_to_2hot does (documented, not copied)
  support = jnp.arange(16.0)
  y = jnp.array([0.25, 3.5, 7.75])
  i = jnp.floor(y)
  p_lo = (i + 1 - y) / (1.0 + 1e-5)
  mean = p_lo * i + (1 - p_lo) * (i + 1)
  err = float(jnp.max(jnp.abs(mean - y)))
  print(f"rlax-style two-hot: max |E - y| = {err:.2e}; ours: {float(jnp.max(jnp.abs(R.two_hot(y, support) @ support - y))):.1e}")
  assert err > 1e-6


def test_hl_gauss_bias_is_below_its_bound_and_small_away_from_edges():
  lo, hi, k = 0.0, 10.0, 40
  w = (hi - lo) / k
  sigma = 0.75 * w
  edges, centres = jnp.linspace(lo, hi, k + 1), jnp.asarray(R.bin_centers(lo, hi, k))
  y = np.linspace(lo, hi, 2001).astype(np.float32)
  bias = np.asarray(jax.jit(lambda y: R.hl_gauss(y, edges, sigma) @ centres)(y)) - y
  bound = R.hl_gauss_bias_bound(y, lo, hi, k, sigma)
  slack = 1e-5 * (hi - lo)    # float32 erf differences and sums
  inner = (y - lo >= 4 * sigma) & (hi - y >= 4 * sigma)
  print(f"max |bias| {np.max(np.abs(bias)):.3g} (at edges); away from edges (>= 4 sigma): "
        f"{np.max(np.abs(bias[inner])):.2e} <= bound {np.max(bound[inner]):.2e} = {np.max(bound[inner]) / w:.1e} bins")
  assert np.all(np.abs(bias) <= bound + slack)
  assert np.max(bound[inner]) <= 1e-3 * w
  assert np.abs(bias[0]) > 0.1 * sigma   # negative: at the edge the bias is real
