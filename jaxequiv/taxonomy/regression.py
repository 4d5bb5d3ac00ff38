r"""Regression as a conditional likelihood: Gaussian heads, bins, digit strings.

* **Squared error is a Gaussian NLL.** With a fixed variance
  :math:`\sigma^2 = 1/2`, :math:`-\log \mathcal N(y; \mu, \sigma^2) =
  \tfrac12 \log \pi + (y - \mu)^2`: squared error plus a constant, with the same
  gradients (bit for bit: dividing by :math:`2\sigma^2 = 1` is exact).
* **Binned regression is K-way classification is digit-by-digit generation.**
  A number in :math:`[lo, hi)` falls in one of :math:`K = B^L` equal bins, and
  bin k is spelled as its L base-B digits plus ``'.'`` (``digit_labels``; with
  B = 10, L = 2 the value 2.6 on [0, 10) is ``"26."``). These K strings form a
  ``jaxequiv.labels`` trie, so the K-way softmax and the per-digit
  conditionals are exact conversions of one another, and the histogram density
  NLL (density :math:`p(k)/w`, :math:`w = (hi - lo)/B^L`) is

  .. math:: -\log p(y) = \sum_{t<L} \mathrm{xent}_t - L \log B + \log(hi - lo).

* :math:`E[y]` by recursion over the trie, :math:`E[n] = \sum_c p(c \mid n)
  E[\mathrm{child}(n, c)]` with bin centres at the leaves, equals the
  enumeration :math:`\sum_k p(k) c_k`.
* **Two-hot** targets (MuZero, DreamerV3) put mass on the two support points
  around y with weights that make the expectation exactly y; the
  cross-entropy optimum over a data set is the mean of the two-hot vectors, so
  its expectation is the mean target: the squared-error optimum.
* **HL-Gauss** (Farebrother et al., 2024): bin probabilities are erf
  differences of :math:`\mathcal N(y, \sigma^2)` over the bin edges,
  renormalised to the support. Its mean is biased, by at most
  ``hl_gauss_bias_bound``: tiny away from the edges, large at them.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import erf

from jaxequiv import labels

HALF_LOG_PI = 0.5 * math.log(math.pi)


def squared_error(mean_B: jax.Array, y_B: jax.Array) -> jax.Array:
  """Mean squared error :math:`\\frac1B \\sum_b (y_b - \\mu_b)^2`.

  Examples:
    >>> import jax.numpy as jnp
    >>> float(squared_error(jnp.array([1.0, 2.0]), jnp.array([2.0, 2.0])))
    0.5
  """
  return jnp.mean(jnp.square(y_B - mean_B))


def gaussian_nll(mean_B: jax.Array, y_B: jax.Array, var: jax.Array | float) -> jax.Array:
  r"""Mean Gaussian NLL :math:`\frac12 \log(2\pi\sigma^2) + (y - \mu)^2 / (2\sigma^2)`.

  With ``var = 0.5`` this is ``squared_error + 0.5 * log(pi)`` and its
  gradient with respect to ``mean_B`` equals the squared error's bit for bit.

  Args:
    mean_B: predicted means ``[B]``.
    y_B: targets ``[B]``.
    var: variance, a scalar or ``[B]`` (> 0).

  Examples:
    >>> import jax.numpy as jnp, math
    >>> m, y = jnp.array([1.0, 2.0]), jnp.array([2.0, 2.0])
    >>> round(float(gaussian_nll(m, y, 0.5)) - 0.5 * math.log(math.pi), 6)
    0.5
  """
  var = jnp.asarray(var, jnp.float32)
  return jnp.mean(0.5 * jnp.log(2 * jnp.pi * var) + jnp.square(y_B - mean_B) / (2 * var))


def gaussian_nll_log_var(mean_B: jax.Array, log_var_B: jax.Array, y_B: jax.Array) -> jax.Array:
  """Mean Gaussian NLL with a learned log-variance head ``[B]`` (heteroscedastic regression)."""
  return jnp.mean(0.5 * (jnp.log(2 * jnp.pi) + log_var_B + jnp.square(y_B - mean_B) * jnp.exp(-log_var_B)))


# --- bins spelled as digit strings -------------------------------------------------------------------------


def _check_base(base: int, num_digits: int) -> None:
  if not (isinstance(base, int) and 2 <= base <= 10):
    raise ValueError(f"base must be an int in 2..10 (digits '0'..'9'), got {base!r}")
  if not (isinstance(num_digits, int) and num_digits >= 1):
    raise ValueError(f"num_digits must be an int >= 1, got {num_digits!r}")


def digit_labels(base: int, num_digits: int) -> list[str]:
  """The ``K = base**num_digits`` bin labels, class k = k written with L base-B digits then ``'.'``.

  Examples:
    >>> digit_labels(2, 2)
    ['00.', '01.', '10.', '11.']
  """
  _check_base(base, num_digits)
  out = []
  for k in range(base**num_digits):
    digits = [(k // base**(num_digits - 1 - t)) % base for t in range(num_digits)]
    out.append("".join(str(d) for d in digits) + ".")
  return out


def digit_trie(base: int, num_digits: int) -> labels.LabelTrie:
  """The label trie of ``digit_labels(base, num_digits)``: class k is bin k."""
  return labels.label_trie(digit_labels(base, num_digits))


def value_to_bin(y_B: jax.Array, lo: float, hi: float, num_bins: int) -> jax.Array:
  """Bin index of each value, ``floor((y - lo) / (hi - lo) * K)`` clipped to ``0..K-1``, int32 ``[B]``."""
  if not hi > lo:
    raise ValueError(f"need hi > lo, got lo={lo}, hi={hi}")
  k = jnp.floor((jnp.asarray(y_B, jnp.float32) - lo) / (hi - lo) * num_bins)
  return jnp.clip(k, 0, num_bins - 1).astype(jnp.int32)


def bin_centers(lo: float, hi: float, num_bins: int) -> np.ndarray:
  """``[K]`` float32 centres ``lo + (k + 1/2) w`` of K equal bins on ``[lo, hi)``."""
  w = (hi - lo) / num_bins
  return (lo + (np.arange(num_bins) + 0.5) * w).astype(np.float32)


def histogram_nll(class_logits_BxK: jax.Array, bin_B: jax.Array, lo: float, hi: float) -> jax.Array:
  r"""Per-example NLL of the piecewise-constant density :math:`p(k)/w`: ``-log_softmax[k] + log w``, ``[B]``."""
  k = class_logits_BxK.shape[-1]
  lp = jax.nn.log_softmax(class_logits_BxK.astype(jnp.float32), axis=-1)
  return -jnp.take_along_axis(lp, bin_B[:, None], axis=-1)[:, 0] + math.log((hi - lo) / k)


def digit_xents(trie: labels.LabelTrie, class_logits_BxK: jax.Array, bin_B: jax.Array) -> jax.Array:
  """Per-character cross-entropies along each target's digit string, ``[B, L+1]`` (the last is ``'.'``: 0)."""
  lp_BxKxL = labels.path_char_logprobs(trie, class_logits_BxK)
  return -jnp.take_along_axis(lp_BxKxL, bin_B[:, None, None], axis=1)[:, 0]


def expected_value_enum(class_logits_BxK: jax.Array, values_K: jax.Array) -> jax.Array:
  r""":math:`E[y] = \sum_k p(k) v_k` by enumeration, ``[B]``."""
  return jax.nn.softmax(class_logits_BxK.astype(jnp.float32), axis=-1) @ jnp.asarray(values_K, jnp.float32)


def expected_value_trie(trie: labels.LabelTrie, node_logprobs_BxNx64: jax.Array, values_K: jax.Array) -> jax.Array:
  r""":math:`E[y]` by recursion over the trie from per-node character distributions, ``[B]``.

  .. math:: E[n] = v_k \text{ at the leaf of class } k, \qquad
     E[n] = \sum_c p(c \mid n)\, E[\mathrm{child}(n, c)] \text{ otherwise}

  Runs Lmax + 1 sweeps (the trie's depth), so it needs only the character
  model, never the K-way distribution.

  Args:
    trie: the labels' trie.
    node_logprobs_BxNx64: log p(c | n) at every node (e.g. ``labels.char_conditionals``,
      or a decoder's constrained log-probs); -inf off the trie.
    values_K: the value of each class (bin centres).

  Returns:
    ``[B]`` float32 expectations.
  """
  child = jnp.asarray(trie.child)
  leaf = jnp.asarray(trie.leaf_class)
  leaf_val_N = jnp.where(leaf >= 0, jnp.asarray(values_K, jnp.float32)[jnp.maximum(leaf, 0)], 0.0)
  p_BxNx64 = jnp.where(child[None] >= 0, jnp.exp(node_logprobs_BxNx64), 0.0)
  e_BxN = jnp.broadcast_to(leaf_val_N, p_BxNx64.shape[:2])
  for _ in range(trie.max_len + 1):
    inner = jnp.sum(p_BxNx64 * e_BxN[:, jnp.maximum(child, 0)], axis=-1)
    e_BxN = jnp.where(leaf[None] >= 0, leaf_val_N[None], inner)
  return e_BxN[:, 0]


# --- two-hot and HL-Gauss targets ---------------------------------------------------------------------------


def two_hot(y_B: jax.Array, support_K: jax.Array) -> jax.Array:
  r"""Two-hot target distributions ``[B, K]`` on a sorted support; mean-preserving.

  For :math:`z_i \le y \le z_{i+1}`: :math:`p_{i+1} = (y - z_i)/(z_{i+1} - z_i)`,
  :math:`p_i = 1 - p_{i+1}`, so :math:`\sum_j p_j z_j = y` (values outside the
  support are clipped to it). Unlike rlax's ``transform_to_2hot``, which adds
  1e-5 to the denominator :math:`z_{i+1} - z_i` and therefore shifts the mean
  by about :math:`10^{-5} (y - z_i) / \Delta z` of a bin, there is no epsilon:
  the support is strictly increasing, so the denominator is never 0.

  Examples:
    >>> import jax.numpy as jnp
    >>> two_hot(jnp.array([1.25]), jnp.arange(4.0)).tolist()
    [[0.0, 0.75, 0.25, 0.0]]
  """
  z = jnp.asarray(support_K, jnp.float32)
  y = jnp.clip(jnp.asarray(y_B, jnp.float32), z[0], z[-1])
  i = jnp.clip(jnp.searchsorted(z, y, side="right") - 1, 0, z.shape[0] - 2)
  p_hi = (y - z[i]) / (z[i + 1] - z[i])
  k = jnp.arange(z.shape[0])
  return jnp.where(k == i[:, None], (1 - p_hi)[:, None], 0.0) + jnp.where(k == i[:, None] + 1, p_hi[:, None], 0.0)


def hl_gauss(y_B: jax.Array, edges_K1: jax.Array, sigma: float) -> jax.Array:
  r"""HL-Gauss targets ``[B, K]``: :math:`p_i \propto \Phi((e_{i+1} - y)/\sigma) - \Phi((e_i - y)/\sigma)`.

  Args:
    y_B: targets.
    edges_K1: ``[K+1]`` increasing bin edges.
    sigma: smoothing scale (the paper uses 0.75 bin widths).
  """
  e = jnp.asarray(edges_K1, jnp.float32)
  cdf = erf((e[None, :] - jnp.asarray(y_B, jnp.float32)[:, None]) / (math.sqrt(2.0) * sigma))
  return (cdf[:, 1:] - cdf[:, :-1]) / (cdf[:, -1:] - cdf[:, :1])


def hl_gauss_bias_bound(y: np.ndarray, lo: float, hi: float, num_bins: int, sigma: float) -> np.ndarray:
  r"""Upper bound on :math:`|E_{\mathrm{HL}}[c] - y|`, the bias of the HL-Gauss mean (float64 numpy).

  With :math:`s(x) = x - c(x)` the saw-tooth between a point and its bin centre
  (Fourier series :math:`\sum_m (w / \pi m) (-1)^{m+1} \sin(2\pi m (x - lo)/w)`)
  and :math:`E[\sin(2\pi m X / w)]` damped by :math:`e^{-2\pi^2 m^2 \sigma^2/w^2}`
  under :math:`X \sim \mathcal N(y, \sigma^2)`, the untruncated mean is off by
  at most :math:`S = \sum_{m \ge 1} (w/\pi m) e^{-2\pi^2 m^2\sigma^2/w^2}`.
  Truncating to the support removes tail mass q and moves the mean by at most
  :math:`T = \sum_{\text{tails}} \sigma\varphi(d/\sigma) + (w/2)\Phi(-d/\sigma)`,
  d the distance to that edge. Bound: :math:`(S + T)/(1 - q)`.
  """
  y = np.asarray(y, np.float64)
  w = (hi - lo) / num_bins
  m = np.arange(1, 50)
  s = np.sum(w / (np.pi * m) * np.exp(-2 * np.pi**2 * m**2 * sigma**2 / w**2))
  phi = lambda t: np.exp(-0.5 * t * t) / np.sqrt(2 * np.pi)  # noqa: E731
  big_phi = lambda t: 0.5 * np.vectorize(math.erfc)(t / np.sqrt(2))  # noqa: E731
  t_lo, t_hi = (y - lo) / sigma, (hi - y) / sigma
  tail = sigma * (phi(t_lo) + phi(t_hi)) + 0.5 * w * (big_phi(t_lo) + big_phi(t_hi))
  q = big_phi(t_lo) + big_phi(t_hi)
  return (s + tail) / np.maximum(1 - q, 1e-12)
