"""What the two gradient programs lower to: the classifier's is the LM's plus a scatter.

Compiles jit(grad(lm_nll)) and jit(grad(classification_xent)) on the same rows and
counts the ops of each optimized HLO module by opcode. Writes results/lowering_<backend>.md.

Usage: python scripts/show_lowering.py [--layers 2] [--out results/lowering_cpu.md]
"""

from __future__ import annotations

import argparse
import collections
import datetime
import functools
import os
import re
import sys

import jax

import jaxequiv

_OP = re.compile(r"=\s+[^=]*?\s(\w[\w-]*)\(")


def opcodes(hlo_text: str) -> collections.Counter:
  """Opcode counts of an HLO module's instructions (fused computations included)."""
  return collections.Counter(m.group(1) for line in hlo_text.splitlines() if (m := _OP.search(line)))


def main() -> None:
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--layers", type=int, default=2)
  ap.add_argument("--seq-len", type=int, default=32)
  ap.add_argument("--out", default=None)
  args = ap.parse_args()
  t = args.seq_len
  cfg = jaxequiv.ModelConfig(num_layers=args.layers, width=64, num_heads=4, seq_len=t)
  params, apply_fn = jaxequiv.init(jax.random.key(0), cfg), jaxequiv.make_apply(cfg)
  sentences = ["ab cd.", "ab ce.", "Hi there.", "Hi.", "."]
  lm = jaxequiv.lm_batch(jaxequiv.canonical_order(sentences), t)
  packed = jaxequiv.pack(jaxequiv.prefix_examples(sentences), t)

  def compiled(loss, batch):
    return jax.jit(jax.grad(functools.partial(loss, apply_fn=apply_fn))).lower(params, batch).compile().as_text()

  a, c = opcodes(compiled(jaxequiv.lm_nll, lm)), opcodes(compiled(jaxequiv.classification_xent, packed))
  only_c, only_a = c - a, a - c
  backend = jax.default_backend()
  lines = [
      f"# What the gradient programs lower to ({backend})", "",
      f"- date: {datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
      f"- jax {jax.__version__}, backend {backend}, device {jax.devices()[0].device_kind}",
      f"- command: `python {' '.join(sys.argv)}`",
      f"- model: {args.layers} layers, width 64, T={t}; {len(sentences)} sentences", "",
      f"Instructions in the optimized HLO: LM {sum(a.values())}, packed classification {sum(c.values())}.", "",
      "| opcode | LM | classification |", "|---|---|---|",
  ]
  for op in sorted(set(a) | set(c)):
    lines.append(f"| {op} | {a[op]} | {c[op]} |")
  lines += ["", f"Only in the classification program: {dict(only_c) or 'nothing'}.",
            f"Only in the LM program: {dict(only_a) or 'nothing'}.", "",
            "The classifier's program is the LM's plus the scatter of its labels and weights into the [R, T] grid;"
            " the matmuls and reductions that touch the parameters are the same, on the same shapes."
            if not only_a else "The LM program has ops the classification program lacks: inspect the HLO."]
  text = "\n".join(lines)
  print(text)
  out = args.out or os.path.join(os.path.dirname(__file__), f"../results/lowering_{backend}.md")
  with open(out, "w", encoding="utf-8") as f:
    f.write(text + "\n")


if __name__ == "__main__":
  main()
