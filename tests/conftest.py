"""Sets the determinism XLA flags for whatever backend JAX finds, before any test runs JAX."""

from jaxequiv import determinism

ADDED_XLA_FLAGS = determinism.set_xla_flags()
