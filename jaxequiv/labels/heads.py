"""Image classifiers with a one-hot head or a string head that spells the label.

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
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxequiv import alphabet, batches, losses, model, sampler, training
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


def drop_tokens(batch: batches.LMBatch, rate: float, rng: np.random.Generator) -> batches.LMBatch:
  """Replaces each input character after ``BOS`` by ``PAD`` with probability ``rate`` (targets unchanged)."""
  if rate <= 0.0:
    return batch
  if not 0.0 <= rate < 1.0:
    raise ValueError(f"token dropout rate must be in [0, 1), got {rate}")
  inputs = np.asarray(batch.inputs)
  drop = (rng.random(inputs.shape) < rate) & (inputs != alphabet.BOS) & (inputs != alphabet.PAD)
  return batches.LMBatch(np.where(drop, alphabet.PAD, inputs).astype(inputs.dtype), batch.targets, batch.mask)


# ----------------------------------------------------------------------------- decoding

onehot_logits_jit = jax.jit(onehot_logits, static_argnums=2)


@functools.partial(jax.jit, static_argnames="config")
def _greedy_ids(params: Params, images_BxHxWxC: jax.Array, config: ImageModelConfig) -> sampler.Samples:
  """Greedy decoding of the string head through the generic sampler's ``while_loop`` (temperature 0)."""
  emb = image_embeddings(params, images_BxHxWxC, config)
  b, t = images_BxHxWxC.shape[0], config.decoder.seq_len
  step = sampler.full_step_fn(params, lambda p, tokens: decode_logits(p, emb, tokens, config))
  empty = jnp.full((b, t), alphabet.PAD, jnp.int32)
  return sampler.sample_tokens(step, sampler.empty_rows(b, t), jax.random.key(0), empty, jnp.zeros(b, jnp.int32),
                               temperature=0.0)


def greedy_unconstrained(params: Params, images_NxHxWxC: jax.Array, config: ImageModelConfig,
                         chunk: int = 128) -> list[str]:
  """Free greedy decoding over all 64 characters until ``'.'`` or ``seq_len``: one string per image.

  No trie: the decoder may spell a label that is not a class, or a held-out one.
  The decoder is a conditional LM of the label, so this is the LM's own sampler
  (``jaxequiv.sampler.sample_tokens``) at temperature 0. Images are processed in
  zero-padded chunks of ``chunk`` (one compile per chunk size).
  """
  x = np.asarray(images_NxHxWxC, np.float32)
  out: list[str] = []
  for s in range(0, len(x), chunk):
    part = x[s:s + chunk]
    m = len(part)
    part = np.concatenate([part, np.zeros((chunk - m, *part.shape[1:]), np.float32)]) if m < chunk else part
    out += sampler.to_strings(_greedy_ids(params, jnp.asarray(part), config))[:m]
  return out


# ----------------------------------------------------------------------------- metrics


def expected_calibration_error(confidences_N: np.ndarray, correct_N: np.ndarray, num_bins: int = 15) -> float:
  r"""ECE with ``num_bins`` equal-width confidence bins ``(b/B, (b+1)/B]``.

  .. math:: \mathrm{ECE} = \sum_b \frac{|B_b|}{N}\,\bigl|\mathrm{acc}(B_b) - \mathrm{conf}(B_b)\bigr|

  Args:
    confidences_N: the predicted class's probability per example, in [0, 1].
    correct_N: whether the prediction was right.
    num_bins: B (15 is the usual choice).

  >>> expected_calibration_error(np.array([.9, .9, .9, .9, .2, .2]), np.array([1, 1, 1, 0, 0, 0]))  # 4/6*.15+2/6*.2
  0.16666...
  """
  conf = np.asarray(confidences_N, np.float64).reshape(-1)
  correct = np.asarray(correct_N, np.float64).reshape(-1)
  if conf.shape != correct.shape:
    raise ValueError(f"confidences {conf.shape} and correct {correct.shape} must have the same length")
  if conf.size == 0:
    return 0.0
  if np.any((conf < 0) | (conf > 1)):
    raise ValueError(f"confidences must lie in [0, 1]; got min {conf.min()}, max {conf.max()}")
  bins = np.clip(np.ceil(conf * num_bins).astype(np.int64) - 1, 0, num_bins - 1)
  ece = 0.0
  for b in range(num_bins):
    sel = bins == b
    if sel.any():
      ece += sel.mean() * abs(correct[sel].mean() - conf[sel].mean())
  return float(ece)


# ----------------------------------------------------------------------------- training


def batch_indices(n: int, batch_size: int, steps: int, seed: int) -> Iterator[np.ndarray]:
  """Seeded minibatch indices: reshuffled epochs, ``steps`` batches of ``batch_size``."""
  if n < 1:
    raise ValueError("cannot draw batches from an empty data set")
  rng = np.random.default_rng(np.random.SeedSequence([seed, 3]))
  perm, pos = rng.permutation(n), 0
  for _ in range(steps):
    idx = []
    while len(idx) < batch_size:
      if pos == n:
        perm, pos = rng.permutation(n), 0
      take = min(batch_size - len(idx), n - pos)
      idx.extend(perm[pos:pos + take])
      pos += take
    yield np.asarray(idx)


def optimizer_config(learning_rate: float) -> training.OptimizerConfig:
  """Adam at a constant ``learning_rate`` (b2 = 0.999, no clipping, no weight decay) in the shared optimizer.

  With no warm-up and ``end_lr_fraction=1`` the schedule is constant, so its
  length (``steps=1``) does not matter and one compile serves every run length.
  """
  return training.OptimizerConfig(steps=1, learning_rate=learning_rate, warmup_steps=0, end_lr_fraction=1.0,
                                  weight_decay=0.0, clip_norm=None, b1=0.9, b2=0.999, eps=1e-8)


def head_loss_fn(head: str, config: ImageModelConfig) -> Callable[[Params, tuple], jax.Array]:
  """``loss(params, (images, targets))`` of a head: ``onehot_loss`` (targets: labels ``[N]``) or
  ``string_loss`` (targets: the ``LMBatch`` of the label sentences)."""
  if head == "onehot":
    return lambda p, b: onehot_loss(p, b[0], b[1], config)
  if head == "string":
    return lambda p, b: string_loss(p, b[0], b[1], config)
  raise ValueError(f"unknown head {head!r}; use 'onehot' and/or 'string'")


@functools.lru_cache(maxsize=32)
def _cached_step(config: ImageModelConfig, learning_rate: float, head: str):
  """``jaxequiv.training``'s train step, jitted with the state donated, per (config, learning rate, head)."""
  optimizer = training.make_optimizer(optimizer_config(learning_rate))
  return training.jit_train_step(training.make_train_step(head_loss_fn(head, config), optimizer)), optimizer


class TrainedHeads(NamedTuple):
  onehot_params: Params
  string_params: Params
  onehot_classes: np.ndarray  # [K_train] global class id of each one-hot output
  onehot_curve: np.ndarray    # [steps] training loss (nats per image)
  string_curve: np.ndarray    # [steps] training loss (nats per character)


def train_heads(
    images_NxHxWxC: np.ndarray,
    labels_N: np.ndarray,
    class_names: Sequence[str],
    config: ImageModelConfig,
    *,
    steps: int = 300,
    batch_size: int = 64,
    learning_rate: float = 3e-3,
    seed: int = 0,
    heads: Sequence[str] = ("onehot", "string"),
    token_dropout: float = 0.0,
    progress: Callable[[str, int, float], None] | None = None,
) -> TrainedHeads:
  """Trains the one-hot and the string model on the same minibatches (Adam, ``steps`` each).

  Both go through ``jaxequiv.training`` (``make_train_step``, ``make_optimizer``
  with ``optimizer_config(learning_rate)``), the stack the text models use. A
  non-finite loss raises ``jaxequiv.training.NonFiniteLossError`` naming the step.

  The one-hot head gets one output per class present in ``labels_N``
  (``onehot_classes``): with held-out combinations it cannot name them at all.

  ``token_dropout`` (string head, default 0): each input character after ``BOS``
  is replaced by ``PAD`` with this probability (word dropout, Bowman et al.
  2016), so the decoder must predict more of the label from the image than from
  its prefix. Targets and mask are unchanged; the loss is still ``lm_nll``.

  Returns:
    ``TrainedHeads`` with both parameter trees and loss curves.
  """
  class_names = list(class_names)
  onehot_classes = np.unique(labels_N).astype(np.int32)
  local = np.full(len(class_names), -1, np.int32)
  local[onehot_classes] = np.arange(len(onehot_classes), dtype=np.int32)
  rows = label_rows(class_names, config.decoder.seq_len)
  k_onehot, k_string = jax.random.split(jax.random.key(seed))
  image_shape = images_NxHxWxC.shape[1:]
  out = {"onehot": (None, np.zeros(0, np.float32)), "string": (None, np.zeros(0, np.float32))}
  for head in heads:
    if head == "onehot":
      params = init_onehot(k_onehot, config, len(onehot_classes), image_shape)
      make_batch = lambda idx: (images_NxHxWxC[idx], local[labels_N[idx]])  # noqa: E731
    elif head == "string":
      params = init_string(k_string, config, image_shape)
      drop_rng = np.random.default_rng(np.random.SeedSequence([seed, 5]))
      make_batch = lambda idx: (images_NxHxWxC[idx],  # noqa: E731
                                drop_tokens(gather_rows(rows, labels_N[idx]), token_dropout, drop_rng))
    else:
      raise ValueError(f"unknown head {head!r}; use 'onehot' and/or 'string'")
    step, optimizer = _cached_step(config, float(learning_rate), head)
    state = training.init_train_state(params, optimizer)
    curve = np.zeros(steps, np.float32)
    for i, idx in enumerate(batch_indices(len(labels_N), batch_size, steps, seed)):
      state, metrics = step(state, make_batch(idx))
      m = jax.device_get(metrics)
      training.check_finite(i + 1, [m])
      curve[i] = m["loss"]
      if progress is not None:
        progress(head, i, curve[i])
    out[head] = (state.params, curve)
  return TrainedHeads(out["onehot"][0], out["string"][0], onehot_classes, out["onehot"][1], out["string"][1])
