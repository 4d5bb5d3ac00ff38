"""A CNP against the exact GP posterior, and expression recovery from point sets (K-way vs decoder).

python scripts/taxonomy_functions.py --out results/taxonomy_functions
"""

import argparse

from jaxequiv import provenance
from jaxequiv.taxonomy import experiment
from taxonomy_regression import DECODER


def main():
  d = experiment.ExperimentConfig("functions")
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--cnp-steps", type=int, default=d.cnp_steps)
  ap.add_argument("--cnp-tasks", type=int, default=d.cnp_tasks, help="GP draws per CNP step")
  ap.add_argument("--expr-steps", type=int, default=d.expr_steps)
  ap.add_argument("--max-len", type=int, default=d.max_len)
  ap.add_argument("--seed", type=int, default=d.seed)
  ap.add_argument("--out", default="results/taxonomy_functions")
  a = ap.parse_args()
  run = provenance.start()
  res = experiment.run(experiment.ExperimentConfig("functions", cnp_steps=a.cnp_steps, cnp_tasks=a.cnp_tasks,
                                                  expr_steps=a.expr_steps, max_len=a.max_len, seed=a.seed))
  res.pop("arrays")
  c, e = res["cnp"], res["expressions"]
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
