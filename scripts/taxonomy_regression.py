"""Diabetes k-fold over seeds: five conditional-likelihood heads on one MLP trunk beside closed-form ridge.

python scripts/taxonomy_regression.py --out results/taxonomy_regression
"""

import argparse

from jaxequiv import provenance
from jaxequiv.taxonomy import experiment


def pm(v, fmt: str = ".2f") -> str:
  """``mean +- std`` of a ``[mean, std]`` pair."""
  return f"{v[0]:{fmt}} +- {v[1]:{fmt}}"


def seed_flags(ap: argparse.ArgumentParser, d: experiment.ExperimentConfig) -> None:
  """The flags every taxonomy script shares: seeds and the string heads' transformer."""
  ap.add_argument("--seed", type=int, default=d.seed, help="first seed")
  ap.add_argument("--num-seeds", type=int, default=d.num_seeds)
  ap.add_argument("--decoder-width", type=int, default=d.decoder_width, help="string heads' width (default per experiment)")
  ap.add_argument("--decoder-layers", type=int, default=d.decoder_layers)


def seed_config(a: argparse.Namespace) -> dict:
  return {"seed": a.seed, "num_seeds": a.num_seeds, "decoder_width": a.decoder_width, "decoder_layers": a.decoder_layers}


def main():
  d = experiment.ExperimentConfig("regression")
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--folds", type=int, default=d.folds)
  ap.add_argument("--steps", type=int, default=d.steps)
  ap.add_argument("--lr", type=float, default=d.lr)
  seed_flags(ap, d)
  ap.add_argument("--out", default="results/taxonomy_regression")
  a = ap.parse_args()
  run = provenance.start()
  c = experiment.ExperimentConfig("regression", folds=a.folds, steps=a.steps, lr=a.lr, **seed_config(a))
  res = experiment.run(c)
  heads, s = res["heads"], res["setup"]
  for head, v in heads.items():
    print(f"{head:8s} RMSE {pm(v['rmse'])}   NLL {pm(v['nll'], '.3f')}")
  provenance.write(
      run, a.out, res, seeds=c.seeds,
      model=f"one ReLU MLP trunk {'-'.join(map(str, s['trunk']))} per head, AdamW lr {a.lr}, up to {a.steps} full-batch"
            f" steps per fold, early-stopped on an inner {s['early_stopping_split']:.0%} split; {a.folds}-fold CV"
            f" repeated for {len(c.seeds)} seeds; heads: linear (se, gauss, hlgauss, twohot) or, for digits, a string"
            f" head: {s['decoder']}; ridge is closed form",
      headline=[(f"diabetes test RMSE, mean +- std over {len(c.seeds)} seeds: " + ", ".join(heads),
                 ", ".join(pm(v["rmse"], ".1f") for v in heads.values())),
                ("diabetes test NLL (nats per patient): " + ", ".join(heads),
                 ", ".join(pm(v["nll"], ".2f") for v in heads.values()))])


if __name__ == "__main__":
  main()
