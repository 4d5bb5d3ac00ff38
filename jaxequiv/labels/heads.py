"""Image classifiers with a one-hot head or a string head that spells the label: models and losses.

Training is ``jaxequiv.labels.train``, predictions (decoding, scoring against a
trie) ``jaxequiv.labels.predict``, calibration ``jaxequiv.labels.calibration``.

Both models share one encoder architecture (a small Flax CNN, ``CNNEncoder``, or
a patch ViT, ``PatchViTEncoder``): images ``[N, H, W, C]`` -> embeddings ``[N, E]``.

* ``OneHotClassifier``: encoder + ``Dense(K)``; trained with K-way
  cross-entropy (``onehot_loss``).
* ``StringLabeler``: encoder + a small causal character decoder built from
  ``model.Block``. The image embedding, projected to the decoder width, is added
  to every position's token + position embedding, so position t sees the image
  and label tokens ``0..t`` only. Trained with the core LM loss:
  ``string_loss`` literally returns ``jaxequiv.lm_nll(params, batch, apply_fn)``
  with ``apply_fn = make_string_apply(config, images)`` closing over the images
  and ``batch`` the ``jaxequiv.lm_batch`` of the label sentences.

.. math:: \\log p(\\text{label} \\mid x) = \\sum_{t} \\log p_\\theta(c_t \\mid x, c_{<t})

Examples:
  >>> import jax, jax.numpy as jnp, jaxequiv
  >>> from jaxequiv.labels.heads import ImageModelConfig, init_string, string_loss
  >>> cfg = ImageModelConfig()
  >>> params = init_string(jax.random.key(0), cfg, (16, 16, 3))
  >>> batch = jaxequiv.lm_batch(["red circle.", "blue cross."], cfg.decoder.seq_len)
  >>> string_loss(params, jnp.zeros((2, 16, 16, 3)), batch, cfg).shape
  ()
"""

from __future__ import annotations
import dataclasses
import functools
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxequiv import alphabet, batches, losses, model
from jaxequiv.model import ModelConfig

Params = Any


@dataclasses.dataclass(frozen=True)
class ImageModelConfig:
  """Hyper-parameters of both models. Hashable.

  Attributes:
    channels: CNN channels per 3x3 conv stage; every stage after the first
      halves the resolution (stride 2).
    embed_dim: image embedding size E.
    decoder: the string head's transformer config; ``seq_len`` must fit the
      longest label sentence (characters incl. the final period).
    encoder: ``"cnn"`` (``CNNEncoder``) or ``"vit"`` (``PatchViTEncoder``).
    patch: ViT patch side (image sides must be multiples of it).
    vit_layers: ViT blocks (width ``embed_dim``, ``decoder.num_heads`` heads).
  """

  channels: tuple[int, ...] = (16, 32, 64)
  embed_dim: int = 64
  decoder: ModelConfig = ModelConfig(num_layers=1, width=64, num_heads=4, seq_len=16)
  encoder: str = "cnn"
  patch: int = 4
  vit_layers: int = 2

  def __post_init__(self):
    if self.encoder not in ("cnn", "vit"):
      raise ValueError(f"encoder must be 'cnn' or 'vit', got {self.encoder!r}")
    if self.encoder == "vit" and self.embed_dim % self.decoder.num_heads:
      raise ValueError(f"ViT width embed_dim={self.embed_dim} is not divisible by {self.decoder.num_heads} heads")


class CNNEncoder(nn.Module):
  """Images ``[N, H, W, C]`` -> embeddings ``[N, E]``: conv stages, global mean pool, dense."""

  channels: tuple[int, ...]
  embed_dim: int

  @nn.compact
  def __call__(self, images_NxHxWxC):
    x = images_NxHxWxC.astype(jnp.float32)
    for i, c in enumerate(self.channels):
      x = nn.Conv(c, (3, 3), strides=(1, 1) if i == 0 else (2, 2), name=f"conv_{i}")(x)
      x = nn.relu(x)
    x = jnp.mean(x, axis=(1, 2))
    return nn.Dense(self.embed_dim, name="embed")(x)


class PatchViTEncoder(nn.Module):
  """Images ``[N, H, W, C]`` -> embeddings ``[N, E]``: non-overlapping patches, bidirectional
  pre-LN transformer blocks (every patch sees every patch), mean pool, dense."""

  embed_dim: int
  patch: int
  num_layers: int
  num_heads: int

  @nn.compact
  def __call__(self, images_NxHxWxC):
    n, h, w, _ = images_NxHxWxC.shape
    if h % self.patch or w % self.patch:
      raise ValueError(f"image {h}x{w} is not divisible into {self.patch}x{self.patch} patches")
    x = nn.Conv(self.embed_dim, (self.patch, self.patch), strides=(self.patch, self.patch), padding="VALID",
                name="patchify")(images_NxHxWxC.astype(jnp.float32))
    x_NxPxD = x.reshape(n, -1, self.embed_dim)
    pos_PxD = self.param("pos_embed", nn.initializers.normal(0.02), x_NxPxD.shape[1:])
    x_NxPxD = x_NxPxD + pos_PxD
    for i in range(self.num_layers):
      y = nn.LayerNorm(name=f"ln_attn_{i}")(x_NxPxD)
      x_NxPxD = x_NxPxD + nn.MultiHeadDotProductAttention(self.num_heads, name=f"attn_{i}")(y, y)
      y = nn.LayerNorm(name=f"ln_mlp_{i}")(x_NxPxD)
      y = nn.Dense(4 * self.embed_dim, name=f"mlp_in_{i}")(y)
      x_NxPxD = x_NxPxD + nn.Dense(self.embed_dim, name=f"mlp_out_{i}")(jax.nn.gelu(y))
    x = jnp.mean(nn.LayerNorm(name="ln_final")(x_NxPxD), axis=1)
    return nn.Dense(self.embed_dim, name="embed")(x)


def make_encoder(config: ImageModelConfig, name: str | None = None) -> nn.Module:
  """The image encoder ``config.encoder`` names (``cnn`` or ``vit``)."""
  if config.encoder == "vit":
    return PatchViTEncoder(config.embed_dim, config.patch, config.vit_layers, config.decoder.num_heads, name=name)
  return CNNEncoder(config.channels, config.embed_dim, name=name)


class OneHotClassifier(nn.Module):
  """Images ``[N, H, W, C]`` -> logits ``[N, K]``: encoder, then an MLP head.

  The MLP's hidden width is the string decoder's (``mlp_ratio * width``), so both
  heads put a comparable amount of computation on top of the same encoder.
  """

  config: ImageModelConfig
  num_classes: int

  @nn.compact
  def __call__(self, images_NxHxWxC):
    dec = self.config.decoder
    emb_NxE = make_encoder(self.config, name="encoder")(images_NxHxWxC)
    h = jax.nn.gelu(nn.Dense(dec.mlp_ratio * dec.width, name="mlp_in")(emb_NxE))
    return nn.Dense(self.num_classes, name="head")(h)


class StringLabeler(nn.Module):
  """Encoder + causal character decoder: ``(images [R,H,W,C], tokens [R,T]) -> logits [R,T,64]``.

  ``tokens`` are decoder inputs (``BOS``, characters, ``PAD``), or float
  one-hot rows ``[R, T, 66]`` (used to test causality through gradients).
  """

  config: ImageModelConfig

  def setup(self):
    cfg, dec = self.config, self.config.decoder
    self.encoder = make_encoder(cfg)
    self.cond = nn.Dense(dec.width)
    self.embed = nn.Embed(alphabet.INPUT_VOCAB, dec.width)
    self.pos_embed = self.param("pos_embed", nn.initializers.normal(0.02), (dec.seq_len, dec.width))
    self.blocks = [model.Block(dec) for _ in range(dec.num_layers)]
    self.ln_final = nn.LayerNorm()
    self.head = nn.Dense(alphabet.NUM_CLASSES)

  def encode(self, images_NxHxWxC):
    """Image embeddings ``[N, E]``."""
    return self.encoder(images_NxHxWxC)

  def decode(self, emb_RxE, tokens_RxT):
    """Logits ``[R, T, 64]`` (float32) of the next character at every position."""
    if jnp.issubdtype(tokens_RxT.dtype, jnp.integer):
      x = self.embed(tokens_RxT)
    else:  # one-hot rows [R, T, INPUT_VOCAB]
      x = tokens_RxT @ self.embed.embedding
    t = x.shape[1]
    x = x + self.pos_embed[:t] + self.cond(emb_RxE)[:, None, :]
    for block in self.blocks:
      x = block(x)
    return self.head(self.ln_final(x)).astype(jnp.float32)

  def __call__(self, images_RxHxWxC, tokens_RxT):
    return self.decode(self.encode(images_RxHxWxC), tokens_RxT)


def _dummy_images(image_shape: Sequence[int]) -> jax.Array:
  if len(image_shape) != 3:
    raise ValueError(f"image_shape must be (H, W, C), got {tuple(image_shape)}")
  return jnp.zeros((1, *image_shape), jnp.float32)


@functools.partial(jax.jit, static_argnums=(1, 2, 3))
def _init_onehot(key, config, num_classes, image_shape):
  return OneHotClassifier(config, num_classes).init(key, _dummy_images(image_shape))["params"]


@functools.partial(jax.jit, static_argnums=(1, 2))
def _init_string(key, config, image_shape):
  tokens = jnp.full((1, config.decoder.seq_len), alphabet.BOS, jnp.int32)
  return StringLabeler(config).init(key, _dummy_images(image_shape), tokens)["params"]


def init_onehot(key: jax.Array, config: ImageModelConfig, num_classes: int, image_shape: Sequence[int]) -> Params:
  """Parameters of a ``OneHotClassifier`` with ``num_classes`` outputs for images ``(H, W, C)``."""
  if num_classes < 1:
    raise ValueError(f"num_classes must be >= 1, got {num_classes}")
  return _init_onehot(key, config, int(num_classes), tuple(int(d) for d in image_shape))


def init_string(key: jax.Array, config: ImageModelConfig, image_shape: Sequence[int]) -> Params:
  """Parameters of a ``StringLabeler`` for images ``(H, W, C)``."""
  return _init_string(key, config, tuple(int(d) for d in image_shape))


def onehot_logits(params: Params, images_NxHxWxC: jax.Array, config: ImageModelConfig) -> jax.Array:
  """Logits ``[N, K]`` of the one-hot head (K read from the parameters)."""
  num_classes = params["head"]["kernel"].shape[-1]
  return OneHotClassifier(config, num_classes).apply({"params": params}, images_NxHxWxC)


def onehot_loss(params: Params, images_NxHxWxC: jax.Array, labels_N: jax.Array, config: ImageModelConfig) -> jax.Array:
  """Mean K-way cross-entropy (nats per image) of the one-hot head; ``labels_N`` in ``[0, K)``."""
  logits = onehot_logits(params, images_NxHxWxC, config)
  return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, labels_N))


def image_embeddings(params: Params, images_NxHxWxC: jax.Array, config: ImageModelConfig) -> jax.Array:
  """The string head's image embeddings ``[N, E]``."""
  return StringLabeler(config).apply({"params": params}, images_NxHxWxC, method=StringLabeler.encode)


def decode_logits(params: Params, emb_RxE: jax.Array, tokens_RxT: jax.Array, config: ImageModelConfig) -> jax.Array:
  """Decoder logits ``[R, T, 64]`` for embeddings ``[R, E]`` and tokens ``[R, T]`` (or one-hot ``[R, T, 66]``)."""
  if tokens_RxT.shape[1] > config.decoder.seq_len:
    raise ValueError(f"tokens have T={tokens_RxT.shape[1]} positions, more than decoder"
                     f" seq_len={config.decoder.seq_len}")
  if emb_RxE.shape[0] != tokens_RxT.shape[0]:
    raise ValueError(f"{emb_RxE.shape[0]} embeddings for {tokens_RxT.shape[0]} token rows; they must match")
  return StringLabeler(config).apply({"params": params}, emb_RxE, tokens_RxT, method=StringLabeler.decode)


def make_string_apply(config: ImageModelConfig, images_RxHxWxC: jax.Array) -> model.ApplyFn:
  """``apply_fn(params, tokens_RxT) -> logits_RxTx64`` conditioned on row r's image ``images[r]``.

  This is the causal ``apply_fn`` the core losses take; it closes over the images.
  """

  def apply_fn(params: Params, tokens_RxT: jax.Array) -> jax.Array:
    model.check_tokens(tokens_RxT, config.decoder.seq_len)
    if tokens_RxT.shape[0] != images_RxHxWxC.shape[0]:
      raise ValueError(f"{tokens_RxT.shape[0]} token rows for {images_RxHxWxC.shape[0]} images; they must match")
    return StringLabeler(config).apply({"params": params}, images_RxHxWxC, tokens_RxT)

  return apply_fn


def string_loss(params: Params, images_RxHxWxC: jax.Array, batch: batches.LMBatch,
                config: ImageModelConfig) -> jax.Array:
  """The string head's loss: ``jaxequiv.lm_nll`` of the label sentences, nats per character.

  Args:
    params: ``StringLabeler`` parameters.
    images_RxHxWxC: one image per row of ``batch``.
    batch: ``LMBatch`` ``[R, T]`` of the rows' label sentences (``jaxequiv.lm_batch``).
    config: the model config.
  """
  return losses.lm_nll(params, batch, make_string_apply(config, images_RxHxWxC))


def string_nll_per_image(params: Params, images_RxHxWxC: jax.Array, batch: batches.LMBatch,
                         config: ImageModelConfig) -> jax.Array:
  """``-log p(label sentence | image)`` per row ``[R]`` (nats; unconstrained 64-way characters)."""
  per_token = losses.lm_nll_per_token(params, batch, make_string_apply(config, images_RxHxWxC))
  return jnp.sum(per_token * jnp.asarray(batch.mask, jnp.float32), axis=1)


def label_rows(class_names: Sequence[str], seq_len: int) -> batches.LMBatch:
  """``jaxequiv.lm_batch`` of the K label sentences: row k spells class k. Index it by labels."""
  return batches.lm_batch(list(class_names), seq_len)


def gather_rows(rows: batches.LMBatch, labels_N: np.ndarray) -> batches.LMBatch:
  """Rows for labels ``[N]``: equals ``lm_batch([class_names[y] for y in labels])``."""
  return batches.LMBatch(*(np.asarray(x)[labels_N] for x in rows))

