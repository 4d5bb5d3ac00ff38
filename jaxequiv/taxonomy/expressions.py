r"""A function as a string: prefix-notation expressions under a grammar-constrained decoder.

The alphabet has no ``+*()``, so operators are letters. Expressions are in
prefix (Polish) notation, which needs no brackets, and end with ``'.'``:

* terminals (arity 0): ``x``, ``1``, ``2``;
* unary (arity 1): ``S`` sin, ``C`` cos;
* binary (arity 2): ``a`` add, ``s`` subtract, ``m`` multiply.


The decoder state is (``need``, ``used``): operands still owed and symbols
emitted. A symbol of arity a is allowed iff ``need > 0`` and the string can
still close within ``max_len`` symbols, ``used + 1 + (need - 1 + a) <= max_len``;
``'.'`` iff ``need == 0``. Every allowed prefix therefore completes, so masking
any model's logits to the allowed set and renormalising gives a distribution
whose support is exactly the grammar's strings of at most ``max_len`` symbols,
with total probability 1.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from jaxequiv import alphabet

TERMINALS = "x12"
UNARY = "SC"
BINARY = "asm"
SYMBOLS = TERMINALS + UNARY + BINARY


@functools.lru_cache(maxsize=None)
def arity_table() -> np.ndarray:
  """``[64]`` int32: each character's arity; -1 for characters that are not symbols."""
  out = np.full(alphabet.NUM_CLASSES, -1, np.int32)
  for chars, a in ((TERMINALS, 0), (UNARY, 1), (BINARY, 2)):
    for c in chars:
      out[alphabet.ALPHABET.index(c)] = a
  return out


def grammar_strings(max_len: int) -> list[str]:
  """Every expression of 1..``max_len`` symbols, each followed by ``'.'``, sorted (from the grammar alone).

  Examples:
    >>> grammar_strings(2)
    ['1.', '2.', 'C1.', 'C2.', 'Cx.', 'S1.', 'S2.', 'Sx.', 'x.']
  """
  if not (isinstance(max_len, int) and max_len >= 1):
    raise ValueError(f"max_len must be an int >= 1, got {max_len!r}")

  @functools.lru_cache(maxsize=None)
  def exprs(n: int) -> tuple[str, ...]:  # expressions of exactly n symbols
    out = [t for t in TERMINALS] if n == 1 else []
    out += [u + e for u in UNARY for e in exprs(n - 1)] if n >= 2 else []
    for left in range(1, n - 1):
      out += [b + e1 + e2 for b in BINARY for e1 in exprs(left) for e2 in exprs(n - 1 - left)]
    return tuple(out)

  return sorted(e + "." for n in range(1, max_len + 1) for e in exprs(n))


def allowed(need_B: jax.Array, used_B: jax.Array, max_len: int) -> jax.Array:
  """``[B, 64]`` bool: the characters the grammar allows next in state (need, used)."""
  a = jnp.asarray(arity_table())
  need, used = need_B[:, None], used_B[:, None]
  sym = (a[None] >= 0) & (need > 0) & (used + 1 + need - 1 + a[None] <= max_len)
  period = (jnp.arange(alphabet.NUM_CLASSES) == alphabet.PERIOD)[None] & (need == 0)
  return sym | period


def advance(need_B: jax.Array, used_B: jax.Array, char_B: jax.Array) -> tuple[jax.Array, jax.Array]:
  """State after emitting ``char_B``: ``need - 1 + arity``, ``used + 1``."""
  return need_B - 1 + jnp.asarray(arity_table())[char_B], used_B + 1


def constrained_logprobs(logits_Bx64: jax.Array, need_B: jax.Array, used_B: jax.Array, max_len: int) -> jax.Array:
  """Logits masked to the grammar and renormalised (log-softmax); -inf elsewhere."""
  x = jnp.where(allowed(need_B, used_B, max_len), logits_Bx64.astype(jnp.float32), -jnp.inf)
  return jax.nn.log_softmax(x, axis=-1)


def string_logprobs(logits_SxTx64: jax.Array, chars_SxT: jax.Array, lengths_S: jax.Array, max_len: int) -> jax.Array:
  """Teacher-forced log-probabilities ``[S]`` of S strings under the grammar-constrained model.

  Args:
    logits_SxTx64: the model's next-character logits after each prefix of each string.
    chars_SxT: character ids (the string, ``'.'`` included; anything after).
    lengths_S: string lengths (``'.'`` included), T >= max length.
    max_len: the grammar's symbol budget.
  """
  s, t = chars_SxT.shape
  need, used, total = jnp.ones((s,), jnp.int32), jnp.zeros((s,), jnp.int32), jnp.zeros((s,), jnp.float32)
  for i in range(t):
    lp = constrained_logprobs(logits_SxTx64[:, i], need, used, max_len)
    tok = jnp.take_along_axis(lp, chars_SxT[:, i:i + 1], axis=1)[:, 0]
    live = i < lengths_S
    total = total + jnp.where(live, tok, 0.0)
    new_need, new_used = advance(need, used, chars_SxT[:, i])
    need, used = jnp.where(live, new_need, need), jnp.where(live, new_used, used)
  return total


def decoder_support(max_len: int) -> list[str]:
  """Every string the constrained decoder can emit (breadth-first over the allowed sets), sorted."""
  done, frontier = [], [("", 1, 0)]
  mask = jax.jit(allowed, static_argnums=2)
  while frontier:
    need = jnp.array([f[1] for f in frontier], jnp.int32)
    used = jnp.array([f[2] for f in frontier], jnp.int32)
    ok = np.asarray(mask(need, used, max_len))
    nxt = []
    for (prefix, n, u), row in zip(frontier, ok):
      for c in np.flatnonzero(row):
        ch = alphabet.ALPHABET[c]
        if c == alphabet.PERIOD:
          done.append(prefix + ch)
        else:
          nxt.append((prefix + ch, n - 1 + int(arity_table()[c]), u + 1))
    frontier = nxt
  return sorted(done)


# --- evaluation and deduplication ---------------------------------------------------------------------------


def evaluate(expr: str, x: np.ndarray) -> np.ndarray:
  """Values of an expression (with or without its ``'.'``) at points ``x`` (float64 numpy)."""
  x = np.asarray(x, np.float64)
  expr = expr[:-1] if expr.endswith(".") else expr

  def rec(i: int):
    c = expr[i]
    if c == "x":
      return x, i + 1
    if c in "12":
      return np.full_like(x, float(c)), i + 1
    if c in UNARY:
      v, j = rec(i + 1)
      return (np.sin(v) if c == "S" else np.cos(v)), j
    if c in BINARY:
      v1, j = rec(i + 1)
      v2, k = rec(j)
      return {"a": v1 + v2, "s": v1 - v2, "m": v1 * v2}[c], k
    raise ValueError(f"expression {expr!r}: {c!r} at position {i} is not a symbol of the grammar")

  v, end = rec(0)
  if end != len(expr):
    raise ValueError(f"expression {expr!r} ends at position {end}; trailing symbols {expr[end:]!r}")
  return v


def unique_by_value(exprs: list[str], grid: np.ndarray, decimals: int = 6) -> list[str]:
  """Keeps the first (pass them shortest first) expression of each distinct value vector on ``grid``."""
  seen, out = set(), []
  for e in exprs:
    key = tuple(np.round(evaluate(e, grid), decimals) + 0.0)
    if key not in seen:
      seen.add(key)
      out.append(e)
  return out
