"""A CNP against the exact GP posterior, and expression recovery from point sets (K-way vs decoder).

python scripts/taxonomy_functions.py --out results/taxonomy_functions.json
"""

import argparse
import json
import time

from jaxequiv.taxonomy import exp_functions


def main():
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--cnp-steps", type=int, default=10000)
  ap.add_argument("--cnp-tasks", type=int, default=32, help="GP draws per CNP step")
  ap.add_argument("--expr-steps", type=int, default=2000)
  ap.add_argument("--max-len", type=int, default=4)
  ap.add_argument("--seed", type=int, default=0)
  ap.add_argument("--out", default="results/taxonomy_functions.json")
  a = ap.parse_args()
  t0 = time.time()
  c = exp_functions.cnp_vs_gp(steps=a.cnp_steps, tasks_per_step=a.cnp_tasks, seed=a.seed)
  c.pop("params"), c.pop("test")
  e = exp_functions.expression_recovery(max_len=a.max_len, steps=a.expr_steps, seed=a.seed)
  res = {"cnp": c, "expressions": e, "_config": {**vars(a), "seconds": round(time.time() - t0, 1)}}
  print(json.dumps(res, indent=1))
  with open(a.out, "w") as f:
    json.dump(res, f, indent=1)


if __name__ == "__main__":
  main()
