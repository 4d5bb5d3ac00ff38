r"""An attentive CNP: the deterministic path of the attentive neural process (Kim et al., 2019).

The CNP's mean-pooled summary :math:`r(C)` is one vector for every target, so it
underfits (Garnelo et al., 2018; Kim et al., 2019). Here each target reads its
own summary: the context pairs are encoded by an MLP and ``self_layers``
multi-head self-attention layers (pre-norm, residual), then each target
:math:`x_*` attends to them with keys and queries from a shared MLP of
:math:`x`, and a decoder maps :math:`(x_*, r_*)` to a Gaussian, as in
``taxonomy.cnp``. Attention is the core's ``model.einsum_attention``; masked
context points get zero weight, so padding never changes a prediction.

Same batch (``cnp.CNPBatch``) and loss (mean Gaussian NLL per target point) as
the CNP; the latent path of the full ANP is left out.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from jaxequiv import model
from jaxequiv.taxonomy import cnp, nets

Params = Any


def init(key: jax.Array, width: int = 128, self_layers: int = 2, enc_hidden: int = 2, dec_hidden: int = 2) -> Params:
  """Parameters: value encoder, self-attention layers, x embedding, cross-attention, decoder."""
  ks = jax.random.split(key, 5 + self_layers)

  def attn(k):
    kq, ko = jax.random.split(k)
    return {"qkv": jax.random.normal(kq, (3, width, width)) / jnp.sqrt(width),
            "o": jax.random.normal(ko, (width, width)) / jnp.sqrt(width),
            "ln": jnp.ones((width,))}

  return {"enc": nets.mlp_init(ks[0], [2, *[width] * enc_hidden, width]),
          "self": [attn(k) for k in ks[5:]],
          "emb": nets.mlp_init(ks[1], [1, width, width]),
          "cross": attn(ks[2]),
          "dec": nets.mlp_init(ks[3], [1 + width, *[width] * dec_hidden, 2])}


def _norm(x: jax.Array, scale: jax.Array) -> jax.Array:
  return scale * (x - jnp.mean(x, -1, keepdims=True)) * jax.lax.rsqrt(jnp.var(x, -1, keepdims=True) + 1e-6)


def _attend(p: Params, heads: int, q_BxQxW: jax.Array, k_BxKxW: jax.Array, v_BxKxW: jax.Array,
            mask_BxK: jax.Array) -> jax.Array:
  """Multi-head attention of queries over the unmasked keys, ``[B, Q, W]``."""
  split = lambda z: z.reshape(*z.shape[:2], heads, -1)  # noqa: E731
  q, k, v = split(q_BxQxW @ p["qkv"][0]), split(k_BxKxW @ p["qkv"][1]), split(v_BxKxW @ p["qkv"][2])
  out = model.einsum_attention(q, k, v, mask_BxK[:, None, None, :])
  return out.reshape(q_BxQxW.shape) @ p["o"]


def predict(params: Params, batch: cnp.CNPBatch, heads: int = 8) -> tuple[jax.Array, jax.Array]:
  """Predictive mean and variance ``[B, T]`` at the targets; variance ``1e-4 + softplus``, as the CNP's.

  ``heads`` must divide the width (8 heads of 16 at the reference width 128).
  """
  width = params["cross"]["o"].shape[0]
  if width % heads:
    raise ValueError(f"width {width} is not a multiple of heads {heads}")
  h = nets.mlp_apply(params["enc"], jnp.stack([batch.x_ctx_BxC, batch.y_ctx_BxC], -1))
  for layer in params["self"]:
    z = _norm(h, layer["ln"])
    h = h + _attend(layer, heads, z, z, z, batch.mask_BxC)
  key = nets.mlp_apply(params["emb"], batch.x_ctx_BxC[..., None])
  query = nets.mlp_apply(params["emb"], batch.x_tgt_BxT[..., None])
  r_BxTxW = _attend(params["cross"], heads, query, key, _norm(h, params["cross"]["ln"]), batch.mask_BxC)
  out = nets.mlp_apply(params["dec"], jnp.concatenate([batch.x_tgt_BxT[..., None], r_BxTxW], -1))
  return out[..., 0], 1e-4 + jax.nn.softplus(out[..., 1])


def nll(params: Params, batch: cnp.CNPBatch, heads: int = 8) -> jax.Array:
  """Mean Gaussian NLL per target point (the training loss), as ``cnp.nll``."""
  return cnp.gaussian_nll(*predict(params, batch, heads), batch.y_tgt_BxT)
