"""Two non-transformer causal architectures, to show the losses take any causal apply_fn."""

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxequiv import alphabet


class CausalConv(nn.Module):
  """Embedding, then causal (left-padded) 1-D convolutions, then a 64-way head."""

  width: int = 32
  kernel: int = 3
  layers: int = 2

  @nn.compact
  def __call__(self, tokens_BxT):
    x = nn.Embed(alphabet.INPUT_VOCAB, self.width)(tokens_BxT)
    for _ in range(self.layers):
      x = x + jnp.tanh(nn.Conv(self.width, (self.kernel,), padding=((self.kernel - 1, 0),))(x))
    return nn.Dense(alphabet.NUM_CLASSES)(x)


class GRU(nn.Module):
  """Embedding, a GRU over time, then a 64-way head."""

  width: int = 32

  @nn.compact
  def __call__(self, tokens_BxT):
    x = nn.Embed(alphabet.INPUT_VOCAB, self.width)(tokens_BxT)
    x = nn.RNN(nn.GRUCell(self.width))(x)
    return nn.Dense(alphabet.NUM_CLASSES)(x)


def make(module: nn.Module, seq_len: int, seed: int = 0):
  """Returns ``(params, apply_fn)`` for a linen module mapping tokens to logits."""
  params = module.init(jax.random.key(seed), jnp.zeros((1, seq_len), jnp.int32))["params"]
  return params, lambda p, tokens: module.apply({"params": p}, tokens)
