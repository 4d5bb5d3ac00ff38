r"""JEM trained with SGLD on continuous 8x8 digits, many seeds at once (vmapped), and how often it diverges.

JEM's loss (Grathwohl et al., 2020) is cross-entropy plus the SGLD estimate of :math:`-\nabla \log p(x)`,

.. math:: L = \mathrm{CE}(f(x), y) + \overline{E(x)} - \overline{E(\tilde x)}
   + \alpha\,\bigl(\overline{E(x)^2} + \overline{E(\tilde x)^2}\bigr),
   \qquad E(x) = -\operatorname{logsumexp}_y f(x)_y,

where :math:`\tilde x` are persistent SGLD chains (a replay buffer, a fraction restarted from uniform noise each step,
``jem.sgld``). ``SGLDConfig()`` is the paper's setting (20 SGLD steps of size 1 with noise 0.01, buffer 10,000, 5%
reinitialisation, :math:`\alpha = 0`). ``STABLE`` adds the two cheapest stabilisers of the follow-ups: the energy
penalty :math:`\alpha` of Du & Mordatch (2019, "IGEBM"), and SGLD samples projected back into the data's range
[-1, 1] after every step (the projection of JEM++'s proximal SGLD, Yang & Ji 2021). The SGLD step size stays the
paper's, so the two variants differ in these two switches only.

``train_seeds`` vmaps one pure step (SGLD refresh, then one Adam step of the classifier) over seeds and runs all steps
in ``training.jit_train_step`` dispatches. A seed *diverges* (``diverged``) if its loss turns non-finite or its
classifier ends below ``acc_floor`` test accuracy; the per-step energy gap is kept as a curve beside it.
``wilson_interval`` gives the divergence rate's confidence interval over seeds.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxequiv import training
from jaxequiv.labels import calibration
from jaxequiv.roles import digits, jem, mlp


@dataclasses.dataclass(frozen=True)
class SGLDConfig:
  """One training recipe; the defaults are JEM's paper settings (with ``use_jem``) on an MLP.

  Attributes:
    use_jem: add the SGLD generative term (False: plain cross-entropy, the baseline).
    batch_size, lr, hidden: data batch, Adam learning rate, the MLP ``64-hidden-hidden-10`` (leaky ReLU).
    sgld_steps, step_size, noise: ``jem.sgld``'s settings.
    buffer_size, reinit: persistent chains per seed, and the fraction restarted from uniform noise per step.
    energy_reg: :math:`\\alpha`, the weight of the squared energies of data and samples.
    clip: project SGLD samples into [-1, 1] after every SGLD step.
  """

  use_jem: bool = True
  batch_size: int = 64
  lr: float = 1e-3
  hidden: int = 256
  sgld_steps: int = 20
  step_size: float = 1.0
  noise: float = 0.01
  buffer_size: int = 10_000
  reinit: float = 0.05
  energy_reg: float = 0.0
  clip: bool = False


VARIANTS: dict[str, SGLDConfig] = {
    "sgld_jem": SGLDConfig(),
    "sgld_stable": SGLDConfig(energy_reg=0.1, clip=True),
    "sgld_ce": SGLDConfig(use_jem=False),
}


def energy_gap(f_data_BxK: jax.Array, f_neg_BxK: jax.Array) -> jax.Array:
  """``E(x_data) - E(x_neg)`` per pair: JEM's SGLD estimate of the ``-log p(x)`` loss (its L_gen)."""
  return jem.energy(f_data_BxK) - jem.energy(f_neg_BxK)


def _f_of(layers):
  return lambda x: mlp.mlp_apply(layers, x, "leaky_relu")


def _loss(layers, batch, cfg: SGLDConfig):
  x, y, x_neg = batch
  f = _f_of(layers)
  fx = f(x)
  ce = jnp.mean(optax.softmax_cross_entropy_with_integer_labels(fx, y))
  if not cfg.use_jem:
    return ce, {"gap": jnp.zeros(()), "e_data": jnp.mean(jem.energy(fx))}
  fn = f(x_neg)
  gap = jnp.mean(energy_gap(fx, fn))
  reg = cfg.energy_reg * jnp.mean(jem.energy(fx) ** 2 + jem.energy(fn) ** 2)
  return ce + gap + reg, {"gap": gap, "e_data": jnp.mean(jem.energy(fx))}


def make_step(cfg: SGLDConfig, x_tr_NxD: jax.Array, y_tr_N: jax.Array):
  """One seed's pure step ``((train_state, buffer), key) -> (state, metrics)``: SGLD refresh, then one Adam step."""
  train_step = training.make_train_step(functools.partial(_loss, cfg=cfg), optax.adam(cfg.lr), has_aux=True)
  lo, hi = (-1.0, 1.0) if cfg.clip else (None, None)

  def step(state, key):
    train, buf = state
    kb, kd, kr, kn, ks = jax.random.split(key, 5)
    di = jax.random.randint(kd, (cfg.batch_size,), 0, x_tr_NxD.shape[0])
    x, y = x_tr_NxD[di], y_tr_N[di]
    x_neg = jnp.zeros_like(x)
    if cfg.use_jem:
      bi = jax.random.randint(kb, (cfg.batch_size,), 0, cfg.buffer_size)
      fresh = jax.random.uniform(kn, x.shape, minval=-1.0, maxval=1.0)
      x0 = jnp.where(jax.random.uniform(kr, (cfg.batch_size, 1)) < cfg.reinit, fresh, buf[bi])
      x_neg = jem.sgld(_f_of(train.params), x0, ks, cfg.sgld_steps, cfg.step_size, cfg.noise, lo, hi)
      buf = buf.at[bi].set(x_neg)
    train, metrics = train_step(train, (x, y, x_neg))
    return (train, buf), {"loss": metrics["loss"], **metrics["aux"]}

  return step


def train_seeds(seeds: list[int], steps: int, cfg: SGLDConfig = SGLDConfig(), acc_floor: float = 0.5,
                curve_every: int = 50) -> list[dict[str, Any]]:
  """Trains one classifier per seed (vmapped), JEM or cross-entropy; scores each on the 359 test digits.

  Args:
    seeds: one run per seed (init, data order, SGLD noise and buffer all from it).
    steps: Adam steps per seed (at least 2; the first ``min(50, steps // 2)`` twice more are compile + timing).
    cfg: the recipe.
    acc_floor: a seed whose final test accuracy is below this counts as diverged.
    curve_every: keep every ``curve_every``-th step of the loss and energy-gap curves.

  Returns:
    Per seed: ``test_acc``, ``ece``, ``finite``, ``diverged``, ``max_abs_gap``, ``sec_per_step`` (the vmapped step's
    time divided by the number of seeds), ``curve_loss``, ``curve_gap`` and 64 buffer samples (JEM only).
  """
  if steps < 2:
    raise ValueError(f"steps must be >= 2, got {steps}")
  x_all, y_all = digits.continuous_8x8()
  tr, te = digits.split(len(y_all))
  step = make_step(cfg, jnp.asarray(x_all[tr]), jnp.asarray(y_all[tr]))
  n = len(seeds)
  layers_S = jax.jit(jax.vmap(lambda k: mlp.init_mlp(k, [64, cfg.hidden, cfg.hidden, 10])))(
      jnp.stack([jax.random.key(s) for s in seeds]))
  buf_S = jnp.stack([jax.random.uniform(jax.random.key(s + 100), (cfg.buffer_size if cfg.use_jem else 1, 64),
                                        minval=-1.0, maxval=1.0) for s in seeds])
  carry = (training.init_train_state(layers_S, optax.adam(cfg.lr)), buf_S)
  vstep = training.vmap_train_step(step, carry)
  run_k = functools.cache(lambda k: training.jit_train_step(vstep, steps_per_call=k))
  keys_S = jnp.stack([jax.random.key(s + 1) for s in seeds])

  def run(carry, start, k):
    keys_KxS = jax.vmap(lambda key: jax.vmap(lambda i: jax.random.fold_in(key, i))(jnp.arange(start, start + k)),
                        out_axes=1)(keys_S)
    return run_k(k)(carry, keys_KxS if k > 1 else keys_KxS[0])

  warm = min(50, steps // 2)
  curves = []
  carry, m = run(carry, 0, warm)
  curves.append(jax.block_until_ready(m))
  t = time.time()
  carry, m = run(carry, warm, warm)  # same shapes: no recompile
  curves.append(jax.block_until_ready(m))
  sec_per_step = (time.time() - t) / warm / n
  if steps > 2 * warm:
    carry, m = run(carry, 2 * warm, steps - 2 * warm)
    curves.append(m)
  m = {k: np.concatenate([np.asarray(c[k]).reshape(-1, n) for c in curves]) for k in curves[0]}  # [steps, S]
  train, buf = carry
  logits_SxNxK = jax.jit(jax.vmap(lambda l: _f_of(l)(jnp.asarray(x_all[te]))))(train.params)
  probs = np.asarray(jax.nn.softmax(logits_SxNxK), np.float64)
  out = []
  for i in range(n):
    correct = probs[i].argmax(1) == y_all[te]
    finite = bool(np.all(np.isfinite(m["loss"][:, i])) and np.all(np.isfinite(probs[i])))
    acc = float(correct.mean())
    out.append({"test_acc": acc, "finite": finite, "diverged": diverged(finite, acc, acc_floor),
                "ece": calibration.expected_calibration_error(probs[i].max(1), correct) if finite else float("nan"),
                "max_abs_gap": float(np.nanmax(np.abs(m["gap"][:, i]))), "sec_per_step": sec_per_step,
                "curve_loss": m["loss"][::curve_every, i].round(4).tolist(),
                "curve_gap": m["gap"][::curve_every, i].round(4).tolist(),
                "samples": np.asarray(buf[i, :64]).round(3).tolist() if cfg.use_jem else None})
  return out


def diverged(finite: bool, test_acc: float, acc_floor: float) -> bool:
  """A run diverged if its loss or outputs went non-finite, or its final test accuracy is below ``acc_floor``."""
  return (not finite) or not test_acc >= acc_floor


def wilson_interval(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
  r"""Wilson score interval for a binomial rate ``k / n`` (``z = 1.96``: 95%).

  .. math:: \frac{\hat p + \frac{z^2}{2n} \pm z \sqrt{\frac{\hat p (1 - \hat p)}{n} + \frac{z^2}{4n^2}}}{1 + z^2 / n}

  Examples:
    >>> from jaxequiv.roles import jem_sgld
    >>> [round(v, 4) for v in jem_sgld.wilson_interval(1, 3)]   # one divergence in three seeds
    [0.0615, 0.7923]
    >>> [round(v, 4) for v in jem_sgld.wilson_interval(0, 10)]
    [0.0, 0.2775]
  """
  if n < 1 or not 0 <= k <= n:
    raise ValueError(f"need 0 <= k <= n and n >= 1, got k={k}, n={n}")
  p = k / n
  centre = (p + z * z / (2 * n)) / (1 + z * z / n)
  half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
  return max(0.0, centre - half), min(1.0, centre + half)
