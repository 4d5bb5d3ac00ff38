"""Check your own model: is it causal, does it keep segments and rows apart, and does the equivalence hold for it?

The losses take any causal ``apply_fn(params, tokens_RxT) -> logits_RxTx64``;
``check_model`` checks that yours is one, on this backend:

* **causality** (exact): logits at positions ``<= t`` keep their bits when every
  token after ``t`` changes, for every ``t``. A non-causal model still gives
  bitwise-equal LM and classifier gradients (same rows, same arithmetic), but
  each position then reads the character it is asked to predict: equal bits are
  not enough.
* **segment safety**: a segment's logits keep their bits when the segment before
  it changes, and equal its logits alone (bitwise, or to float32 rounding). Only
  then are ``packed=True`` batches safe.
* **row independence** (exact): batch statistics (batch norm in training mode)
  make a row's logits depend on the other rows, and an iid classifier batch
  holds other rows than the LM's.
* **equivalence**: LM vs packed classifier, loss and gradients, bit for bit
  under ``jax.jit`` (plain, shuffled, packed rows), in float32 and the model's dtype.
* **independent path**: the unpacked classifier within ``bitwise.unpacked_rtol(N)``.
* **accumulation**: ``(sum, count)`` over uneven micro-batches vs one batch.

``jaxequiv.verify`` runs these checks on the library's transformer, and
``jaxequiv verify --model FILE.py:FACTORY`` runs ``check_model`` on yours.
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxequiv import alphabet, batches, bitwise, losses, packing, prefix
from jaxequiv.types import ApplyFn, Params

PROBE_ROWS = 4  # random rows in the causality, segment and row probes
NUM_SENTENCES = 8  # default sentences (``default_sentences``)
EDGE_CASES = (".", "a.", "Hi.", "Hi.", "Hi there.", "ab cd.", "ab ce.")
WORDS = ("the", "cat", "sat", "on", "a", "mat", "The", "dog", "ran", "far", "away", "I", "saw", "42", "Zebras", "run")
ACCUMULATION_RTOL = 1e-5  # one float32 rounding per micro-batch (tests/losses_api_test.py)
NEGLIGIBLE_LEAF = 1e-6  # a gradient leaf this far below the largest one is rounding noise (``grad_error``)
RESTART_RTOL = 1e-5  # a segment alone vs packed, when the bits differ: float32 rounding of a shifted reduction


@dataclasses.dataclass(frozen=True)
class Check:
  """One line of a report. ``required=False`` checks warn instead of failing (``status`` WARN)."""

  name: str
  passed: bool
  detail: str
  required: bool = True

  @property
  def status(self) -> str:
    return "PASS" if self.passed else "FAIL" if self.required else "WARN"

  @property
  def line(self) -> str:
    return f"{self.status}  {self.name}: {self.detail}"


@dataclasses.dataclass(frozen=True)
class ModelReport:
  """What ``check_model`` found: one ``Check`` per line, and notes on what they mean together.

  ``ok`` is True when every required check passed. ``str(report)`` is a table.
  """

  checks: tuple[Check, ...]
  notes: tuple[str, ...] = ()

  @property
  def ok(self) -> bool:
    return all(c.passed or not c.required for c in self.checks)

  def __getitem__(self, name: str) -> Check:
    for c in self.checks:
      if c.name == name:
        return c
    raise KeyError(f"no check named {name!r}; checks: {[c.name for c in self.checks]}")

  def __str__(self) -> str:
    w = max(len("check"), *(len(c.name) for c in self.checks))
    rows = [f"{'check':<{w}}  result  detail"] + [f"{c.name:<{w}}  {c.status:<6}  {c.detail}" for c in self.checks]
    return "\n".join(rows + [f"note: {n}" for n in self.notes] + [self.summary])

  @property
  def summary(self) -> str:
    passed = sum(c.passed for c in self.checks)
    return f"{passed} of {len(self.checks)} checks passed: {'OK' if self.ok else 'FAIL'}"


def default_sentences(num: int, seq_len: int, seed: int = 0) -> list[str]:
  """Edge cases (the sentence ".", duplicates, shared prefixes, one filling the context) plus random word sentences."""
  rng = np.random.default_rng(seed)
  out = [s for s in EDGE_CASES if len(s) <= seq_len][:num]
  if len(out) < num:
    out.append(("The end" + " x" * seq_len)[: seq_len - 1] + ".")  # exactly seq_len characters
  while len(out) < num:
    words = rng.choice(WORDS, size=rng.integers(1, 12))
    out.append(" ".join(words)[: seq_len - 1].rstrip() + ".")
  return out


def bits_detail(report: bitwise.BitwiseReport) -> str:
  """``"L leaves, E elements"``, and which leaves differ when the bits do."""
  detail = f"{report.leaves} leaves, {report.elements:,} elements"
  if not report.equal:
    detail += f"; {report.mismatched_elements:,} elements differ in {list(report.mismatched_paths)[:3]}"
  return detail


def _split_leaves(ref: Any, got: Any) -> tuple[list, list, float]:
  """Leaf pairs ``(significant, negligible, top)``: below ``NEGLIGIBLE_LEAF * top`` a leaf is negligible.

  ``top`` is the largest ``|gradient|`` of all leaves. A negligible leaf is zero
  in exact arithmetic (an attention's key bias: softmax ignores a shift shared
  by all keys) and holds rounding noise only.
  """
  pairs = [(np.asarray(x), np.asarray(y)) for x, y in zip(jax.tree.leaves(ref), jax.tree.leaves(got))]
  scale = [float(np.max(np.abs(x.astype(np.float64)))) if x.size else 0.0 for x, _ in pairs]
  top = max(scale, default=0.0)
  big = [p for p, s in zip(pairs, scale) if s >= NEGLIGIBLE_LEAF * top]
  return big, [p for p, s in zip(pairs, scale) if s < NEGLIGIBLE_LEAF * top], top


def grad_error(ref: Any, got: Any) -> float:
  """``bitwise.max_relative_error`` per leaf; a negligible leaf (``_split_leaves``) is measured against the top scale."""
  big, small, top = _split_leaves(ref, got)
  noise = [float(np.max(np.abs(x.astype(np.float64) - y.astype(np.float64)), initial=0.0)) / top for x, y in small]
  return max([bitwise.max_relative_error([x for x, _ in big], [y for _, y in big]), *noise])


def value_and_grad(loss: Callable, apply_fn: ApplyFn) -> Callable:
  """``jax.jit(jax.value_and_grad(loss(params, batch, apply_fn)))``: the form every equivalence check compares."""
  return jax.jit(jax.value_and_grad(functools.partial(loss, apply_fn=apply_fn)))


# ----------------------------------------------------------------------------- probes of the model


def _random_rows(rng: np.random.Generator, r: int, t: int) -> np.ndarray:
  tokens_RxT = rng.integers(0, alphabet.NUM_CLASSES, (r, t)).astype(np.int32)
  tokens_RxT[:, 0] = alphabet.BOS
  return tokens_RxT


def _changed(rng: np.random.Generator, tokens: np.ndarray) -> np.ndarray:
  """Every class id replaced by a different one."""
  return ((tokens + rng.integers(1, alphabet.NUM_CLASSES, tokens.shape)) % alphabet.NUM_CLASSES).astype(np.int32)


def causality(logits_fn: Callable, seq_len: int, rng: np.random.Generator) -> Check:
  """Logits at positions ``<= t`` keep their bits when every token after t changes, for t = 0..T-2.

  On a failure, names the first cut t that leaks, the first position p <= t
  whose logits change, and the first later position q whose token alone changes them.
  """
  x = _random_rows(rng, PROBE_ROWS, seq_len)
  ref = bitwise.bits(logits_fn(x))
  for t in range(seq_len - 1):
    y = x.copy()
    y[:, t + 1:] = _changed(rng, x[:, t + 1:])
    leaked = np.any(bitwise.bits(logits_fn(y))[:, : t + 1] != ref[:, : t + 1], axis=(0, 2))
    if leaked.any():
      p = int(np.argmax(leaked))
      for q in range(t + 1, seq_len):
        z = x.copy()
        z[:, q] = y[:, q]
        if np.any(bitwise.bits(logits_fn(z))[:, p] != ref[:, p]):
          break
      return Check("causality", False,
                   f"first leak at t={t}: the logits at position {p} change when the tokens after {t} change (the"
                   f" token at {q} alone changes them); the model sees the future")
  return Check("causality", True, f"logits at positions <= t keep their bits when every later token changes;"
                                  f" t = 0..{seq_len - 2}, {PROBE_ROWS} random rows")


def segment_safety(logits_fn: Callable, seq_len: int, rng: np.random.Generator, required: bool = True) -> Check:
  """Whether the model restarts at ``BOS``, so that ``packed=True`` batches are safe.

  Each probe row holds a segment A ``[BOS, ..]`` of random length k, then a
  segment B ``[BOS, ..]`` to the end of the row. Exact: B's logits keep their
  bits when A's characters change. Restart: B's logits equal B's alone at the
  start of a row (bitwise, or within ``RESTART_RTOL`` relative error).
  """
  r, t = PROBE_ROWS, seq_len
  k = rng.integers(1, t - 1, r)  # A occupies [0, k), B [k, T): B has at least 2 tokens
  packed = _random_rows(rng, r, t)
  packed[np.arange(r), k] = alphabet.BOS
  other = packed.copy()
  alone = np.full((r, t), alphabet.PAD, np.int32)
  for i in range(r):
    other[i, 1 : k[i]] = _changed(rng, packed[i, 1 : k[i]])
    alone[i, : t - k[i]] = packed[i, k[i]:]
  lp, lo, la = logits_fn(packed), logits_fn(other), logits_fn(alone)
  bad = [i for i in range(r) if np.any(bitwise.bits(lp[i, k[i]:]) != bitwise.bits(lo[i, k[i]:]))]
  use = "packed=True batches are unsafe for this model" + ("" if required else "; keep packed=False")
  if bad:
    i = bad[0]
    return Check("segment safety", False,
                 f"a segment's logits change when the segment before it changes (row {i}: segment at {k[i]}): the"
                 f" model does not restart at BOS; {use}", required)
  pairs = [(np.asarray(lp[i, k[i]:], np.float64), np.asarray(la[i, : t - k[i]], np.float64)) for i in range(r)]
  same_bits = all(np.array_equal(bitwise.bits(lp[i, k[i]:]), bitwise.bits(la[i, : t - k[i]])) for i in range(r))
  err = max(float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(b))), 1e-30)) for a, b in pairs)
  if not same_bits and not err <= RESTART_RTOL:
    return Check("segment safety", False,
                 f"a segment's logits packed behind another differ from its logits alone (relative error {err:.2e}"
                 f" > {RESTART_RTOL:g}): positions do not restart at BOS; {use}", required)
  how = "bitwise" if same_bits else f"to rounding (relative error {err:.2e} <= {RESTART_RTOL:g})"
  return Check("segment safety", True,
               f"a segment's logits keep their bits when the segment before it changes, and equal its logits alone"
               f" {how}: packed=True batches are safe", required)


def row_independence(logits_fn: Callable, seq_len: int, rng: np.random.Generator) -> Check:
  """Row 0's logits keep their bits when the other rows of the batch change."""
  x = _random_rows(rng, PROBE_ROWS, seq_len)
  y = x.copy()
  y[1:] = _random_rows(rng, PROBE_ROWS - 1, seq_len)
  if np.array_equal(bitwise.bits(logits_fn(x)[0]), bitwise.bits(logits_fn(y)[0])):
    return Check("row independence", True, f"a row's logits keep their bits when the other {PROBE_ROWS - 1} rows change")
  return Check("row independence", False,
               "a row's logits change when the other rows of the batch change (batch statistics?): an iid classifier"
               " batch and the LM batch hold different rows, so the two losses train different functions")


# ----------------------------------------------------------------------------- the equivalence


def equivalence(lm_fn: Callable, clf_fn: Callable, params: Params, sentences: Sequence[str], seq_len: int, *,
                seed: int = 0, name: str = "equivalence") -> Check:
  """LM vs packed classifier (``value_and_grad`` of each), loss and gradients bit for bit: plain, shuffled, packed rows."""
  ex = prefix.prefix_examples(sentences)
  perm = np.random.default_rng(seed).permutation(len(ex))
  ref = lm_fn(params, batches.lm_batch(batches.canonical_order(sentences), seq_len))
  rows = len(batches.lm_batch(sentences, seq_len, packed=True).inputs)
  lm_packed = batches.lm_batch(sentences, seq_len, packed=True, num_rows=len(sentences))  # one shape: one compile
  cases = (("plain", ref, clf_fn(params, packing.pack(ex, seq_len))),
           ("shuffled", ref, clf_fn(params, packing.pack(ex.take(perm), seq_len))),
           (f"packed rows ({len(sentences)} sentences in {rows} rows)", lm_fn(params, lm_packed),
            clf_fn(params, packing.pack(ex.take(perm), seq_len, packed=True, num_rows=len(sentences)))))
  reports = [(what, bitwise.compare_bits(a, b)) for what, a, b in cases]
  bad = [f"{what}: {bits_detail(rep)}" for what, rep in reports if not rep.equal]
  if bad:
    return Check(name, False, "LM vs classifier, loss and gradients: bits differ; " + "; ".join(bad))
  return Check(name, True, f"LM vs classifier, loss and gradients under jit, bits equal ({bits_detail(reports[0][1])}):"
                           f" {', '.join(what for what, _ in reports)}")


def independent_path(lm_fn: Callable, clf_fn: Callable, params: Params, sentences: Sequence[str],
                     seq_len: int) -> Check:
  """The unpacked classifier (one row per example) within ``bitwise.unpacked_rtol(N)`` of the LM.

  The tolerance is for float32 arithmetic; GPUs (TF32) and TPUs (bf16 passes)
  round float32 matmuls more coarsely by default, so this forces float32 matmuls.
  """
  ex = prefix.prefix_examples(sentences)
  cpu = jax.default_backend() == "cpu"  # float32 matmuls already; the context would only recompile
  with contextlib.nullcontext() if cpu else jax.default_matmul_precision("float32"):
    ref = lm_fn(params, batches.lm_batch(batches.canonical_order(sentences), seq_len))
    got = clf_fn(params, packing.unpacked(ex, seq_len))
  rel = grad_error(ref[1], got[1])
  big, _, _ = _split_leaves(ref[1], got[1])
  loss_rel = abs(float(ref[0]) - float(got[0])) / abs(float(ref[0]))
  rtol = bitwise.unpacked_rtol(len(ex))
  return Check("independent path", rel <= rtol and loss_rel <= rtol,
               f"unpacked classifier vs LM, float32 matmuls: max relative error per leaf {rel:.2e} (loss"
               f" {loss_rel:.2e}) {'<=' if rel <= rtol and loss_rel <= rtol else '>'} {rtol:.2g} for N={len(ex)}; max"
               f" ULP distance {bitwise.max_ulp_distance(*zip(*big), rel_floor=1e-3):,} where |g| >= 1e-3 max|g|")


def accumulation(apply_fn: ApplyFn, lm_fn: Callable, params: Params, sentences: Sequence[str], seq_len: int) -> Check:
  r"""``(sum, count)`` gradients over two uneven micro-batches, :math:`\sum_m \nabla S_m / \sum_m C_m`, vs the full batch.

  Within ``ACCUMULATION_RTOL`` per leaf; the classifier's accumulation equals the
  LM's in bits. Every micro-batch has the full batch's shape: each form compiles once.
  """
  order = batches.canonical_order(sentences)
  r, cut = len(order), max(1, len(order) // 3)
  parts = [order[:cut], order[cut:]]
  full = lm_fn(params, batches.lm_batch(order, seq_len))[1]

  def accumulate(sum_loss, micro):
    grad = jax.jit(jax.grad(lambda p, b: sum_loss(p, b, apply_fn), has_aux=True))
    pairs = [grad(params, b) for b in micro]
    total = np.float32(sum(float(c) for _, c in pairs))
    return jax.tree.map(lambda *g: sum(np.asarray(x) for x in g) / total, *[g for g, _ in pairs])  # float32, numpy

  lm = accumulate(losses.lm_nll_sum, [batches.lm_batch(p, seq_len, num_rows=r) for p in parts])
  clf = accumulate(losses.classification_xent_sum,
                   [batches.pad_examples(packing.pack(prefix.prefix_examples(p), seq_len, num_rows=r), r * seq_len)
                    for p in parts])
  err = grad_error(full, lm)
  same = bitwise.compare_bits(lm, clf)
  counts = [sum(map(len, p)) for p in parts]
  ok = err <= ACCUMULATION_RTOL and same.equal
  return Check("accumulation", ok,
               f"(sum, count) over micro-batches of {counts[0]} and {counts[1]} predictions vs one batch: max relative"
               f" error per leaf {err:.2e} {'<=' if err <= ACCUMULATION_RTOL else '>'} {ACCUMULATION_RTOL:g};"
               f" classifier's accumulation vs LM's: {'bits equal' if same.equal else bits_detail(same)}")


# ----------------------------------------------------------------------------- one call


def _cast(params: Params, dtype: Any) -> Params:
  """Floating leaves cast to dtype (in numpy: no compile per leaf shape)."""
  floating = lambda x: jnp.issubdtype(jnp.result_type(x), jnp.floating) and jnp.result_type(x) != dtype  # noqa: E731
  return jax.tree.map(lambda x: np.asarray(x).astype(dtype) if floating(x) else x, params)


def _model_dtype(params: Params, dtype: Any) -> Any:
  """``dtype``, else the params' floating dtype when it is not float32, else None."""
  if dtype is not None:
    return jnp.dtype(dtype)
  floats = {jnp.result_type(x) for x in jax.tree.leaves(params) if jnp.issubdtype(jnp.result_type(x), jnp.floating)}
  return next((d for d in sorted(floats, key=str) if d != jnp.float32), None)


def check_model(apply_fn: ApplyFn, params: Params, *, seq_len: int, sentences: Sequence[str] | None = None,
                dtype: Any = None, packed: bool = False, seed: int = 0) -> ModelReport:
  """Checks that the equivalence holds for your model, and which batches are safe for it (module docstring).

  Args:
    apply_fn: ``apply_fn(params, tokens_RxT) -> logits_RxTx64``, meant to be causal.
    params: its parameter pytree.
    seq_len: context length T (>= 3) of the probes and batches.
    sentences: the batch of the equivalence checks (at least 2); by default
      ``default_sentences`` (edge cases and random words).
    dtype: the model's own dtype for a second equivalence check (params cast to
      it); by default the params' floating dtype when it is not float32.
    packed: you will train on ``packed=True`` batches, so segment safety is
      required (otherwise a failure only warns).
    seed: for the random probe rows and the shuffle.

  Returns:
    A ``ModelReport``: ``print`` it; ``report.ok`` is True when every required check passed.

  Raises:
    ValueError: for ``seq_len < 3``, fewer than 2 sentences, or an ``apply_fn``
      whose logits are not ``[R, T, 64]``.

  Examples:
    >>> import jax, jax.numpy as jnp, jaxequiv
    >>> table = jax.random.normal(jax.random.key(0), (66, 64))
    >>> bigram = lambda p, tokens: p[tokens]  # logits from the current token only: causal
    >>> report = jaxequiv.check_model(bigram, table, seq_len=6)
    >>> report.ok, report["causality"].passed, report["segment safety"].passed
    (True, True, True)
  """
  if not isinstance(seq_len, int) or seq_len < 3:
    raise ValueError(f"check_model: seq_len must be an integer >= 3, got {seq_len!r}")
  sentences = default_sentences(NUM_SENTENCES, seq_len) if sentences is None else sentences
  sentences = alphabet.validate_sentences(sentences, max_len=seq_len)
  if len(sentences) < 2:
    raise ValueError(f"check_model needs at least 2 sentences (micro-batches for the accumulation), got {len(sentences)}")
  model_dtype = _model_dtype(params, dtype)
  apply_jit = jax.jit(apply_fn)
  shape = jax.eval_shape(apply_jit, params, jax.ShapeDtypeStruct((PROBE_ROWS, seq_len), jnp.int32)).shape
  if shape != (PROBE_ROWS, seq_len, alphabet.NUM_CLASSES):
    raise ValueError(f"check_model: apply_fn returned logits of shape {shape} for tokens {(PROBE_ROWS, seq_len)};"
                     f" expected {(PROBE_ROWS, seq_len, alphabet.NUM_CLASSES)}")
  logits_fn = lambda tokens: np.asarray(apply_jit(params, tokens))  # noqa: E731
  rng = np.random.default_rng(seed)
  checks = [causality(logits_fn, seq_len, rng), segment_safety(logits_fn, seq_len, rng, required=packed),
            row_independence(logits_fn, seq_len, rng)]
  f32 = _cast(params, jnp.float32)
  lm_fn, clf_fn = value_and_grad(losses.lm_nll, apply_fn), value_and_grad(losses.classification_xent, apply_fn)
  checks.append(equivalence(lm_fn, clf_fn, f32, sentences, seq_len, seed=seed, name="equivalence float32"))
  if model_dtype is not None and model_dtype != jnp.float32:
    checks.append(equivalence(lm_fn, clf_fn, _cast(params, model_dtype), sentences, seq_len, seed=seed,
                              name=f"equivalence {model_dtype}"))
  checks.append(independent_path(lm_fn, clf_fn, f32, sentences, seq_len))
  checks.append(accumulation(apply_fn, lm_fn, f32, sentences, seq_len))
  return ModelReport(tuple(checks), _notes(checks))


def _notes(checks: Sequence[Check]) -> tuple[str, ...]:
  by = {c.name: c for c in checks}
  equal = all(c.passed for c in checks if c.name.startswith("equivalence"))
  notes = []
  if not by["causality"].passed and equal:
    notes.append("the LM and classifier gradients are bitwise equal, and that is not enough: both losses run the"
                 " same arithmetic on the same rows whatever the model does, but this model is not causal, so each"
                 " position reads the character it is asked to predict and both losses are meaningless")
  if not by["row independence"].passed and equal:
    notes.append("the bits agree here only because the LM and the packed classifier hold the same rows; a"
                 " shuffled or sub-sampled classifier batch would not")
  if not by["segment safety"].passed and not by["segment safety"].required:
    notes.append("segment safety is a warning: it matters only for packed=True batches (check_model(...,"
                 " packed=True) makes it required)")
  return tuple(notes)
