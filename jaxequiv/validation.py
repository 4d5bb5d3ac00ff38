"""Checks on batches before the losses use them.

* Shapes and dtypes are checked always, traced or not.
* Values are checked on the host whenever the arrays are concrete (the losses
  call ``validate_batch`` for you outside ``jax.jit``): token ids, targets and
  labels in range, rows and positions inside the grid, no two examples on one
  slot, at least one prediction. Each error names the first bad example.
* Under ``jax.jit`` the arrays are tracers and **no value is checked** unless you
  opt in with ``batch_checks`` and ``jax.experimental.checkify``: a bad batch is
  then an error you ``.throw()``, not a silently wrong loss (label -1 would
  otherwise score as class 63, row -1 wrap around, an out-of-range row drop).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import checkify

from jaxequiv import alphabet
from jaxequiv.batches import ClassificationBatch, LMBatch

V = alphabet.NUM_CLASSES
TOKENS = V + 2  # Class ids, BOS and PAD.


def _shape_error(what: str, batch) -> ValueError:
  got = ", ".join(f"{k} {tuple(np.shape(v))} {getattr(v, 'dtype', type(v).__name__)}" for k, v in batch._asdict().items())
  return ValueError(f"{what}; got {got}")


def _is_int(x) -> bool:
  return np.issubdtype(getattr(x, "dtype", np.float32), np.integer)


def _traced(batch) -> bool:
  return any(isinstance(x, jax.core.Tracer) for x in batch)


def _first(bad: np.ndarray) -> tuple[int, ...]:
  return tuple(int(i) for i in np.argwhere(bad)[0])


def check_lm_batch(batch: LMBatch) -> None:
  """Shapes and dtypes of an ``LMBatch`` (always), and its values if concrete (``validate_batch``)."""
  if not isinstance(batch, LMBatch):
    raise TypeError(f"expected LMBatch, got {type(batch).__name__}")
  shapes = {np.shape(x) for x in batch}
  if len(shapes) != 1 or len(np.shape(batch.inputs)) != 2:
    raise _shape_error("LMBatch fields must all have the same shape [R, T]", batch)
  if not (_is_int(batch.inputs) and _is_int(batch.targets)):
    raise _shape_error("LMBatch inputs and targets must be integer arrays", batch)
  if getattr(batch.mask, "dtype", None) not in (np.bool_, np.dtype(bool)) and not _is_int(batch.mask):
    raise _shape_error("LMBatch mask must be bool", batch)
  if _traced(batch):
    return
  inputs, targets, mask = (np.asarray(x) for x in batch)
  if inputs.size == 0 or not mask.any():
    raise ValueError(f"empty LMBatch: no position has mask True (inputs {inputs.shape}); the mean NLL would be 0/0")
  if np.any((inputs < 0) | (inputs >= TOKENS)):
    r, t = _first((inputs < 0) | (inputs >= TOKENS))
    raise ValueError(f"LMBatch inputs[{r}, {t}] = {inputs[r, t]}, outside [0, {TOKENS}) (64 classes, BOS, PAD)")
  if np.any(mask & ((targets < 0) | (targets >= V))):
    r, t = _first(mask & ((targets < 0) | (targets >= V)))
    raise ValueError(f"LMBatch targets[{r}, {t}] = {targets[r, t]} where mask is True, outside [0, {V})")


def check_classification_batch(batch: ClassificationBatch) -> None:
  """Shapes and dtypes of a ``ClassificationBatch`` (always), and its values if concrete (``validate_batch``)."""
  if not isinstance(batch, ClassificationBatch):
    raise TypeError(f"expected ClassificationBatch, got {type(batch).__name__}")
  if len(np.shape(batch.tokens)) != 2:
    raise _shape_error("ClassificationBatch tokens must have shape [R, T]", batch)
  n_shapes = {np.shape(batch.rows), np.shape(batch.positions), np.shape(batch.labels)}
  if len(n_shapes) != 1 or len(next(iter(n_shapes))) != 1:
    raise _shape_error("ClassificationBatch rows, positions and labels must all have shape [N]", batch)
  if not all(_is_int(x) for x in batch):
    raise _shape_error("ClassificationBatch fields must be integer arrays", batch)
  if _traced(batch):
    return
  r, t = np.shape(batch.tokens)
  tokens, rows, pos, labels = (np.asarray(x) for x in batch)
  real = rows != r
  if not real.any():
    raise ValueError(f"empty ClassificationBatch: all {len(rows)} examples are padding (row {r}); the mean would be 0/0")
  if np.any((tokens < 0) | (tokens >= TOKENS)):
    i, j = _first((tokens < 0) | (tokens >= TOKENS))
    raise ValueError(f"ClassificationBatch tokens[{i}, {j}] = {tokens[i, j]}, outside [0, {TOKENS}) (64 classes, BOS, PAD)")
  if np.any((rows < 0) | (rows > r)):
    i = int(np.flatnonzero((rows < 0) | (rows > r))[0])
    raise ValueError(f"example {i} has row {rows[i]}, outside [0, {r}] (R={r} marks padding)")
  if np.any(real & ((pos < 0) | (pos >= t))):
    i = int(np.flatnonzero(real & ((pos < 0) | (pos >= t)))[0])
    raise ValueError(f"example {i} has position {pos[i]}, outside [0, {t})")
  if np.any(real & ((labels < 0) | (labels >= V))):
    i = int(np.flatnonzero(real & ((labels < 0) | (labels >= V)))[0])
    raise ValueError(f"example {i} has label {labels[i]}, outside [0, {V})")
  slots = rows[real].astype(np.int64) * t + pos[real]
  uniq, counts = np.unique(slots, return_counts=True)
  if np.any(counts > 1):
    s = int(uniq[np.argmax(counts > 1)])
    first = [int(i) for i in np.flatnonzero(real)[slots == s]][:2]
    raise ValueError(f"examples {first[0]} and {first[1]} share the slot (row {s // t}, position {s % t});"
                     f" each (row, position) classifies at most one example")


def validate_batch(batch: LMBatch | ClassificationBatch) -> None:
  """Host-side check of a concrete batch; raises ValueError naming the first bad example.

  Examples:
    >>> import numpy as np, jaxequiv
    >>> from jaxequiv.validation import validate_batch
    >>> b = jaxequiv.pack(jaxequiv.prefix_examples(["Hi."]), 8)
    >>> validate_batch(b)
    >>> validate_batch(b._replace(labels=np.where(np.arange(3) == 1, -1, b.labels).astype(np.int32)))
    Traceback (most recent call last):
    ValueError: example 1 has label -1, outside [0, 64)
  """
  if _traced(batch):
    raise TypeError("validate_batch needs concrete arrays; under jax.jit use batch_checks with checkify")
  if isinstance(batch, LMBatch):
    check_lm_batch(batch)
  elif isinstance(batch, ClassificationBatch):
    check_classification_batch(batch)
  else:
    raise TypeError(f"expected LMBatch or ClassificationBatch, got {type(batch).__name__}")


def batch_checks(batch: LMBatch | ClassificationBatch) -> None:
  """The value checks of ``validate_batch`` as ``checkify.check`` calls, for use under ``jax.jit``.

  Call it inside a function you wrap with ``checkify.checkify``; the error names
  the first bad index. Costs a few reductions over ``[R, T]`` and ``[N]``.

  Examples:
    >>> import functools, jax, numpy as np, jaxequiv
    >>> from jax.experimental import checkify
    >>> from jaxequiv.validation import batch_checks
    >>> cfg = jaxequiv.ModelConfig(num_layers=1, width=16, num_heads=2, seq_len=8)
    >>> params, apply_fn = jaxequiv.init(jax.random.key(0), cfg), jaxequiv.make_apply(cfg)
    >>> def loss(p, b):
    ...   batch_checks(b)
    ...   return jaxequiv.classification_xent(p, b, apply_fn)
    >>> f = jax.jit(checkify.checkify(loss))
    >>> b = jaxequiv.pack(jaxequiv.prefix_examples(["Hi."]), 8)
    >>> err, _ = f(params, b)
    >>> err.throw()  # passes
    >>> err, _ = f(params, b._replace(rows=np.array([0, -1, 0], np.int32)))
    >>> err.get()
    'example 1: row -1 outside [0, 1] ...'
  """
  if isinstance(batch, LMBatch):
    check_lm_batch(batch)
    inputs, targets, mask = (jnp.asarray(x) for x in batch)
    checkify.check(jnp.any(mask), "empty LMBatch: no position has mask True")
    bad = (inputs < 0) | (inputs >= TOKENS)
    i = jnp.argmax(bad.reshape(-1))
    checkify.check(~jnp.any(bad), "LMBatch input at flat index {i} outside [0, 66)", i=i)
    bad = mask & ((targets < 0) | (targets >= V))
    i = jnp.argmax(bad.reshape(-1))
    checkify.check(~jnp.any(bad), "LMBatch target at flat index {i} outside [0, 64) where mask is True", i=i)
    return
  check_classification_batch(batch)
  tokens, rows, pos, labels = (jnp.asarray(x) for x in batch)
  r, t = tokens.shape
  real = rows != r
  checkify.check(jnp.any(real), "empty ClassificationBatch: every example is padding")
  bad = (tokens < 0) | (tokens >= TOKENS)
  checkify.check(~jnp.any(bad), "token at flat index {i} outside [0, 66)", i=jnp.argmax(bad.reshape(-1)))
  for what, bad_n, value, rng in (("row", (rows < 0) | (rows > r), rows, f"[0, {r}]"),
                                  ("position", real & ((pos < 0) | (pos >= t)), pos, f"[0, {t})"),
                                  ("label", real & ((labels < 0) | (labels >= V)), labels, f"[0, {V})")):
    i = jnp.argmax(bad_n)
    checkify.check(~jnp.any(bad_n), f"example {{i}}: {what} {{v}} outside {rng}", i=i, v=value[i])
  slot = jnp.where(real, rows * t + pos, -1 - jnp.arange(rows.shape[0]))  # padding never collides
  order = jnp.argsort(slot)
  dup = jnp.concatenate([jnp.zeros(1, bool), slot[order][1:] == slot[order][:-1]])
  checkify.check(~jnp.any(dup), "example {i} shares its (row, position) slot with another",
                 i=order[jnp.argmax(dup)])
