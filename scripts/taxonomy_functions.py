"""A CNP against the exact GP posterior, and expression recovery from point sets (K-way vs decoder).

python scripts/taxonomy_functions.py --out results/taxonomy_functions
"""

import argparse

from jaxequiv import provenance
from jaxequiv.taxonomy import exp_functions
from taxonomy_regression import DECODER


def main():
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--cnp-steps", type=int, default=10000)
  ap.add_argument("--cnp-tasks", type=int, default=32, help="GP draws per CNP step")
  ap.add_argument("--expr-steps", type=int, default=2000)
  ap.add_argument("--max-len", type=int, default=4)
  ap.add_argument("--seed", type=int, default=0)
  ap.add_argument("--out", default="results/taxonomy_functions")
  a = ap.parse_args()
  run = provenance.start()
  c = exp_functions.cnp_vs_gp(steps=a.cnp_steps, tasks_per_step=a.cnp_tasks, seed=a.seed)
  c.pop("params"), c.pop("test")
  e = exp_functions.expression_recovery(max_len=a.max_len, steps=a.expr_steps, seed=a.seed)
  res = {"cnp": c, "expressions": e}
  print(res)
  provenance.write(
      run, a.out, res, seeds=[a.seed],
      model=f"CNP: ReLU MLP encoder 2-64-64-64 and decoder 65-64-64-2, mean-pooled context, {a.cnp_steps} AdamW steps"
            f" of {a.cnp_tasks} GP draws; expressions: a DeepSets encoder (ReLU MLPs 2-128-128, 128-128) with a K-way"
            f" linear head or a character decoder of width 64, {a.expr_steps} AdamW steps; {DECODER}",
      headline=[("GP draws, NLL per target point: exact GP posterior, CNP, GP prior",
                 f"{c['gp_posterior_nll']:.2f}, {c['cnp_nll']:.2f}, {c['gp_prior_nll']:.2f}"),
                (f"{e['num_expressions']} functions from {e['points_per_set']} points, exact recovery: K-way,"
                 " character decoder", f"{e['recovery_kway']:.3f}, {e['recovery_decoder_exact_argmax']:.3f}")])


if __name__ == "__main__":
  main()
