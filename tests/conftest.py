"""Sets the determinism XLA flags for whatever backend JAX finds, before any test runs JAX.

Under CI (``CI`` set) hypothesis runs derandomized, so a CI run is reproducible;
locally it explores new random examples each run.
"""

import os

from hypothesis import settings

from jaxequiv import determinism

ADDED_XLA_FLAGS = determinism.set_xla_flags()

settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
  settings.load_profile("ci")
