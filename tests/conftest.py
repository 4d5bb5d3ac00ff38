"""Sets the determinism XLA flags for whatever backend JAX finds, before any test runs JAX.

Matmuls run in true float32 (``jax_default_matmul_precision="float32"``): the
suite's float32 tolerances are for float32 arithmetic, which GPUs (TF32) and
TPUs (bf16 passes) do not use by default. On CPU this changes nothing. The
bitwise claims hold at any precision; ``python -m jaxequiv verify`` checks them
at the backend's default.

Under CI (``CI`` set) hypothesis runs derandomized, so a CI run is reproducible;
locally it explores new random examples each run.
"""

import os

import jax
from hypothesis import settings

from jaxequiv import determinism

ADDED_XLA_FLAGS = determinism.set_xla_flags()
jax.config.update("jax_default_matmul_precision", "float32")

settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
  settings.load_profile("ci")
