"""Types shared by the losses and the models; importing them does not import flax."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax

Params = Any  # A parameter pytree.
ApplyFn = Callable[[Params, jax.Array], jax.Array]  # apply_fn(params, tokens_RxT) -> logits_RxTx64, causal.
