r"""A GAN is one MLP class in two roles; PacGAN is one flag (the discriminator sees ``pack`` samples at once).

The generator :math:`G` and the discriminator :math:`D` are both ``roles.mlp`` networks: only their widths and their
place in the loss differ (PacGAN's own setup, ``GANConfig(disc_pieces=5)``, swaps the discriminator's ReLU for maxout,
``roles.maxout``: the same parameter format, another activation). :math:`D` is the logistic real-vs-fake classifier of ``roles.ratio`` (its optimal logit is
:math:`\log p_{data} - \log p_G`); :math:`G` minimises the non-saturating loss :math:`-\log \sigma(D(G(z)))`.

``train_step(state, key)`` is one pure step over both players (one discriminator step, then one generator step, each
``training.make_train_step`` with its own Adam state); ``train`` vmaps it over seeds and runs all the steps in one
``training.jit_train_step`` call (a ``lax.scan``).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxequiv import training
from jaxequiv.roles import maxout, mixtures, mlp, ratio


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
    activation: the one activation of both networks (of the generator only when ``disc_pieces`` > 0).
    disc_pieces: if > 0, the discriminator is a maxout MLP with this many pieces per unit (``roles.maxout``;
      PacGAN's official code: 5).
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
  disc_pieces: int = 0

  def __post_init__(self):
    if self.pack < 1 or self.batch_size < 1 or self.noise_dim < 1:
      raise ValueError(f"pack, batch_size and noise_dim must be >= 1, got {self.pack}, {self.batch_size},"
                       f" {self.noise_dim}")
    if self.disc_pieces < 0:
      raise ValueError(f"disc_pieces must be >= 0 (0: no maxout), got {self.disc_pieces}")


class GANState(NamedTuple):
  """Both players, each a ``training.TrainState`` (its params, its own Adam state, its step count)."""

  gen: training.TrainState
  disc: training.TrainState


def _opt(cfg: GANConfig) -> optax.GradientTransformation:
  lr = cfg.learning_rate
  if cfg.decay_steps > 0:
    lr = optax.cosine_decay_schedule(cfg.learning_rate, cfg.decay_steps, alpha=0.05)
  return optax.adam(lr, b1=cfg.b1)


def init_params(key: jax.Array, cfg: GANConfig) -> tuple[Any, Any]:
  """Generator ``noise_dim -> 2`` and discriminator ``2 * pack -> 1`` params: the same MLP class, two widths."""
  kg, kd = jax.random.split(key)
  disc_sizes = [2 * cfg.pack, *cfg.disc_hidden, 1]
  disc = maxout.init_maxout(kd, disc_sizes, cfg.disc_pieces) if cfg.disc_pieces else mlp.init_mlp(kd, disc_sizes)
  return mlp.init_mlp(kg, [cfg.noise_dim, *cfg.gen_hidden, 2]), disc


def init(key: jax.Array, cfg: GANConfig) -> GANState:
  """Both players at step 0 (for many seeds, pass vmapped ``init_params`` to ``init_state``)."""
  return init_state(*init_params(key, cfg), cfg)


def init_state(gen, disc, cfg: GANConfig) -> GANState:
  """``GANState`` at step 0 for the players' params, each with its own fresh Adam state."""
  return GANState(training.init_train_state(gen, _opt(cfg)), training.init_train_state(disc, _opt(cfg)))


def generate(gen, key: jax.Array, n: int, cfg: GANConfig) -> jax.Array:
  """``n`` generated samples ``[n, 2]``."""
  return mlp.mlp_apply(gen, jax.random.normal(key, (n, cfg.noise_dim)), cfg.activation)


def discriminate(disc, x_Nx2: jax.Array, cfg: GANConfig) -> jax.Array:
  """Logits ``[N / pack]``: each discriminator input concatenates ``pack`` consecutive samples."""
  x = x_Nx2.reshape(-1, 2 * cfg.pack)
  if cfg.disc_pieces:
    return maxout.maxout_apply(disc, x, cfg.disc_pieces)[:, 0]
  return mlp.mlp_apply(disc, x, cfg.activation)[:, 0]


def _disc_loss(disc, real_and_fake: tuple[jax.Array, jax.Array], cfg: GANConfig) -> jax.Array:
  real, fake = real_and_fake
  return ratio.discriminator_loss(discriminate(disc, real, cfg), discriminate(disc, fake, cfg))


def _gen_loss(gen, disc_and_key: tuple[Any, jax.Array], cfg: GANConfig) -> jax.Array:
  """Non-saturating: ``mean softplus(-D(G(z)))``; ``disc`` is data here (no gradient flows to it)."""
  disc, key = disc_and_key
  n = cfg.batch_size * cfg.pack
  return jnp.mean(jax.nn.softplus(-discriminate(disc, generate(gen, key, n, cfg), cfg)))


def train_step(state: GANState, key: jax.Array, cfg: GANConfig,
               mixture: mixtures.Mixture) -> tuple[GANState, dict[str, jax.Array]]:
  """One discriminator step then one generator step against the updated discriminator (pure).

  Each player steps with ``training.make_train_step`` and its own Adam state.
  Returns the new state and ``{"d_loss", "g_loss"}``.
  """
  kr, kz1, kz2 = jax.random.split(key, 3)
  n = cfg.batch_size * cfg.pack
  real = mixtures.sample(kr, mixture, n)
  fake = generate(state.gen.params, kz1, n, cfg)
  disc, d = training.make_train_step(functools.partial(_disc_loss, cfg=cfg), _opt(cfg))(state.disc, (real, fake))
  gen, g = training.make_train_step(functools.partial(_gen_loss, cfg=cfg), _opt(cfg))(state.gen, (disc.params, kz2))
  return GANState(gen, disc), {"d_loss": d["loss"], "g_loss": g["loss"]}


def train(keys_S: jax.Array, cfg: GANConfig, mixture: mixtures.Mixture, num_steps: int) -> tuple[GANState, Any]:
  """One GAN per key (vmapped): ``init``, then ``num_steps`` of ``train_step`` in one ``training.jit_train_step`` call.

  Returns:
    The final states (leaves ``[S, ...]``) and the loss curves ``{"d_loss", "g_loss"}`` ``[num_steps, S]``.
  """
  k0_S, k1_S = jax.vmap(jax.random.split, out_axes=1)(keys_S)
  state = init_state(*jax.jit(jax.vmap(functools.partial(init_params, cfg=cfg)))(k0_S), cfg)
  step_keys_KxS = jax.vmap(functools.partial(jax.random.split, num=num_steps), out_axes=1)(k1_S)
  step = training.vmap_train_step(functools.partial(train_step, cfg=cfg, mixture=mixture), state)
  run = training.jit_train_step(step, steps_per_call=num_steps)
  return run(state, step_keys_KxS if num_steps > 1 else step_keys_KxS[0])


def train_seeds(seeds: list[int], cfg: GANConfig, mixture: mixtures.Mixture, num_steps: int,
                num_samples: int = 2500) -> tuple[list[dict[str, float]], jax.Array]:
  """Trains one GAN per seed (vmapped, jit-compiled) and scores ``num_samples`` generated samples of each.

  Returns:
    Per-seed ``mixtures.metrics`` dicts and the samples ``[S, num_samples, 2]``.
  """
  keys_S = jnp.stack([jax.random.key(s) for s in seeds])
  state, _ = train(keys_S, cfg, mixture, num_steps)
  sample = functools.partial(generate, n=num_samples, cfg=cfg)
  samples = jax.jit(jax.vmap(sample))(state.gen.params, jax.vmap(jax.random.fold_in, (0, None))(keys_S, 1))
  return [mixtures.metrics(s, mixture) for s in samples], samples
