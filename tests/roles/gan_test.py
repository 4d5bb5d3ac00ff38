"""GAN wing: mixtures and metrics, one MLP class in both roles, a pure jit-compiled train_step."""

import jax
import numpy as np
import pytest

from jaxequiv import bitwise
from jaxequiv.roles import gan, mixtures


def test_ring_has_8_distinct_modes_and_the_common_demo_bug_has_7():
  m = mixtures.ring()
  assert len(np.unique(m.means_Kx2.round(6), axis=0)) == 8
  np.testing.assert_allclose(np.linalg.norm(m.means_Kx2, axis=1), 1.0, rtol=1e-6)
  bad = np.linspace(0, 2 * np.pi, 8)  # endpoint=True: first and last angle coincide
  assert len(np.unique(np.stack([np.cos(bad), np.sin(bad)], 1).round(6), axis=0)) == 7
  assert mixtures.grid().means_Kx2.shape == (25, 2)


@pytest.mark.parametrize("mix", [mixtures.ring(), mixtures.grid()], ids=["ring", "grid"])
def test_metrics_on_true_samples_and_on_a_collapsed_generator(mix):
  x = np.asarray(mixtures.sample(jax.random.key(0), mix, 2500))
  r = mixtures.metrics(x, mix)
  print(mix.name, "true samples:", r)
  assert r["modes"] == len(mix.means_Kx2) and r["high_quality"] > 0.98 and r["reverse_kl"] < 0.02
  collapsed = mixtures.metrics(np.repeat(mix.means_Kx2[:1], 2500, 0), mix)  # negative control
  assert collapsed["modes"] == 1 and abs(collapsed["reverse_kl"] - np.log(len(mix.means_Kx2))) < 1e-9
  off = mixtures.metrics(x + 10 * mix.std, mix)
  assert off["high_quality"] < 0.01


def test_train_step_is_pure_and_packing_changes_only_the_discriminator_input():
  cfg = gan.GANConfig(gen_hidden=(16, 16), disc_hidden=(16,), batch_size=8, pack=2)
  mix = mixtures.ring()
  state = gan.init(jax.random.key(0), cfg)
  assert state.disc.params[0]["w"].shape == (4, 16) and state.gen.params[0]["w"].shape == (2, 16)
  step = jax.jit(lambda s, k: gan.train_step(s, k, cfg, mix))
  s1, m1 = step(state, jax.random.key(1))
  s2, _ = step(state, jax.random.key(1))
  assert bitwise.compare_bits(s1, s2).equal and np.isfinite(float(m1["d_loss"])) and np.isfinite(float(m1["g_loss"]))
  assert int(s1.gen.step) == int(s1.disc.step) == 1  # each player took one step with its own Adam state
  s3, _ = step(state, jax.random.key(2))
  assert not bitwise.compare_bits(s1.gen, s3.gen).equal


def test_seeds_train_in_one_driver_call_like_single_seeds():
  """``train`` over 2 keys (vmapped, all steps in one ``jit_train_step`` call) == each key's own run of single steps.

  Compared at the 1e-6 relative level, not bitwise: a vmapped matmul and a single one need not round alike.
  """
  cfg = gan.GANConfig(gen_hidden=(8,), disc_hidden=(8,), batch_size=4)
  mix = mixtures.ring()
  keys = jax.random.split(jax.random.key(5), 2)
  state, curves = gan.train(keys, cfg, mix, 3)
  assert curves["d_loss"].shape == (3, 2) and int(state.gen.step) == 3
  step = jax.jit(lambda s, k: gan.train_step(s, k, cfg, mix))
  for i in range(2):
    k0, k1 = jax.random.split(keys[i])
    s = gan.init(k0, cfg)
    for k in jax.random.split(k1, 3):
      s, _ = step(s, k)
    err = bitwise.max_relative_error(s.gen.params, jax.tree.map(lambda a, i=i: a[i], state.gen.params))
    print(f"seed {i}: max relative error vmapped vs single {err:.2e}")
    assert err <= 1e-6


def test_bad_config():
  with pytest.raises(ValueError, match="pack"):
    gan.GANConfig(pack=0)
  with pytest.raises(ValueError, match="samples"):
    mixtures.metrics(np.zeros((3, 3)), mixtures.ring())


def test_maxout_is_the_max_over_pieces_and_pacgans_discriminator_trains():
  from jaxequiv.roles import maxout  # pylint: disable=import-outside-toplevel
  layers = maxout.init_maxout(jax.random.key(0), [4, 3, 1], pieces=5)
  x = np.asarray(jax.random.normal(jax.random.key(1), (6, 4)))
  z = x @ np.asarray(layers[0]["w"]) + np.asarray(layers[0]["b"])   # [6, 15]: unit j's pieces are 5j .. 5j + 4
  ref = np.max(z.reshape(6, 3, 5), -1) @ np.asarray(layers[1]["w"]) + np.asarray(layers[1]["b"])
  got = np.asarray(jax.jit(lambda l, x: maxout.maxout_apply(l, x, 5))(layers, x))
  err = float(np.max(np.abs(got - ref)))
  print(f"maxout vs numpy max over pieces: {err:.1e}")
  assert err < 1e-5
  first_piece = np.max(z.reshape(6, 3, 5)[..., :1], -1) @ np.asarray(layers[1]["w"])  # negative control
  assert np.max(np.abs(first_piece + np.asarray(layers[1]["b"]) - got)) > 1e-3
  cfg = gan.GANConfig(gen_hidden=(16,), disc_hidden=(8, 8), batch_size=8, pack=2, disc_pieces=5, b1=0.8)
  state = gan.init(jax.random.key(0), cfg)
  assert [l["w"].shape for l in state.disc.params] == [(4, 40), (8, 40), (8, 1)]
  s1, m = jax.jit(lambda s, k: gan.train_step(s, k, cfg, mixtures.ring()))(state, jax.random.key(1))
  assert np.isfinite(float(m["d_loss"])) and not bitwise.compare_bits(s1.disc.params, state.disc.params).equal
  with pytest.raises(ValueError, match="disc_pieces"):
    gan.GANConfig(disc_pieces=-1)
  with pytest.raises(ValueError, match="pieces"):
    maxout.init_maxout(jax.random.key(0), [2, 3, 1], pieces=0)
