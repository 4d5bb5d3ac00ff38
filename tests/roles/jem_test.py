"""JEM identities, jit-compiled: p(y|x) from the joint is softmax(f(x)); log p(x) = logsumexp f(x) - log Z, with Z
enumerated exactly over the 2^16 states of 4x4 binary digits."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from jaxequiv.roles import digits, jem, mlp

EPS = float(np.finfo(np.float32).eps)


@jax.jit
def _cond_vs_softmax(f, log_z):
  return jem.conditional_from_joint(jem.log_joint(f, log_z)), jax.nn.log_softmax(f)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**16), scale=st.sampled_from([0.1, 1.0, 10.0]), log_z=st.floats(-50, 50))
def test_conditional_from_the_joint_is_the_softmax(seed, scale, log_z):
  """Tolerance: 8 eps (max|f| + |log Z| + 1): shifting by log Z and back rounds at that scale, nothing more."""
  f = scale * jax.random.normal(jax.random.key(seed), (16, 10))
  a, b = _cond_vs_softmax(f, jnp.float32(log_z))
  err, tol = float(jnp.max(jnp.abs(a - b))), 8 * EPS * (float(jnp.max(jnp.abs(f))) + abs(log_z) + 1)
  print(f"scale {scale} log Z {log_z:.2f}: max |log p(y|x) - log_softmax f| = {err:.2e} (tol {tol:.1e})")
  assert err <= tol


@functools.lru_cache(maxsize=None)
def _net():
  layers = mlp.init_mlp(jax.random.key(3), [16, 32, 10], scale=2.0)
  return layers, jnp.asarray(digits.all_binary_states(16))


def _f(layers, x):
  return mlp.mlp_apply(layers, x, "relu")


def test_exact_log_z_normalises_the_joint_and_the_marginal():
  layers, states = _net()

  @jax.jit
  def sums(layers):
    logits_fn = functools.partial(_f, layers)
    log_z = jem.exact_log_z(logits_fn, states)
    f = logits_fn(states)
    return (log_z, jax.nn.logsumexp(jem.log_joint(f, log_z)), jax.nn.logsumexp(jem.log_marginal(f, log_z)),
            jnp.max(jnp.abs(jem.conditional_from_joint(jem.log_joint(f, log_z)) - jax.nn.log_softmax(f))), f)

  log_z, lse_joint, lse_marginal, cond_err, f = sums(layers)
  ref = np.logaddexp.reduce(np.asarray(f, np.float64).ravel())  # float64 reference for log Z
  print(f"log Z = {float(log_z):.6f} (float64 {ref:.6f}); log sum p(x,y) = {float(lse_joint):.2e};"
        f" log sum p(x) = {float(lse_marginal):.2e}; max cond err {float(cond_err):.2e}")
  # float32 logsumexp over 655,360 terms: relative error <= 1e-6 * log2(#terms)-ish; 1e-5 absolute here.
  assert abs(float(log_z) - ref) < 1e-5 * max(1.0, abs(ref))
  assert abs(float(lse_joint)) < 1e-5 and abs(float(lse_marginal)) < 1e-5 and float(cond_err) < 1e-5
  # Negative control: enumerating only half the states does not normalise.
  half = jax.jit(lambda l: jem.exact_log_z(functools.partial(_f, l), states[::2]))(layers)
  assert abs(float(half) - float(log_z)) > 0.05


def test_exact_ml_gradient_is_data_term_minus_model_expectation():
  """grad log Z = E_{p(x,y)}[grad f(x)_y]: the exact ML gradient needs no sampling (relative error <= 1e-4)."""
  layers, states = _net()
  x, y = states[:8], jnp.arange(8) % 10

  @jax.jit
  def both(layers):
    g = jax.grad(lambda l: jem.exact_joint_nll(functools.partial(_f, l), x, y, states))(layers)
    f, vjp = jax.vjp(lambda l: _f(l, states), layers)
    p = jax.nn.softmax(f.ravel()).reshape(f.shape)  # p(x, y) over all states
    onehot = jax.nn.one_hot(y, 10) / x.shape[0]
    (g_model,) = vjp(p)
    (g_data,) = jax.vjp(lambda l: _f(l, x), layers)[1](onehot)
    return g, jax.tree.map(lambda a, b: a - b, g_model, g_data)

  g, g_ref = both(layers)
  err = max(float(jnp.max(jnp.abs(a - b)) / (jnp.max(jnp.abs(b)) + 1e-12))
            for a, b in zip(jax.tree.leaves(g), jax.tree.leaves(g_ref)))
  print(f"exact ML gradient vs data - model expectation: max relative error {err:.2e}")
  assert err < 1e-4


def test_strings_and_states_are_consistent():
  bits, labels = digits.binary_4x4()
  assert bits.shape == (1797, 16) and 0.2 < bits.mean() < 0.8
  s = digits.as_strings(bits[:3], labels[:3])
  assert all(len(t) == 18 and t.endswith(".") for t in s) and s[0][16] == str(labels[0])
  idx = digits.bits_to_index(bits[:5])
  np.testing.assert_array_equal(digits.all_binary_states(16)[idx], bits[:5])
  with pytest.raises(ValueError, match="bits"):
    digits.as_strings(np.full((1, 16), 2.0), [0])


def test_sgld_without_noise_is_gradient_descent_on_the_energy():
  layers, _ = _net()
  f = functools.partial(_f, layers)
  x0 = jax.random.uniform(jax.random.key(0), (4, 16))
  x1 = jax.jit(lambda x: jem.sgld(f, x, jax.random.key(1), num_steps=1, step_size=0.1, noise=0.0))(x0)
  ref = x0 - 0.1 * jax.grad(lambda x: jnp.sum(jem.energy(f(x))))(x0)
  err = float(jnp.max(jnp.abs(x1 - ref)))
  print(f"one noiseless SGLD step vs x - a grad E: {err:.1e}")
  assert err < 1e-6 and float(jnp.max(jnp.abs(x1 - x0))) > 0


def test_sgld_bounds_keep_samples_in_the_data_range():
  layers, _ = _net()
  f = functools.partial(_f, layers)
  x0 = jax.random.uniform(jax.random.key(0), (4, 16), minval=-1.0, maxval=1.0)
  free, clipped = jax.jit(lambda x: (jem.sgld(f, x, jax.random.key(1), 5, 10.0, 0.5),
                                     jem.sgld(f, x, jax.random.key(1), 5, 10.0, 0.5, -1.0, 1.0)))(x0)
  print(f"max |x| after 5 big SGLD steps: free {float(jnp.max(jnp.abs(free))):.2f},"
        f" clipped {float(jnp.max(jnp.abs(clipped))):.2f}")
  assert float(jnp.max(jnp.abs(free))) > 1.0  # negative control: the unbounded chain leaves [-1, 1]
  assert float(jnp.min(clipped)) >= -1.0 and float(jnp.max(clipped)) <= 1.0


def test_wilson_interval():
  """Against the closed form at k = 0 (upper end z^2 / (n + z^2)), symmetry k <-> n - k, and one-line errors."""
  from jaxequiv.roles import jem_sgld  # pylint: disable=import-outside-toplevel
  lo, hi = jem_sgld.wilson_interval(0, 10)
  assert lo == 0.0 and abs(hi - 1.96**2 / (10 + 1.96**2)) < 1e-12
  for k in range(11):
    a, b = jem_sgld.wilson_interval(k, 10)
    c, d = jem_sgld.wilson_interval(10 - k, 10)
    assert a <= k / 10 <= b and abs(a - (1 - d)) < 1e-12 and abs(b - (1 - c)) < 1e-12
  with pytest.raises(ValueError, match="k=4, n=3"):
    jem_sgld.wilson_interval(4, 3)
  assert jem_sgld.diverged(False, 0.99, 0.5) and jem_sgld.diverged(True, float("nan"), 0.5)
  assert jem_sgld.diverged(True, 0.4, 0.5) and not jem_sgld.diverged(True, 0.6, 0.5)


def test_sgld_seeds_train_vmapped():
  """Two seeds of the stabilised recipe at a tiny size: finite curves, the divergence flag as its rule says."""
  import dataclasses  # pylint: disable=import-outside-toplevel
  from jaxequiv.roles import jem_sgld  # pylint: disable=import-outside-toplevel
  cfg = dataclasses.replace(jem_sgld.VARIANTS["sgld_stable"], hidden=8, buffer_size=16, sgld_steps=2, batch_size=8)
  runs = jem_sgld.train_seeds([0, 1], 4, cfg, acc_floor=0.5, curve_every=1)
  print([(r["test_acc"], r["diverged"], r["max_abs_gap"]) for r in runs])
  assert len(runs) == 2 and all(len(r["curve_loss"]) == 4 and r["finite"] for r in runs)
  assert all(r["diverged"] == (r["test_acc"] < 0.5) for r in runs)
  assert runs[0]["curve_loss"] != runs[1]["curve_loss"]  # the seeds differ
  assert np.max(np.abs(runs[0]["samples"])) <= 1.0  # the stabilised recipe clips its chains
