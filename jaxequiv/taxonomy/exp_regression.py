"""Diabetes regression, five heads on one MLP trunk, k-fold, beside closed-form ridge.

Heads (all conditional likelihoods of y given x):
``se`` squared error (NLL evaluated with the training residual variance),
``gauss`` Gaussian NLL with a learned variance, ``hlgauss`` and ``twohot``
cross-entropy over K bins (density = bin probability / bin width), and
``digits``: a string head over the bin's digit string (B = 10, L digits), the
core causal transformer reading the trunk's features as a prefix embedding
(``taxonomy.decoder``), trained with ``lm_nll`` by teacher forcing and read out
with trie-constrained probabilities: E[y] by recursion over the trie, NLL of the
histogram density.
Targets are standardised per fold; RMSE and NLL are reported in the original
units (NLL in nats per example).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxequiv.taxonomy import decoder, nets, regression, retrieval

HEADS = ("se", "gauss", "hlgauss", "twohot", "digits")


class Setup:
  """Fold-independent constants: bins in standardised units, the digit trie and its string head."""

  def __init__(self, num_bins: int = 100, lo: float = -3.0, hi: float = 4.0, num_digits: int = 2,
               decoder_width: int = 32, decoder_layers: int = 2):
    self.k, self.lo, self.hi = num_bins, lo, hi
    self.edges = np.linspace(lo, hi, num_bins + 1).astype(np.float32)
    self.centres = regression.bin_centers(lo, hi, num_bins)
    self.width = (hi - lo) / num_bins
    self.sigma = 0.75 * self.width
    self.num_digits = num_digits
    self.trie = regression.digit_trie(10, num_digits)
    self.dk = 10**num_digits
    self.dcentres = regression.bin_centers(lo, hi, self.dk)
    self.decoder = decoder.string_head(self.trie, width=decoder_width, num_layers=decoder_layers)


def init(key: jax.Array, head: str, s: Setup, width: int = 32) -> dict[str, Any]:
  k1, k2 = jax.random.split(key)
  trunk = nets.mlp_init(k1, [10, width, width])   # same key: the same trunk init for every head
  out = {"se": 1, "gauss": 2, "hlgauss": s.k, "twohot": s.k}.get(head)
  head_p = nets.mlp_init(k2, [width, out])[0] if out else decoder.init(k2, width, s.decoder)
  return {"trunk": trunk, "head": head_p}


def _features(p, x):
  return nets.mlp_apply(p["trunk"], x, final_act=True)


def loss(p, batch, head: str, s: Setup) -> jax.Array:
  """Training loss of one head on standardised targets."""
  x, y = batch
  h = _features(p, x)
  if head == "digits":   # teacher forcing: lm_nll of the digit strings (unconstrained, as an LM)
    return decoder.nll(p["head"], h, regression.value_to_bin(y, s.lo, s.hi, s.dk), s.decoder)
  out = h @ p["head"]["w"] + p["head"]["b"]
  if head == "se":
    return regression.squared_error(out[:, 0], y)
  if head == "gauss":
    return regression.gaussian_nll_log_var(out[:, 0], out[:, 1], y)
  target = regression.hl_gauss(y, s.edges, s.sigma) if head == "hlgauss" else regression.two_hot(y, s.centres)
  return jnp.mean(optax.softmax_cross_entropy(out, target))


def predict(p, x, head: str, s: Setup, train_var: float) -> tuple[jax.Array, jax.Array]:
  """``(E[y] [B], aux)`` in standardised units; aux is the log-variance ``[B]`` (Gaussian heads) or K-way log-probs ``[B, K]``."""
  h = _features(p, x)
  if head == "digits":
    node = decoder.node_logits(p["head"], h, s.decoder)
    allowed = jnp.asarray(s.trie.child) >= 0
    node_lp = jax.nn.log_softmax(jnp.where(allowed[None], node, -jnp.inf), axis=-1)
    return regression.expected_value_trie(s.trie, node_lp, s.dcentres), retrieval.decoder_to_atomic(s.trie, node)
  out = h @ p["head"]["w"] + p["head"]["b"]
  if head in ("se", "gauss"):
    log_var = jnp.full_like(out[:, 0], math.log(train_var)) if head == "se" else out[:, 1]
    return out[:, 0], log_var
  return regression.expected_value_enum(out, s.centres), jax.nn.log_softmax(out)


def nll_z(head: str, s: Setup, mean, aux, y) -> np.ndarray:
  """Per-example NLL in standardised units."""
  if head in ("se", "gauss"):
    return np.asarray(0.5 * (np.log(2 * np.pi) + aux + np.square(y - mean) / np.exp(aux)))
  k = s.dk if head == "digits" else s.k
  bins = np.asarray(regression.value_to_bin(y, s.lo, s.hi, k))
  return -np.asarray(aux)[np.arange(len(y)), bins] + math.log((s.hi - s.lo) / k)


def ridge(x_tr, y_tr, x_te, alpha: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
  """Closed-form ridge with an unpenalised intercept: predictions on train and test."""
  xm, ym = x_tr.mean(0), y_tr.mean()
  a = x_tr - xm
  w = np.linalg.solve(a.T @ a + alpha * np.eye(a.shape[1]), a.T @ (y_tr - ym))
  return (x_tr - xm) @ w + ym, (x_te - xm) @ w + ym


def run(folds: int = 5, steps: int = 1000, seeds: Sequence[int] = (0,), lr: float = 1e-3, wd: float = 1e-4,
        decoder_width: int = 32, decoder_layers: int = 2) -> dict[str, Any]:
  """k-fold cross-validation of every head and ridge, once per seed (the seed draws the folds and the inits).

  The seeds train at once (``nets.fit_early_stopping(..., seeds=True)``): fold f of every seed has the same
  size, so the seeds' data and parameters stack on a leading axis.

  Returns:
    ``{"heads": {head: {"rmse", "nll", "best_step": (mean, std) over seeds of the fold means,
    "rmse_per_seed", "nll_per_seed", "rmse_fold_std"}}, "setup": {...}}``: RMSE and NLL (nats per
    example) in the original units; ``setup`` names the data, bins, trunk and string head.
  """
  from sklearn.datasets import load_diabetes  # pylint: disable=import-outside-toplevel
  from sklearn.model_selection import KFold  # pylint: disable=import-outside-toplevel
  x_all, y_all = load_diabetes(return_X_y=True)
  s = Setup(decoder_width=decoder_width, decoder_layers=decoder_layers)
  splits = [list(KFold(folds, shuffle=True, random_state=seed).split(x_all)) for seed in seeds]
  f32 = lambda a: np.asarray(a, np.float32)  # noqa: E731
  res = {h: {m: np.zeros((len(seeds), folds)) for m in ("rmse", "nll", "best_step")} for h in (*HEADS, "ridge")}
  for fold in range(folds):
    data = []   # per seed: standardised train/test arrays and the target scale
    for si, seed in enumerate(seeds):
      tr, te = splits[si][fold]
      xm, xs, ym, ys = x_all[tr].mean(0), x_all[tr].std(0), y_all[tr].mean(), y_all[tr].std()
      xtr, xte, ztr, zte = f32((x_all[tr] - xm) / xs), f32((x_all[te] - xm) / xs), f32((y_all[tr] - ym) / ys), f32((y_all[te] - ym) / ys)
      ptr, pte = ridge(xtr.astype(np.float64), ztr.astype(np.float64), xte.astype(np.float64))
      var = float(np.mean(np.square(ptr - ztr)))
      res["ridge"]["rmse"][si, fold] = float(np.sqrt(np.mean(np.square(pte - zte)))) * ys
      res["ridge"]["nll"][si, fold] = float(np.mean(0.5 * (np.log(2 * np.pi * var) + np.square(pte - zte) / var))) + math.log(ys)
      data.append((xtr, xte, ztr, zte, ys))
    n_fit = int(0.8 * len(data[0][0]))   # inner split for early stopping on each head's own loss
    stack = lambda i, sl: np.stack([d[i][sl] for d in data])  # noqa: E731
    train = (stack(0, slice(None, n_fit)), stack(2, slice(None, n_fit)))
    val = (stack(0, slice(n_fit, None)), stack(2, slice(n_fit, None)))
    for head in HEADS:
      p0 = jax.tree.map(lambda *x: jnp.stack(x), *[init(jax.random.key(1000 * seed + fold), head, s) for seed in seeds])
      p_s, best_s, _ = nets.fit_early_stopping(lambda p, b, head=head: loss(p, b, head, s), p0, train, val, steps,
                                               learning_rate=lr, weight_decay=wd, seeds=True)
      for si, (xtr, xte, ztr, zte, ys) in enumerate(data):
        p = jax.tree.map(lambda x, si=si: x[si], p_s)
        train_var = float(np.mean(np.square(np.asarray(predict(p, xtr, "se", s, 1.0)[0]) - ztr))) if head == "se" else 1.0
        mean, aux = predict(p, xte, head, s, train_var)
        res[head]["best_step"][si, fold] = best_s[si]
        res[head]["rmse"][si, fold] = float(np.sqrt(np.mean(np.square(np.asarray(mean) - zte)))) * ys
        res[head]["nll"][si, fold] = float(np.mean(nll_z(head, s, np.asarray(mean), aux, zte))) + math.log(ys)
  heads = {}
  for h, d in res.items():
    means = {m: d[m].mean(1) for m in d}   # per seed, the mean over folds
    heads[h] = {**{m: (float(np.mean(v)), float(np.std(v))) for m, v in means.items()},
                "rmse_per_seed": means["rmse"].tolist(), "nll_per_seed": means["nll"].tolist(),
                "rmse_fold_std": (float(np.mean(d["rmse"].std(1))), float(np.std(d["rmse"].std(1))))}
  setup = {"rows": int(len(y_all)), "features": int(x_all.shape[1]), "folds": folds, "seeds": list(seeds),
           "steps": steps, "lr": lr, "weight_decay": wd, "bins": s.k, "lo_std": s.lo, "hi_std": s.hi,
           "digit_base": 10, "num_digits": s.num_digits, "digit_bins": s.dk, "trunk": [int(x_all.shape[1]), 32, 32],
           "decoder": s.decoder.describe(), "ridge_alpha": 1.0, "early_stopping_split": 0.2}
  return {"heads": heads, "setup": setup}
