"""Diabetes k-fold: five conditional-likelihood heads on one MLP trunk beside closed-form ridge.

python scripts/taxonomy_regression.py --out results/taxonomy_regression.json
"""

import argparse
import json
import time

from jaxequiv.taxonomy import exp_regression


def main():
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--folds", type=int, default=5)
  ap.add_argument("--steps", type=int, default=800)
  ap.add_argument("--lr", type=float, default=1e-3)
  ap.add_argument("--seed", type=int, default=0)
  ap.add_argument("--out", default="results/taxonomy_regression.json")
  a = ap.parse_args()
  t0 = time.time()
  res = exp_regression.run(folds=a.folds, steps=a.steps, seed=a.seed, lr=a.lr)
  res["_config"] = {**vars(a), "seconds": round(time.time() - t0, 1)}
  for head, v in res.items():
    if head != "_config":
      print(f"{head:8s} RMSE {v['rmse'][0]:6.2f} +- {v['rmse'][1]:5.2f}   NLL {v['nll'][0]:6.3f} +- {v['nll'][1]:5.3f}")
  with open(a.out, "w") as f:
    json.dump(res, f, indent=1)


if __name__ == "__main__":
  main()
