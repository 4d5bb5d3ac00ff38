r"""A GAN is one MLP class in two roles; PacGAN is one flag (the discriminator sees ``pack`` samples at once).

The generator :math:`G` and the discriminator :math:`D` are both ``roles.mlp`` networks: only their widths and their
place in the loss differ. :math:`D` is the logistic real-vs-fake classifier of ``roles.ratio`` (its optimal logit is
:math:`\log p_{data} - \log p_G`); :math:`G` minimises the non-saturating loss :math:`-\log \sigma(D(G(z)))`.

``train_step(state, key)`` is pure (one discriminator step, then one generator step, Adam via optax) and ``train``
runs it in ``lax.scan``; ``jax.vmap`` over keys trains many seeds at once.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxequiv.roles import mixtures, mlp, ratio


@dataclasses.dataclass(frozen=True)
class GANConfig:
  """Hyper-parameters (defaults: PacGAN's 2-D widths, with ReLU in both networks and no batch norm).

  Attributes:
    noise_dim: generator input dimension (Gaussian noise).
    gen_hidden: generator hidden widths.
    disc_hidden: discriminator hidden widths.
    pack: samples per discriminator input (1 = GAN, 2 or 4 = PacGAN2/4).
    batch_size: packed discriminator inputs per step (each from ``pack`` samples).
    learning_rate, b1: Adam for both networks.
    decay_steps: if > 0, the learning rate follows a cosine decay to 5% of ``learning_rate`` over this many steps.
    activation: the one activation of both networks.
  """

  noise_dim: int = 2
  gen_hidden: tuple[int, ...] = (400, 400, 400, 400)
  disc_hidden: tuple[int, ...] = (200, 200, 200)
  pack: int = 1
  batch_size: int = 100
  learning_rate: float = 1e-4
  b1: float = 0.5
  activation: str = "relu"
  decay_steps: int = 0

  def __post_init__(self):
    if self.pack < 1 or self.batch_size < 1 or self.noise_dim < 1:
      raise ValueError(f"pack, batch_size and noise_dim must be >= 1, got {self.pack}, {self.batch_size},"
                       f" {self.noise_dim}")


class GANState(NamedTuple):
  gen: Any
  disc: Any
  gen_opt: Any
  disc_opt: Any


def _opt(cfg: GANConfig) -> optax.GradientTransformation:
  lr = cfg.learning_rate
  if cfg.decay_steps > 0:
    lr = optax.cosine_decay_schedule(cfg.learning_rate, cfg.decay_steps, alpha=0.05)
  return optax.adam(lr, b1=cfg.b1)


def init(key: jax.Array, cfg: GANConfig) -> GANState:
  """Generator ``noise_dim -> 2`` and discriminator ``2 * pack -> 1``: the same MLP class, two widths."""
  kg, kd = jax.random.split(key)
  gen = mlp.init_mlp(kg, [cfg.noise_dim, *cfg.gen_hidden, 2])
  disc = mlp.init_mlp(kd, [2 * cfg.pack, *cfg.disc_hidden, 1])
  return GANState(gen, disc, _opt(cfg).init(gen), _opt(cfg).init(disc))


def generate(gen, key: jax.Array, n: int, cfg: GANConfig) -> jax.Array:
  """``n`` generated samples ``[n, 2]``."""
  return mlp.mlp_apply(gen, jax.random.normal(key, (n, cfg.noise_dim)), cfg.activation)


def discriminate(disc, x_Nx2: jax.Array, cfg: GANConfig) -> jax.Array:
  """Logits ``[N / pack]``: each discriminator input concatenates ``pack`` consecutive samples."""
  return mlp.mlp_apply(disc, x_Nx2.reshape(-1, 2 * cfg.pack), cfg.activation)[:, 0]


def train_step(state: GANState, key: jax.Array, cfg: GANConfig, mixture: mixtures.Mixture) -> tuple[GANState, Any]:
  """One discriminator step then one generator step (pure). Returns the new state and ``(d_loss, g_loss)``."""
  kr, kz1, kz2 = jax.random.split(key, 3)
  n = cfg.batch_size * cfg.pack
  real = mixtures.sample(kr, mixture, n)
  fake = generate(state.gen, kz1, n, cfg)

  def d_loss_fn(disc):
    return ratio.discriminator_loss(discriminate(disc, real, cfg), discriminate(disc, fake, cfg))

  d_loss, d_grad = jax.value_and_grad(d_loss_fn)(state.disc)
  upd, disc_opt = _opt(cfg).update(d_grad, state.disc_opt, state.disc)
  disc = optax.apply_updates(state.disc, upd)

  def g_loss_fn(gen):
    return jnp.mean(jax.nn.softplus(-discriminate(disc, generate(gen, kz2, n, cfg), cfg)))

  g_loss, g_grad = jax.value_and_grad(g_loss_fn)(state.gen)
  upd, gen_opt = _opt(cfg).update(g_grad, state.gen_opt, state.gen)
  return GANState(optax.apply_updates(state.gen, upd), disc, gen_opt, disc_opt), (d_loss, g_loss)


def train(key: jax.Array, cfg: GANConfig, mixture: mixtures.Mixture, num_steps: int) -> tuple[GANState, Any]:
  """``num_steps`` of ``train_step`` in ``lax.scan`` from ``init``; returns the final state and the loss curves."""
  k0, k1 = jax.random.split(key)

  def body(state, k):
    return train_step(state, k, cfg, mixture)

  return jax.lax.scan(body, init(k0, cfg), jax.random.split(k1, num_steps))


def train_seeds(seeds: list[int], cfg: GANConfig, mixture: mixtures.Mixture, num_steps: int,
                num_samples: int = 2500) -> tuple[list[dict[str, float]], jax.Array]:
  """Trains one GAN per seed (vmapped, jit-compiled) and scores ``num_samples`` generated samples of each.

  Returns:
    Per-seed ``mixtures.metrics`` dicts and the samples ``[S, num_samples, 2]``.
  """

  @jax.jit
  def run(keys):
    def one(k):
      state, _ = train(k, cfg, mixture, num_steps)
      return generate(state.gen, jax.random.fold_in(k, 1), num_samples, cfg)
    return jax.vmap(one)(keys)

  samples = run(jnp.stack([jax.random.key(s) for s in seeds]))
  return [mixtures.metrics(s, mixture) for s in samples], samples
