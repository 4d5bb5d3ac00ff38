"""Label tries of real size: structure, float32 error of the exact conversions, and speed.

For the CIFAR-100 class names (via ``normalize_label``) and a synthetic set of
1000 labels, reports the trie's size; the float32 error of K-way -> characters
(summed path log-probs vs a float64 log-softmax; node distributions summing to
1) and of the trie-constrained label distribution (sums to 1); and the time of
the jitted conversions and of greedy/beam decoding with a fake causal step
function (compile excluded; median of ``--repeats``). Writes
``results/bench_label_trie.{json,md}``.

  python scripts/bench_label_trie.py --repeats 5
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from jaxequiv import alphabet, provenance  # noqa: E402
from jaxequiv import labels as L  # noqa: E402

CIFAR100 = """apple aquarium_fish baby bear beaver bed bee beetle bicycle bottle bowl boy bridge bus butterfly camel
can castle caterpillar cattle chair chimpanzee clock cloud cockroach couch crab crocodile cup dinosaur dolphin elephant
flatfish forest fox girl hamster house kangaroo keyboard lamp lawn_mower leopard lion lizard lobster man maple_tree
motorcycle mountain mouse mushroom oak_tree orange orchid otter palm_tree pear pickup_truck pine_tree plain plate poppy
porcupine possum rabbit raccoon ray road rocket rose sea seal shark shrew skunk skyscraper snail snake spider squirrel
streetcar sunflower sweet_pepper table tank telephone television tiger tractor train trout tulip turtle wardrobe whale
willow_tree wolf woman worm""".split()


def synthetic(k: int, seed: int = 0) -> list[str]:
  """k distinct labels of 3-24 lowercase letters and spaces, then '.'."""
  rng = np.random.default_rng(seed)
  out: set[str] = set()
  chars = np.array(list("abcdefghijklmnopqrstuvwxyz   "))
  while len(out) < k:
    s = "".join(rng.choice(chars, rng.integers(3, 25))).strip()
    s = " ".join(s.split())
    if s:
      out.add(s + ".")
  return sorted(out)


def _timed(fn, repeats: int) -> tuple[float, float]:
  """(compile + first run seconds, median seconds of later runs)."""
  t0 = time.perf_counter()
  jax.block_until_ready(fn())
  first = time.perf_counter() - t0
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    jax.block_until_ready(fn())
    times.append(time.perf_counter() - t0)
  return first, float(np.median(times))


def measure(name: str, labels: list[str], batch: int, repeats: int) -> dict:
  trie = L.label_trie(labels)
  k = trie.num_classes
  out = {"name": name, "k": k, "nodes": trie.num_nodes, "max_len": trie.max_len,
         "mean_len": float(np.mean(trie.label_lengths)), "errors": [], "timings": []}
  rng = np.random.default_rng(0)
  path = jax.jit(L.path_char_logprobs)
  cond = jax.jit(L.char_conditionals)
  for scale in (1.0, 5.0, 20.0):
    x = (scale * rng.standard_normal((batch, k))).astype(np.float32)
    x64 = x.astype(np.float64)
    want = x64 - x64.max(-1, keepdims=True)
    want -= np.log(np.exp(want).sum(-1, keepdims=True))
    err = np.max(np.abs(np.asarray(path(trie, x), np.float64).sum(-1) - want))
    sums = np.exp(np.asarray(cond(trie, x[:16]), np.float64)).sum(-1)[:, trie.leaf_class < 0]
    out["errors"].append((scale, float(err), float(np.max(np.abs(sums - 1)))))
  node_logits = (3 * rng.standard_normal((16, trie.num_nodes, 64))).astype(np.float32)
  lp = jax.jit(L.label_logprobs, static_argnums=2)(trie, node_logits[:, trie.label_nodes[:, :-1]], True)
  out["constrained_sum_err"] = float(np.max(np.abs(np.exp(np.asarray(lp, np.float64)).sum(-1) - 1)))

  x = jnp.asarray(rng.standard_normal((batch, k)), jnp.float32)
  w = jnp.asarray(rng.standard_normal((trie.max_len, alphabet.INPUT_VOCAB, 64)), jnp.float32)
  full = lambda tok: jnp.cumsum(w[jnp.arange(trie.max_len)[None, :], tok], axis=1)  # noqa: E731
  dec_b = 64

  def beam(width):
    return jax.jit(lambda: L.beam_decode(trie, lambda tok, p: full(tok)[:, p], dec_b, width))

  cases = [
      (f"path_char_logprobs, B={batch}", lambda: path(trie, x)),
      (f"char_conditionals, B={batch}", lambda: cond(trie, x)),
      (f"greedy_decode (fake step), B={dec_b}",
       jax.jit(lambda: L.greedy_decode(trie, lambda tok, p: full(tok)[:, p], dec_b))),
      (f"beam_decode W=4 (fake step), B={dec_b}", beam(4)),
  ]
  if k <= 128:
    cases.append((f"beam_decode W=K={k} (fake step), B={dec_b}", beam(k)))
  for label, fn in cases:
    first, med = _timed(fn, repeats)
    out["timings"].append((label, first, med))
    print(label, first, med, flush=True)
  return out


def render(rec: dict) -> str:
  """results/bench_label_trie.md from its record."""
  lines = ["# Label tries: exactness and speed", "", *provenance.header(rec), ""]
  for m in rec["data"]["sets"]:
    lines += [f"### {m['name']}", "", f"K = {m['k']} labels, N = {m['nodes']} nodes, Lmax = {m['max_len']},"
              f" mean length {m['mean_len']:.1f}", "",
              "| logit scale | max abs(sum path log-probs - log softmax) (nats) | max abs(node sum - 1) |",
              "|---|---|---|"]
    lines += [f"| {scale:g} | {err:.2e} | {sum_err:.2e} |" for scale, err, sum_err in m["errors"]]
    lines += ["", "Trie-constrained label distribution (random consistent logits, scale 3): max abs(sum_k q(k) - 1) ="
              f" {m['constrained_sum_err']:.2e}", "",
              "| operation | first call (s; compile, unless compiled above) | median run (ms) |", "|---|---|---|"]
    lines += [f"| {label} | {first:.2f} | {1e3 * med:.2f} |" for label, first, med in m["timings"]] + [""]
  return "\n".join(lines)


def main() -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--repeats", type=int, default=5)
  parser.add_argument("--batch", type=int, default=256)
  parser.add_argument("--out", default="results/bench_label_trie")
  args = parser.parse_args()
  run = provenance.start()
  labels = L.normalize_labels(CIFAR100)
  assert len(labels) == 100
  sets = [measure("CIFAR-100 class names", labels, args.batch, args.repeats),
          measure("1000 synthetic labels", synthetic(1000), args.batch, args.repeats)]
  rec = provenance.write(
      run, args.out, {"sets": sets}, seeds=[0], render=render,
      model="no trained model: random logits (K-way and per-node) and a fake causal step function (a random"
            " cumulative-sum table) exercise the trie conversions and decoders",
      headline=[(f"label trie, {m['name']}: float32 error of K-way -> characters (worst logit scale)",
                 f"{max(e for _, e, _ in m['errors']):.1e} nats") for m in sets])
  print(render(rec))
  return 0


if __name__ == "__main__":
  sys.exit(main())
