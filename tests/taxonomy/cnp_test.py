"""CNP: permutation-invariant context summary; fixed-variance loss = squared error; GP floor."""

import jax
import jax.numpy as jnp
import numpy as np

from jaxequiv import bitwise
from jaxequiv.taxonomy import cnp

PARAMS = cnp.init(jax.random.key(0), width=32, r_dim=32)
BATCH = cnp.sample_tasks(jax.random.key(0), num=8, num_ctx=10, num_tgt=12)


def test_summary_is_permutation_invariant():
  perm = np.random.default_rng(1).permutation(10)
  f = jax.jit(lambda p, b: cnp.predict(p, b))
  m1, v1 = f(PARAMS, BATCH)
  permuted = BATCH._replace(x_ctx_BxC=BATCH.x_ctx_BxC[:, perm], y_ctx_BxC=BATCH.y_ctx_BxC[:, perm],
                            mask_BxC=BATCH.mask_BxC[:, perm])
  m2, v2 = f(PARAMS, permuted)
  err = max(float(jnp.max(jnp.abs(m1 - m2))), float(jnp.max(jnp.abs(v1 - v2))))
  print(f"max |prediction(perm) - prediction| = {err:.2e} (float32 sum order)")
  assert err < 1e-5
  # Negative: a context point's *value* does matter.
  changed = BATCH._replace(y_ctx_BxC=BATCH.y_ctx_BxC + np.eye(10, dtype=np.float32)[0])  # point 0 is never masked
  assert float(jnp.max(jnp.abs(f(PARAMS, changed)[0] - m1))) > 1e-3


def test_fixed_variance_loss_is_squared_error_bitwise():
  g1 = jax.jit(jax.grad(cnp.fixed_var_nll))(PARAMS, BATCH)
  g2 = jax.jit(jax.grad(cnp.mean_squared_error))(PARAMS, BATCH)
  report = bitwise.compare_bits(g1, g2)
  print(report)
  assert report.equal and report.elements > 1000


def test_gp_posterior_is_the_floor_for_its_own_data():
  batch = cnp.sample_tasks(jax.random.key(2), num=64, num_ctx=10, num_tgt=10)
  floor = cnp.gp_nll(batch)
  wrong = cnp.gp_nll(batch, lengthscale=2.0)   # a misspecified kernel does worse
  prior = float(np.mean(0.5 * np.log(2 * np.pi * 1.01) + 0.5 * np.square(batch.y_tgt_BxT) / 1.01))
  print(f"GP posterior NLL {floor:.3f} < misspecified {wrong:.3f} < prior {prior:.3f}")
  assert floor < wrong and floor < prior
