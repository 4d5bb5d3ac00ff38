"""Raw-bit comparisons of pytrees, and rounding-error measures.

``assert_array_equal`` calls -0.0 equal to +0.0 and NaN equal to NaN; these
helpers compare the bit patterns instead (uint32 for float32, uint16 for bf16).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import numpy as np

_UINT = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}


def bits(x: Any) -> np.ndarray:
  """The raw bit pattern of a float array, as unsigned integers of the same width."""
  a = np.asarray(x)
  return a.view(_UINT[a.dtype.itemsize])


@dataclasses.dataclass(frozen=True)
class BitwiseReport:
  leaves: int
  elements: int
  mismatched_elements: int
  mismatched_paths: tuple[str, ...]

  @property
  def equal(self) -> bool:
    return self.mismatched_elements == 0 and not self.mismatched_paths


def compare_bits(a: Any, b: Any) -> BitwiseReport:
  """Compares two pytrees leaf by leaf, bit for bit (structure, shapes and dtypes too)."""
  la, ta = jax.tree_util.tree_flatten_with_path(a)
  lb, tb = jax.tree_util.tree_flatten_with_path(b)
  if ta != tb:
    return BitwiseReport(len(la), 0, -1, ("<tree structure differs>",))
  elements, bad, paths = 0, 0, []
  for (path, x), (_, y) in zip(la, lb):
    x, y = np.asarray(x), np.asarray(y)
    elements += x.size
    if x.shape != y.shape or x.dtype != y.dtype:
      bad += x.size
      paths.append(jax.tree_util.keystr(path))
      continue
    n = int(np.sum(bits(x) != bits(y)))
    if n:
      bad += n
      paths.append(jax.tree_util.keystr(path))
  return BitwiseReport(len(la), elements, bad, tuple(paths))


def assert_bitwise_equal(a: Any, b: Any) -> BitwiseReport:
  """Raises AssertionError naming the leaves whose bits differ; returns the report."""
  report = compare_bits(a, b)
  if not report.equal:
    raise AssertionError(
        f"{report.mismatched_elements} of {report.elements} elements differ in"
        f" {len(report.mismatched_paths)} of {report.leaves} leaves: {report.mismatched_paths[:5]}")
  return report


def max_relative_error(ref: Any, other: Any) -> float:
  """Max over leaves of ``max|ref - other| / max|ref|`` (a per-leaf relative error)."""
  errs = []
  for x, y in zip(jax.tree.leaves(ref), jax.tree.leaves(other)):
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    scale = np.max(np.abs(x)) if x.size else 0.0
    errs.append(float(np.max(np.abs(x - y)) / scale) if scale > 0 else float(np.max(np.abs(y), initial=0.0)))
  return max(errs, default=0.0)


def _ordered(u: np.ndarray, width: int) -> np.ndarray:
  """Maps float bit patterns to integers whose order and differences are ULP steps."""
  u = u.astype(np.int64)
  sign = np.int64(1) << (8 * width - 1)
  return np.where(u & sign, -(u & (sign - 1)), u)


def max_ulp_distance(a: Any, b: Any, rel_floor: float = 0.0) -> int:
  """Max distance in units in the last place between matching float elements of two pytrees.

  Near zero a tiny absolute difference spans many ULPs (and a sign change spans
  ~2**31), so ``rel_floor`` restricts the count to elements with
  ``|a| >= rel_floor * max|a|`` in their leaf.
  """
  worst = 0
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    x, y = np.asarray(x), np.asarray(y)
    if x.size:
      w = x.dtype.itemsize
      keep = np.abs(x.astype(np.float64)) >= rel_floor * np.max(np.abs(x.astype(np.float64)))
      if np.any(keep):
        worst = max(worst, int(np.max(np.abs(_ordered(bits(x), w) - _ordered(bits(y), w))[keep])))
  return worst


def unpacked_rtol(num_examples: int) -> float:
  """The float32 tolerance for comparing the unpacked (one row per example) gradients with the LM's.

  The two paths do the same maths with sums in a different order, so they differ
  by float32 rounding that accumulates over the N examples' contributions; with
  independent rounding errors that grows like sqrt(N). The bound is
  ``1e-5 * max(1, sqrt(N / 500))`` per-leaf relative error (``max_relative_error``):
  1e-5 up to 500 examples, 2.4e-5 at 3,000. It is empirical, not proved; the
  largest error measured was 1.44e-5 at N = 3,000 (200 duplicate sentences), and
  ``tests/unpacked_tolerance_test.py`` prints what it measures.
  """
  return 1e-5 * max(1.0, (num_examples / 500) ** 0.5)
