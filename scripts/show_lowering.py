"""What the two gradient programs lower to: the classifier's is the LM's plus a scatter.

Compiles jit(grad(lm_nll)) and jit(grad(classification_xent)) on the same rows and
counts the ops of each optimized HLO module by opcode. Writes results/lowering_<backend>.{json,md}.

Usage: python scripts/show_lowering.py [--layers 2] [--out results/lowering_cpu]
"""

from __future__ import annotations

import argparse
import collections
import functools
import os
import re

import jax

import jaxequiv
from jaxequiv import provenance

_OP = re.compile(r"=\s+[^=]*?\s(\w[\w-]*)\(")


def opcodes(hlo_text: str) -> collections.Counter:
  """Opcode counts of an HLO module's instructions (fused computations included)."""
  return collections.Counter(m.group(1) for line in hlo_text.splitlines() if (m := _OP.search(line)))


def render(rec: dict) -> str:
  """results/lowering_<backend>.md from its record."""
  d = rec["data"]
  a, c = collections.Counter(d["lm_ops"]), collections.Counter(d["classification_ops"])
  only_c, only_a = c - a, a - c
  lines = [f"# What the gradient programs lower to ({rec['provenance']['backend']})", "", *provenance.header(rec), "",
           f"Instructions in the optimized HLO: LM {sum(a.values())}, packed classification {sum(c.values())}.", "",
           "| opcode | LM | classification |", "|---|---|---|"]
  lines += [f"| {op} | {a[op]} | {c[op]} |" for op in sorted(set(a) | set(c))]
  lines += ["", f"Only in the classification program: {dict(only_c) or 'nothing'}.",
            f"Only in the LM program: {dict(only_a) or 'nothing'}.", "",
            "The classifier's program is the LM's plus the scatter of its labels and weights into the [R, T] grid;"
            " the matmuls and reductions that touch the parameters are the same, on the same shapes."
            if not only_a else "The LM program has ops the classification program lacks: inspect the HLO."]
  return "\n".join(lines)


def main() -> None:
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--layers", type=int, default=2)
  ap.add_argument("--seq-len", type=int, default=32)
  ap.add_argument("--out", default=None, help="output path without extension (default results/lowering_<backend>)")
  args = ap.parse_args()
  run = provenance.start()
  t = args.seq_len
  cfg = jaxequiv.ModelConfig(num_layers=args.layers, width=64, num_heads=4, seq_len=t)
  params, apply_fn = jaxequiv.init(jax.random.key(0), cfg), jaxequiv.make_apply(cfg)
  sentences = ["ab cd.", "ab ce.", "Hi there.", "Hi.", "."]
  lm = jaxequiv.lm_batch(jaxequiv.canonical_order(sentences), t)
  packed = jaxequiv.pack(jaxequiv.prefix_examples(sentences), t)

  def compiled(loss, batch):
    return jax.jit(jax.grad(functools.partial(loss, apply_fn=apply_fn))).lower(params, batch).compile().as_text()

  a, c = opcodes(compiled(jaxequiv.lm_nll, lm)), opcodes(compiled(jaxequiv.classification_xent, packed))
  extra = c - a
  out = args.out or os.path.join(os.path.dirname(__file__), f"../results/lowering_{jax.default_backend()}")
  rec = provenance.write(
      run, out, {"lm_ops": dict(a), "classification_ops": dict(c), "sentences": sentences},
      model=f"jaxequiv.model transformer, {args.layers} layers, width 64, 4 heads, T={t}, random init (not trained):"
            f" the two gradient programs are compiled, not run",
      seeds=[0], render=render,
      headline=[("compiled gradient programs, HLO instructions",
                 f"LM {sum(a.values())}, packed classification {sum(c.values())}"
                 f" ({sum(extra.values())} more, {extra['scatter']} of them scatters;"
                 f" LM-only ops: {sum((a - c).values())})")])
  print(render(rec))


if __name__ == "__main__":
  main()
