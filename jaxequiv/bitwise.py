"""Raw-bit comparisons of pytrees, and rounding-error measures.

``assert_array_equal`` calls -0.0 equal to +0.0 and NaN equal to NaN; these
helpers compare the bit patterns instead (uint32 for float32, uint16 for bf16).
A complex leaf is compared as its real and imaginary parts (uint64 each for
complex128), a typed PRNG key as its ``jax.random.key_data``. The error
measures refuse trees of different structures (they would compare nothing).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import numpy as np

_UINT = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}


def _host(x: Any) -> np.ndarray:
  """A leaf as a numpy array: a typed PRNG key as its key data, a complex array as ``[..., 2]`` (real, imaginary)."""
  if jax.dtypes.issubdtype(getattr(x, "dtype", None), jax.dtypes.prng_key):
    x = jax.random.key_data(x)
  a = np.asarray(x)
  return np.stack([a.real, a.imag], -1) if np.iscomplexobj(a) else a


def bits(x: Any) -> np.ndarray:
  """The raw bit pattern of an array, as unsigned integers of the same width.

  A complex array gives its parts' bits with a trailing axis of 2 (real,
  imaginary); a typed PRNG key gives its key data's.

  Examples:
    >>> import numpy as np
    >>> from jaxequiv import bitwise
    >>> bitwise.bits(np.array([1.0, -0.0], np.float32)).tolist()
    [1065353216, 2147483648]
    >>> bitwise.bits(np.array(complex(1.0, -0.0))).tolist()  # real, imaginary
    [4607182418800017408, 9223372036854775808]
  """
  a = _host(x)
  return a.view(_UINT[a.dtype.itemsize])


def _structure_error(where: str, la: list, ta: Any, lb: list, tb: Any) -> str | None:
  """None if the trees have one structure, else one line naming both and the first leaf path that differs."""
  if ta == tb:
    return None
  pa = [jax.tree_util.keystr(p) or "<root>" for p, _ in la]
  pb = [jax.tree_util.keystr(p) or "<root>" for p, _ in lb]
  i = next((i for i, (x, y) in enumerate(zip(pa, pb)) if x != y), min(len(pa), len(pb)))
  first = f"{pa[i] if i < len(pa) else '(none)'} vs {pb[i] if i < len(pb) else '(none)'}"
  short = lambda t: str(t) if len(str(t)) <= 120 else str(t)[:117] + "..."
  return (f"{where}: the trees differ in structure ({len(pa)} vs {len(pb)} leaves, first at leaf {i}: {first}):"
          f" {short(ta)} vs {short(tb)}")


def _leaf_pairs(where: str, a: Any, b: Any) -> list[tuple[str, Any, Any]]:
  """``(path, a_leaf, b_leaf)`` for two trees of one structure; ValueError naming the structures otherwise."""
  la, ta = jax.tree_util.tree_flatten_with_path(a)
  lb, tb = jax.tree_util.tree_flatten_with_path(b)
  error = _structure_error(where, la, ta, lb, tb)
  if error:
    raise ValueError(error)
  return [(jax.tree_util.keystr(p), x, y) for (p, x), (_, y) in zip(la, lb)]


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
    if np.shape(x) != np.shape(y) or _dtype(x) != _dtype(y):
      bad += int(np.size(x))
      elements += int(np.size(x))
      paths.append(jax.tree_util.keystr(path))
      continue
    differ = bits(x) != bits(y)
    if np.iscomplexobj(x):
      differ = differ.any(-1)  # an element differs if either part does
    elements += differ.size
    n = int(np.sum(differ))
    if n:
      bad += n
      paths.append(jax.tree_util.keystr(path))
  return BitwiseReport(len(la), elements, bad, tuple(paths))


def _dtype(x: Any) -> Any:
  return x.dtype if hasattr(x, "dtype") else np.asarray(x).dtype


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
  for path, x, y in _leaf_pairs("max_relative_error", ref, other):
    x, y = _host(x).astype(np.float64), _host(y).astype(np.float64)
    if x.shape != y.shape:
      raise ValueError(f"max_relative_error: leaf {path} has shape {x.shape} vs {y.shape}")
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
  for path, x, y in _leaf_pairs("max_ulp_distance", a, b):
    x, y = _host(x), _host(y)
    if x.shape != y.shape or x.dtype != y.dtype:
      raise ValueError(f"max_ulp_distance: leaf {path} is {x.dtype}{list(x.shape)} vs {y.dtype}{list(y.shape)}")
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
