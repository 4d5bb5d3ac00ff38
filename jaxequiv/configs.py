"""The core settings as plain frozen dataclasses, importable without JAX.

One definition each, re-exported where they are used: ``ModelConfig``
(``jaxequiv.model``), ``OptimizerConfig`` (``jaxequiv.training``),
``VerifyConfig`` (``jaxequiv.verify``). Each checks its fields on construction
and raises a one-line ``ValueError`` naming the first bad one. The command line
reads its flag defaults from here, so ``jaxequiv train --help`` and
``jaxequiv verify --help`` do not start JAX.

Examples:
  >>> from jaxequiv.configs import ModelConfig
  >>> ModelConfig(width=32, num_heads=4).seq_len
  64
  >>> ModelConfig(width=30, num_heads=4)
  Traceback (most recent call last):
  ...
  ValueError: width 30 is not divisible by num_heads 4
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from typing import Any

ACTIVATIONS = ("relu", "tanh", "gelu")  # jaxequiv.model.ACTIVATIONS holds their functions
DTYPES = ("float32", "bfloat16")  # jaxequiv.model.DTYPES holds their jnp types
ATTENTION = ("auto", "einsum", "xla", "cudnn")  # "auto" and the keys of jaxequiv.model.ATTENTION_IMPLS


@dataclasses.dataclass(frozen=True)
class ModelConfig:
  """Transformer hyper-parameters. Hashable, so it can be a static argument.

  Attributes:
    num_layers: transformer blocks.
    width: model width D; must be divisible by ``num_heads``.
    num_heads: attention heads.
    seq_len: context length T (positions 0..T-1).
    activation: ``"relu"``, ``"tanh"`` or ``"gelu"`` in the MLP.
    dtype: compute dtype, ``"float32"`` or ``"bfloat16"``; params stay float32.
    mlp_ratio: MLP hidden width is ``mlp_ratio * width``.
    attention: a key of ``jaxequiv.model.ATTENTION_IMPLS``: ``"einsum"``
      (explicit softmax attention), ``"xla"`` or ``"cudnn"``
      (``jax.nn.dot_product_attention``; cuDNN's fused kernel on GPU), or
      ``"auto"``: ``"einsum"`` on the CPU backend, ``"xla"`` elsewhere
      (``jaxequiv.model.resolve_attention``; a fixed rule, not a measurement).
      Training and KV-cached decoding use the same one.
  """

  num_layers: int = 2
  width: int = 64
  num_heads: int = 4
  seq_len: int = 64
  activation: str = "gelu"
  dtype: str = "float32"
  mlp_ratio: int = 4
  attention: str = "auto"

  def __post_init__(self):
    if self.attention not in ATTENTION:
      raise ValueError(f"attention must be one of {ATTENTION}, got {self.attention!r}")
    if self.activation not in ACTIVATIONS:
      raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {self.activation!r}")
    if self.dtype not in DTYPES:
      raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got {self.dtype!r}")
    if self.width % self.num_heads:
      raise ValueError(f"width {self.width} is not divisible by num_heads {self.num_heads}")
    for name in ("num_layers", "width", "num_heads", "seq_len", "mlp_ratio"):
      if getattr(self, name) < 1:
        raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")

  @property
  def compute_dtype(self):
    """The dtype of ``dtype`` (imports JAX, whose ``bfloat16`` numpy lacks)."""
    import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
    return jnp.dtype(self.dtype)


@dataclasses.dataclass(frozen=True)
class OptimizerConfig:
  """AdamW with warm-up + cosine decay and clipping (``jaxequiv.training.make_optimizer``). Frozen and hashable.

  Attributes:
    steps: the schedule's length (total optimizer steps).
    learning_rate: peak learning rate, reached after ``warmup_steps``.
    warmup_steps: linear warm-up from 0 (at most ``steps - 1`` are used).
    end_lr_fraction: the cosine ends at ``end_lr_fraction * learning_rate``
      (1.0: constant after warm-up).
    weight_decay: decoupled weight decay on matrices (ndim >= 2) only.
    clip_norm: clip gradients to this global L2 norm (None or 0: no clipping).
    b1, b2, eps: Adam moments.
  """

  steps: int = 1000
  learning_rate: float = 3e-3
  warmup_steps: int = 100
  end_lr_fraction: float = 0.1
  weight_decay: float = 0.01
  clip_norm: float | None = 1.0
  b1: float = 0.9
  b2: float = 0.99
  eps: float = 1e-8

  def __post_init__(self):
    validate_optimizer_settings(self)

  @classmethod
  def of(cls, settings: Any) -> OptimizerConfig:
    """The optimizer fields of any object that has them (e.g. ``jaxequiv.lm.train.TrainConfig``)."""
    return cls(**{f.name: getattr(settings, f.name) for f in dataclasses.fields(cls)})


def validate_optimizer_settings(s: Any) -> None:
  """One-line ``ValueError`` naming the first optimizer field out of range (and its accepted range)."""
  def finite(name):
    v = getattr(s, name)
    if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v):
      raise ValueError(f"{name} must be a finite number, got {v!r}")
    return v

  if not isinstance(s.steps, numbers.Integral) or s.steps < 1:
    raise ValueError(f"steps must be an int >= 1, got {s.steps!r}")
  if finite("learning_rate") < 0:
    raise ValueError(f"learning_rate must be >= 0, got {s.learning_rate}")
  if not isinstance(s.warmup_steps, numbers.Integral) or s.warmup_steps < 0:
    raise ValueError(f"warmup_steps must be an int >= 0, got {s.warmup_steps!r}")
  if not 0.0 <= finite("end_lr_fraction") <= 1.0:
    raise ValueError(f"end_lr_fraction must be in [0, 1], got {s.end_lr_fraction}")
  if finite("weight_decay") < 0:
    raise ValueError(f"weight_decay must be >= 0, got {s.weight_decay}")
  if s.clip_norm is not None and (finite("clip_norm") < 0):
    raise ValueError(f"clip_norm must be >= 0 (0 or None: no clipping), got {s.clip_norm}")
  for name in ("b1", "b2"):
    if not 0.0 <= finite(name) < 1.0:
      raise ValueError(f"{name} must be in [0, 1), got {getattr(s, name)}")
  if finite("eps") <= 0:
    raise ValueError(f"eps must be > 0, got {s.eps}")


@dataclasses.dataclass(frozen=True)
class VerifyConfig:
  """The transformer and the checks of ``jaxequiv.verify.run_checks`` (``jaxequiv verify``'s flags)."""

  num_layers: int = 2
  width: int = 64
  num_heads: int = 4
  seq_len: int = 64
  activation: str = "gelu"
  num_sentences: int = 16
  steps: int = 20
  repeats: int = 5
  seed: int = 0

  def __post_init__(self):
    for name in ("num_layers", "width", "num_heads", "seq_len", "num_sentences", "steps", "repeats"):
      value = getattr(self, name)
      if not isinstance(value, int) or value < 1:
        raise ValueError(f"VerifyConfig.{name} must be an integer >= 1, got {value!r}")
    if self.width % self.num_heads:
      raise ValueError(f"VerifyConfig.num_heads={self.num_heads} must divide width={self.width}")
    if self.seq_len < 2:
      raise ValueError(f"VerifyConfig.seq_len must be >= 2 (a sentence and its '.'), got {self.seq_len}")


def fill_experiment_defaults(config: Any, defaults: dict[str, dict[str, Any]], tuples: tuple[str, ...] = ()) -> None:
  """``__post_init__`` of a wing's frozen ``ExperimentConfig`` whose ``experiment`` picks per-experiment defaults.

  Checks ``config.experiment`` is a key of ``defaults`` (one-line ``ValueError`` otherwise), fills each field that
  is None with that experiment's default, and turns the ``tuples`` fields (lists after a JSON round trip) into tuples.

  Examples:
    >>> @dataclasses.dataclass(frozen=True)
    ... class Config:
    ...   experiment: str = "a"
    ...   steps: int | None = None
    ...   parts: tuple = ()
    ...   def __post_init__(self):
    ...     fill_experiment_defaults(self, {"a": {"steps": 3}, "b": {"steps": 5}}, tuples=("parts",))
    >>> Config("b", parts=["x"])
    Config(experiment='b', steps=5, parts=('x',))
    >>> Config("c")
    Traceback (most recent call last):
    ...
    ValueError: experiment must be one of 'a', 'b', got 'c'
  """
  if config.experiment not in defaults:
    raise ValueError(f"experiment must be one of {', '.join(map(repr, defaults))}, got {config.experiment!r}")
  for name, default in defaults[config.experiment].items():
    if getattr(config, name) is None:
      object.__setattr__(config, name, default)
  for name in tuples:
    object.__setattr__(config, name, tuple(getattr(config, name)))
