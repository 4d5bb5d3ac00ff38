"""jaxequiv: a character LM and a next-character classifier are the same model.

The public API is re-exported here explicitly (``_EXPORTS``) and imported on first
use, so ``import jaxequiv`` is cheap, ``python -m jaxequiv --help`` does not start
JAX, and importing the losses does not import flax.

Wings, imported by name: ``jaxequiv.lm`` (corpora, training, sampling),
``jaxequiv.labels`` (labels as strings), ``jaxequiv.taxonomy`` and
``jaxequiv.roles`` (the essay's later claims), ``jaxequiv.cli``.
"""

from __future__ import annotations

import importlib
import importlib.metadata
from typing import TYPE_CHECKING, Any

try:  # One version source: the installed package's metadata (pyproject.toml).
  __version__ = importlib.metadata.version("jaxequiv")
except importlib.metadata.PackageNotFoundError:  # a source tree on sys.path without an install
  __version__ = "0+unknown"

_EXPORTS = {
    "jaxequiv.alphabet": ("ALPHABET", "BOS", "NUM_CLASSES", "PAD", "decode", "encode", "normalize",
                          "validate_sentences"),
    "jaxequiv.batches": ("ClassificationBatch", "LMBatch", "canonical_order", "lm_batch", "pack_rows", "pad_examples"),
    "jaxequiv.losses": ("classification_xent", "classification_xent_from_logits", "classification_xent_per_example",
                        "classification_xent_sum", "classification_xent_sum_from_logits", "lm_nll", "lm_nll_from_logits",
                        "lm_nll_per_token", "lm_nll_sum", "lm_nll_sum_from_logits", "token_xent"),
    "jaxequiv.model": ("ModelConfig", "apply", "init", "make_apply", "segments"),
    "jaxequiv.model_check": ("ModelReport", "check_model"),
    "jaxequiv.packing": ("pack", "unpacked"),
    "jaxequiv.prefix": ("PrefixExamples", "prefix_examples"),
    "jaxequiv.types": ("ApplyFn", "Params"),
    "jaxequiv.validation": ("batch_checks", "validate_batch"),
}
_SUBMODULES = ("alphabet", "batches", "bitwise", "checkpoint", "determinism", "losses", "model", "model_check",
               "packing", "prefix", "rundir", "sampler", "training", "types", "validation", "verify")
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = sorted(_WHERE) + list(_SUBMODULES)


def __getattr__(name: str) -> Any:
  if name in _WHERE:
    value = getattr(importlib.import_module(_WHERE[name]), name)
  elif name in _SUBMODULES:
    value = importlib.import_module(f"jaxequiv.{name}")
  else:
    raise AttributeError(f"module 'jaxequiv' has no attribute {name!r}")
  globals()[name] = value
  return value


def __dir__() -> list[str]:
  return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # What the lazy table exports, for type checkers and IDEs.
  from jaxequiv import (alphabet, batches, bitwise, checkpoint, determinism, losses, model, model_check, packing,
                        prefix, rundir, sampler, training, types, validation, verify)
  from jaxequiv.alphabet import ALPHABET, BOS, NUM_CLASSES, PAD, decode, encode, normalize, validate_sentences
  from jaxequiv.batches import ClassificationBatch, LMBatch, canonical_order, lm_batch, pack_rows, pad_examples
  from jaxequiv.losses import (classification_xent, classification_xent_from_logits, classification_xent_per_example,
                               classification_xent_sum, classification_xent_sum_from_logits, lm_nll, lm_nll_from_logits,
                               lm_nll_per_token, lm_nll_sum, lm_nll_sum_from_logits, token_xent)
  from jaxequiv.model import ModelConfig, apply, init, make_apply, segments
  from jaxequiv.model_check import ModelReport, check_model
  from jaxequiv.packing import pack, unpacked
  from jaxequiv.prefix import PrefixExamples, prefix_examples
  from jaxequiv.types import ApplyFn, Params
  from jaxequiv.validation import batch_checks, validate_batch
