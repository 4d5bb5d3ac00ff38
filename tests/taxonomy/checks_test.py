"""The taxonomy checks that ``python -m jaxequiv verify`` runs: all pass, and a broken identity would fail."""

import jax.numpy as jnp

from jaxequiv import bitwise
from jaxequiv.taxonomy import checks


def test_all_taxonomy_checks_pass():
  results = checks.run_checks()
  for _, line in results:
    print(line)
  assert len(results) == 11
  assert all(ok for ok, _ in results)
  assert all(line.startswith("PASS  ") and line.count(":") >= 2 for _, line in results)


def test_a_broken_identity_is_reported_as_fail():
  ok, line = checks._bits_line("x", "y", bitwise.compare_bits(jnp.zeros(3), jnp.array([0.0, -0.0, 0.0])))
  assert not ok and line.startswith("FAIL  x: y:") and "1 differ" in line
  ok, line = checks._tol_line("x", "y", 2e-5, 1e-5)
  assert not ok and line.startswith("FAIL")
