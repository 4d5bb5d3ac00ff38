"""PacGAN's metrics: modes captured and reverse KL count only the high-quality samples (within 3 std of a mode)."""

import math

import jax
import numpy as np
import pytest

from jaxequiv.roles import mixtures


def _pacgan_loop(x_Nx2, mix):
  """PacGAN's MetricLogger, as a plain loop: per sample, the nearest mode in std units, counted if under 3."""
  counts = [0] * len(mix.means_Kx2)
  for point in np.asarray(x_Nx2, float):
    dists = [math.sqrt(sum(((p - m) / mix.std) ** 2 for p, m in zip(point, mean))) for mean in mix.means_Kx2]
    j = int(np.argmin(dists))
    if dists[j] < 3:
      counts[j] += 1
  total = sum(counts)
  kl = sum(c / total * math.log(c / total * len(counts)) for c in counts if c)
  return sum(c > 0 for c in counts), total / len(x_Nx2), kl


@pytest.mark.parametrize("mix", [mixtures.ring(), mixtures.grid()], ids=["ring", "grid"])
def test_metrics_match_pacgans_loop_on_a_half_collapsed_generator(mix):
  k1, k2 = jax.random.split(jax.random.key(1))
  good = np.asarray(mixtures.sample(k1, mix, 300))
  smeared = np.asarray(mixtures.sample(k2, mix, 300)) + 4 * mix.std * np.array([1.0, 0.0])  # mostly off-mode
  x = np.concatenate([good, smeared, np.repeat(mix.means_Kx2[:1], 200, 0)])
  r = mixtures.metrics(x, mix)
  modes, hq, kl = _pacgan_loop(x, mix)
  print(mix.name, r, (modes, hq, kl))
  assert r["modes"] == modes and r["high_quality"] == pytest.approx(hq, abs=1e-12)
  assert r["reverse_kl"] == pytest.approx(kl, rel=1e-9)


def test_off_mode_samples_do_not_count_towards_reverse_kl():
  mix = mixtures.ring()
  even = np.repeat(mix.means_Kx2, 10, 0)  # 80 high-quality samples, 10 on each mode
  between = np.full((920, 2), 0.0)  # the ring's centre: 1 (100 std) from every mode
  r = mixtures.metrics(np.concatenate([even, between]), mix)
  print(r)
  assert r["modes"] == 8 and r["high_quality"] == pytest.approx(0.08) and abs(r["reverse_kl"]) < 1e-12
  # Counting every sample at its nearest mode (the old metric) would see 930 of 1000 at one mode: KL near log 8.
  one = mixtures.metrics(np.concatenate([np.repeat(mix.means_Kx2[:1], 10, 0), between]), mix)
  assert one["modes"] == 1 and one["reverse_kl"] == pytest.approx(np.log(8), abs=1e-12)


def test_no_high_quality_sample_has_no_reverse_kl():
  r = mixtures.metrics(np.full((50, 2), 0.0), mixtures.ring())
  assert r["modes"] == 0 and r["high_quality"] == 0.0 and math.isnan(r["reverse_kl"])
