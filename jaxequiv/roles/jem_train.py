"""JEM experiments on sklearn digits with exact likelihoods: 4x4 binary images (2^16 states).

* ``train_exact_jem``: an MLP classifier trained on the exact gradient of log p(x, y) = f(x)_y - log Z (Z summed
  over all 2^16 x 10 states); test NLL in bits per image, read as a density.
* ``train_char_lm``: the library's transformer (``jaxequiv.model``) trained with ``jaxequiv.lm_nll`` on the same
  images spelled ``"0110...1" + label + "."``; its exact NLL, restricted to valid strings (0/1 pixels, then a digit).

SGLD JEM on continuous 8x8 digits, many seeds at once, is ``jaxequiv.roles.jem_sgld``.
"""

from __future__ import annotations

import functools
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxequiv
from jaxequiv import alphabet, model, training
from jaxequiv.roles import digits, jem, mlp

LN2 = float(np.log(2.0))


def _split3(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """train / validation / test indices: 20% test, then 20% of the rest for validation."""
  train, test = digits.split(n, 0.2, seed=0)
  perm = np.random.default_rng(seed + 1).permutation(train)
  k = len(train) // 5
  return np.sort(perm[k:]), np.sort(perm[:k]), test


def train_exact_jem(seed: int = 0, hidden: int = 64, steps: int = 1500, lr: float = 3e-3) -> dict[str, Any]:
  """Full-batch exact ML training of ``log p(x, y)``; returns test NLL (bits/image) at the best validation step."""
  bits, labels = digits.binary_4x4()
  tr, va, te = _split3(len(labels), seed)
  states = jnp.asarray(digits.all_binary_states(16))
  layers = mlp.init_mlp(jax.random.key(seed), [16, hidden, hidden, 10])
  opt = optax.adam(lr)
  data = {k: (jnp.asarray(bits[i]), jnp.asarray(labels[i])) for k, i in (("train", tr), ("val", va), ("test", te))}

  def nlls(layers):
    f = lambda x: mlp.mlp_apply(layers, x, "relu")
    log_z = jem.exact_log_z(f, states)
    out = {}
    for k, (x, y) in data.items():
      fx = f(x)
      out[k + "_xy"] = -jnp.mean(jnp.take_along_axis(fx, y[:, None], 1)) + log_z
      out[k + "_x"] = -jnp.mean(jem.log_marginal(fx, log_z))
      out[k + "_acc"] = jnp.mean(jnp.argmax(fx, -1) == y)
    return out["train_xy"], out

  # All ``steps`` full-batch steps in one dispatch; the metrics at each step's params are the curves.
  run = training.jit_train_step(training.make_train_step(lambda p, _: nlls(p), opt, has_aux=True),
                                steps_per_call=steps)

  t = time.time()
  curves = jax.tree.map(np.asarray, run(training.init_train_state(layers, opt), None)[1]["aux"])
  best = int(np.argmin(curves["val_xy"]))
  res = {k: float(v[best]) / (LN2 if "acc" not in k else 1.0) for k, v in curves.items()}
  return {"best_step": best, "seconds": time.time() - t, **res,
          "curve_val_xy_bits": (curves["val_xy"][::10] / LN2).round(4).tolist()}


def _restricted_nll_bits(logits_RxTx64: jax.Array, targets_RxT: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
  """Per image: -log2 p(x) and -log2 p(x, y) renormalised over valid characters, and raw -log2 p(string)."""
  ids01 = jnp.asarray(alphabet.encode("01"))
  ids_digits = jnp.asarray(alphabet.encode("0123456789"))
  raw = -jnp.sum(jnp.take_along_axis(jax.nn.log_softmax(logits_RxTx64), targets_RxT[..., None], -1)[..., 0], 1)
  pix = jax.nn.log_softmax(logits_RxTx64[:, :16][..., ids01])  # [R, 16, 2]
  pix_nll = -jnp.sum(jnp.take_along_axis(pix, (targets_RxT[:, :16] == ids01[1]).astype(jnp.int32)[..., None], -1), (1, 2))
  lab = jax.nn.log_softmax(logits_RxTx64[:, 16][:, ids_digits])
  lab_nll = -jnp.take_along_axis(lab, (targets_RxT[:, 16] - ids_digits[0])[:, None], -1)[:, 0]
  return pix_nll / LN2, (pix_nll + lab_nll) / LN2, raw / LN2


def train_char_lm(seed: int = 0, steps: int = 1500, batch_size: int = 64, lr: float = 3e-3, width: int = 64,
                  num_layers: int = 2, eval_every: int = 50) -> dict[str, Any]:
  """The library's char LM on 4x4 binary digits as strings; exact restricted NLL in bits at the best validation step."""
  bits, labels = digits.binary_4x4()
  tr, va, te = _split3(len(labels), seed)
  strings = digits.as_strings(bits, labels)
  cfg = model.ModelConfig(num_layers=num_layers, width=width, num_heads=4, seq_len=18, activation="gelu")
  apply_fn = model.make_apply(cfg)
  params = model.init(jax.random.key(seed), cfg)
  opt = optax.adam(optax.cosine_decay_schedule(lr, steps))
  train_b = jaxequiv.lm_batch([strings[i] for i in tr], 18)
  evals = {k: jaxequiv.lm_batch([strings[i] for i in idx], 18) for k, idx in (("val", va), ("test", te))}
  rng = np.random.default_rng(seed)
  order = np.concatenate([rng.permutation(len(tr)) for _ in range(steps * batch_size // len(tr) + 1)])
  idx_SxB = jnp.asarray(order[: steps * batch_size].reshape(steps, batch_size))
  loss = functools.partial(jaxequiv.lm_nll, apply_fn=apply_fn)
  tb = jax.tree.map(jnp.asarray, train_b)

  step = training.make_train_step(lambda p, idx: loss(p, jax.tree.map(lambda a: a[idx], tb)), opt)
  chunk = functools.cache(lambda k: training.jit_train_step(step, steps_per_call=k))  # k = eval_every (and a rest)

  @jax.jit
  def evaluate(params, b):
    px, pxy, raw = _restricted_nll_bits(apply_fn(params, b.inputs), b.targets)
    acc = jnp.mean(jnp.argmax(apply_fn(params, b.inputs)[:, 16][:, jnp.asarray(alphabet.encode("0123456789"))], -1)
                   == b.targets[:, 16] - alphabet.encode("0")[0])
    return {"x": px.mean(), "xy": pxy.mean(), "raw": raw.mean(), "acc": acc}

  t, state, best = time.time(), training.init_train_state(params, opt), None
  curve = []
  for s in range(0, steps, eval_every):
    idx_KxB = idx_SxB[s:s + eval_every]
    state, _ = chunk(len(idx_KxB))(state, idx_KxB if len(idx_KxB) > 1 else idx_KxB[0])
    params = state.params
    ev = {k: jax.tree.map(float, evaluate(params, jax.tree.map(jnp.asarray, b))) for k, b in evals.items()}
    curve.append(ev["val"]["xy"])
    if best is None or ev["val"]["xy"] < best[1]["val"]["xy"]:
      best = (s + eval_every, ev)
  return {"best_step": best[0], "seconds": time.time() - t, **{f"{k}_{m}": v for k, d in best[1].items()
                                                                for m, v in d.items()}, "curve_val_xy_bits": curve}
