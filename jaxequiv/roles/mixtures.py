"""PacGAN's 2-D Gaussian mixtures and mode-collapse metrics (Lin et al., 2018, following VEEGAN).

* ring: 8 modes on the unit circle at angles ``linspace(0, 2 pi, 8, endpoint=False)``, std 0.01. (With the default
  ``endpoint=True`` the first and last angle coincide: 7 distinct modes, one with double weight.)
* grid: 25 modes at ``{-4, -2, 0, 2, 4}^2``, std 0.05.

Metrics as PacGAN computes them (its ``MetricLogger``): a generated sample is *high quality* if it lies within 3 std
of its nearest mode; a mode is *captured* if it is the nearest mode of at least one high-quality sample; *reverse KL*
is KL(p_hq || uniform), where p_hq is the histogram of the high-quality samples over their modes (samples off every
mode are not counted; NaN when there are none).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np


@dataclasses.dataclass(frozen=True)
class Mixture:
  name: str
  means_Kx2: np.ndarray
  std: float


def ring(num_modes: int = 8, radius: float = 1.0, std: float = 0.01) -> Mixture:
  """Modes on a circle, angles ``linspace(0, 2 pi, num_modes, endpoint=False)``.

  Examples:
    >>> from jaxequiv.roles import mixtures
    >>> m = mixtures.ring()
    >>> len({(round(float(a), 6), round(float(b), 6)) for a, b in m.means_Kx2})  # 8 distinct modes
    8
  """
  angles = np.linspace(0.0, 2 * np.pi, num_modes, endpoint=False)
  return Mixture("ring", np.stack([radius * np.cos(angles), radius * np.sin(angles)], 1).astype(np.float32), std)


def grid(side: int = 5, spacing: float = 2.0, std: float = 0.05) -> Mixture:
  """``side x side`` modes at ``spacing * (i - (side - 1) / 2)``."""
  c = spacing * (np.arange(side) - (side - 1) / 2)
  xx, yy = np.meshgrid(c, c, indexing="ij")
  return Mixture("grid", np.stack([xx.ravel(), yy.ravel()], 1).astype(np.float32), std)


def sample(key: jax.Array, mixture: Mixture, n: int) -> jax.Array:
  """``n`` samples ``[n, 2]`` from the equal-weight mixture."""
  k1, k2 = jax.random.split(key)
  idx = jax.random.randint(k1, (n,), 0, len(mixture.means_Kx2))
  return jnp.asarray(mixture.means_Kx2)[idx] + mixture.std * jax.random.normal(k2, (n, 2))


def metrics(samples_Nx2: np.ndarray, mixture: Mixture) -> dict[str, float]:
  """Modes captured, fraction of high-quality samples and reverse KL (nats) for generated samples, as PacGAN.

  With ``c_k`` the number of high-quality samples (within 3 std) whose nearest mode is ``k`` and ``p_k = c_k / sum c``,
  reverse KL is ``sum_k p_k log(K p_k)``: a generator that puts its few good samples evenly on every mode scores 0
  however many samples fall between the modes (that is what ``high_quality`` reports).

  Examples:
    >>> import jax
    >>> from jaxequiv.roles import mixtures
    >>> m = mixtures.ring()
    >>> r = mixtures.metrics(mixtures.sample(jax.random.key(0), m, 2500), m)
    >>> r["modes"], r["high_quality"] > 0.98, r["reverse_kl"] < 0.01  # 3 std in 2-D holds 1 - exp(-4.5) = 98.9%
    (8, True, True)
  """
  x = np.asarray(samples_Nx2, np.float64)
  if x.ndim != 2 or x.shape[1] != 2:
    raise ValueError(f"samples must have shape [N, 2], got {x.shape}")
  means = np.asarray(mixture.means_Kx2, np.float64)
  d_NxK = np.linalg.norm(x[:, None, :] - means[None], axis=-1)
  nearest, dist = d_NxK.argmin(1), d_NxK.min(1)
  hq = dist < 3 * mixture.std
  k = len(means)
  counts_K = np.bincount(nearest[hq], minlength=k)
  p_hq = counts_K / max(counts_K.sum(), 1)
  nz = p_hq > 0
  return {
      "modes": int(nz.sum()),
      "high_quality": float(hq.mean()),
      "reverse_kl": float(np.sum(p_hq[nz] * np.log(p_hq[nz] * k))) if counts_K.sum() else float("nan"),
  }
