"""Fast exact identities of the roles wing, for ``python -m jaxequiv verify``.

``run_checks()`` returns one ``(passed, line)`` per identity; each is jit-compiled and all of them together take a
few seconds on CPU.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

import jaxequiv
from jaxequiv import bitwise, model
from jaxequiv.roles import digits, jem, mlp, ratio, reparam

_SENTENCES = ("Hello there.", "a.", "ab cd.", "ab ce.", "The cat sat on.", "Zz 9.")


def _line(ok: bool, name: str, what: str, detail: str) -> tuple[bool, str]:
  return ok, f"{'PASS' if ok else 'FAIL'}  {name}: {what}: {detail}"


GRID_SEQ_LEN = 16


@functools.lru_cache(maxsize=None)
def grid_grad_fns(activation: str, dtype: str = "float32"):
  """``(params, lm_grad_fn, clf_grad_fn)`` for a 1-layer width-16 transformer; cached so tests reuse the compiles."""
  cfg = model.ModelConfig(num_layers=1, width=16, num_heads=2, seq_len=GRID_SEQ_LEN, activation=activation, dtype=dtype)
  apply_fn, params = model.make_apply(cfg), model.init(jax.random.key(0), cfg)
  lm = jax.jit(jax.value_and_grad(functools.partial(jaxequiv.lm_nll, apply_fn=apply_fn)))
  clf = jax.jit(jax.value_and_grad(functools.partial(jaxequiv.classification_xent, apply_fn=apply_fn)))
  return params, lm, clf


def grid_batches(sentences=tuple(_SENTENCES), shuffle_seed: int | None = None):
  """``lm_batch(canonical_order(S))`` and ``pack(prefix_examples(S))`` (examples optionally shuffled first)."""
  ex = jaxequiv.prefix_examples(list(sentences))
  if shuffle_seed is not None:
    ex = ex.take(np.random.default_rng(shuffle_seed).permutation(len(ex)))
  return jaxequiv.lm_batch(jaxequiv.canonical_order(list(sentences)), GRID_SEQ_LEN), jaxequiv.pack(ex, GRID_SEQ_LEN)


def check_activation_grid() -> list[tuple[bool, str]]:
  """LM vs packed-classifier gradients, raw bits, float32, for the reductio's pair {relu, tanh}.

  (GELU, the default, is the core ``verify``'s own check; ``tests/roles/activation_grid_test.py`` covers every
  activation in ``model.ACTIVATIONS`` in float32 and bfloat16.)
  """
  out = []
  lm_b, packed = grid_batches(shuffle_seed=0)
  for act in ("relu", "tanh"):
    params, lm_fn, clf_fn = grid_grad_fns(act, "float32")
    r = bitwise.compare_bits(lm_fn(params, lm_b)[1], clf_fn(params, packed)[1])
    out.append(_line(r.equal and r.elements > 0, f"roles.activation_grid[{act}]",
                     "LM vs packed-classifier gradient bits", f"{r.mismatched_elements} of {r.elements} differ"))
  return out


def check_tanh_is_sigmoid() -> tuple[bool, str]:
  layers = mlp.init_mlp(jax.random.key(0), [4, 32, 32, 3], scale=1.5)
  x = 2.0 * jax.random.normal(jax.random.key(1), (256, 4))
  f = jax.jit(lambda l, x: jnp.max(jnp.abs(mlp.mlp_apply(l, x, "tanh")
                                           - mlp.mlp_apply(reparam.tanh_to_sigmoid(l), x, "sigmoid"))))
  err = float(f(layers, x))
  return _line(err <= 3e-5, "roles.tanh_is_sigmoid", "tanh MLP vs rescaled sigmoid MLP (float32)",
               f"max abs error {err:.1e} (tol 3e-5)")


def check_jem_identities() -> list[tuple[bool, str]]:
  layers = mlp.init_mlp(jax.random.key(3), [16, 32, 10], scale=2.0)
  states = jnp.asarray(digits.all_binary_states(16))

  @jax.jit
  def run(layers):
    logits_fn = lambda x: mlp.mlp_apply(layers, x, "relu")
    f = logits_fn(states)
    log_z = jem.exact_log_z(logits_fn, states)
    cond = jnp.max(jnp.abs(jem.conditional_from_joint(jem.log_joint(f, log_z)) - jax.nn.log_softmax(f)))
    return cond, jax.nn.logsumexp(jem.log_marginal(f, log_z)), log_z, f

  cond, lse_px, log_z, f = run(layers)
  ref = float(np.logaddexp.reduce(np.asarray(f, np.float64).ravel()))
  return [
      _line(float(cond) < 1e-5, "roles.jem_conditional", "p(y|x) from exp(f)/Z vs softmax(f), 2^16 x 10 states",
            f"max abs log error {float(cond):.1e} (tol 1e-5)"),
      _line(abs(float(lse_px)) < 1e-5 and abs(float(log_z) - ref) < 1e-5 * max(1, abs(ref)), "roles.jem_marginal",
            "log sum_x exp(logsumexp f(x) - log Z) over 2^16 states, log Z vs float64",
            f"log sum p(x) = {float(lse_px):.1e}, log Z error {abs(float(log_z) - ref):.1e} (tol 1e-5)"),
  ]


def check_density_ratio() -> tuple[bool, str]:
  n = 100_000
  err = float(jax.jit(ratio.log_ratio_error, static_argnums=1)(jax.random.key(0), n))
  tol = 30 / np.sqrt(n)
  return _line(err <= tol, "roles.density_ratio", "logistic discriminator logit vs log N(.5,.8^2)/N(0,1) on [-2,2]",
               f"max abs error {err:.3f} nats at n={n} per class (tol 30/sqrt(n) = {tol:.3f})")


def run_checks() -> list[tuple[bool, str]]:
  """Every fast identity of the roles wing: ``[(passed, "PASS  name: what: detail"), ...]``."""
  return [*check_activation_grid(), check_tanh_is_sigmoid(), *check_jem_identities(), check_density_ratio()]
