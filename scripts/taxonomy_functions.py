"""A CNP against the exact GP posterior, and expression recovery from point sets (K-way vs decoder), over seeds.

python scripts/taxonomy_functions.py --out results/taxonomy_functions
"""

import argparse

from jaxequiv import provenance
from jaxequiv.taxonomy import experiment
from taxonomy_regression import pm, seed_config, seed_flags


def main():
  d = experiment.ExperimentConfig("functions")
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--cnp-steps", type=int, default=d.cnp_steps)
  ap.add_argument("--cnp-tasks", type=int, default=d.cnp_tasks, help="GP draws per CNP step")
  ap.add_argument("--cnp-test-tasks", type=int, default=d.cnp_test_tasks)
  ap.add_argument("--expr-steps", type=int, default=d.expr_steps)
  ap.add_argument("--max-len", type=int, default=d.max_len)
  seed_flags(ap, d)
  ap.add_argument("--out", default="results/taxonomy_functions")
  a = ap.parse_args()
  run = provenance.start()
  c = experiment.ExperimentConfig("functions", cnp_steps=a.cnp_steps, cnp_tasks=a.cnp_tasks,
                                  cnp_test_tasks=a.cnp_test_tasks, expr_steps=a.expr_steps, max_len=a.max_len,
                                  **seed_config(a))
  res = experiment.run(c)
  res.pop("arrays")
  f, e = res["cnp"], res["expressions"]
  print({k: res[k] for k in ("cnp", "expressions")})
  provenance.write(
      run, a.out, res, seeds=c.seeds,
      model=f"CNP: ReLU MLP encoder 2-64-64-64 and decoder 65-64-64-2, mean-pooled context, {a.cnp_steps} AdamW steps"
            f" of {a.cnp_tasks} GP draws; expressions: a DeepSets encoder (ReLU MLPs 2-{e['encoder_width'][0]:.0f}-"
            f"{e['encoder_width'][0]:.0f}, {e['encoder_width'][0]:.0f}-{e['encoder_width'][0]:.0f}) with a K-way linear"
            f" head or a string head, {a.expr_steps} AdamW steps of batch {e['batch'][0]:.0f}; the string head is"
            f" {e['decoder']}; {len(c.seeds)} seeds",
      headline=[("GP draws, NLL per target point: exact GP posterior, CNP, GP prior",
                 ", ".join(pm(f[k]) for k in ("gp_posterior_nll", "cnp_nll", "gp_prior_nll"))),
                (f"{e['num_expressions'][0]:.0f} functions from {e['points_per_set'][0]:.0f} points, exact recovery:"
                 " K-way, string head", f"{pm(e['recovery_kway'], '.3f')}, {pm(e['recovery_decoder_exact_argmax'], '.3f')}"),
                ("expressions NLL (nats per point set): K-way, string head",
                 f"{pm(e['nll_kway'])}, {pm(e['nll_decoder'])}")])


if __name__ == "__main__":
  main()
