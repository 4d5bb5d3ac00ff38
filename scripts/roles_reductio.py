"""The reductio grid: {relu, tanh} x {LM, classifier} on the builtin corpus and on sklearn digits, several seeds.

  python scripts/roles_reductio.py --seeds 5 --steps 300 --out results/roles_reductio
  python scripts/roles_reductio.py --seeds 5 --steps 1200 --width 128 --datasets digits --objectives lm \
      --out results/roles_reductio_w128
"""

import argparse
import json

import numpy as np

from jaxequiv import provenance
from jaxequiv.roles import experiment


def main():
  d = experiment.ExperimentConfig("reductio")
  p = argparse.ArgumentParser()
  p.add_argument("--seeds", type=int, default=d.seeds)
  p.add_argument("--steps", type=int, default=d.steps)
  p.add_argument("--batch-size", type=int, default=d.batch_size)
  p.add_argument("--width", type=int, default=d.width)
  p.add_argument("--num-layers", type=int, default=d.num_layers)
  p.add_argument("--datasets", default=",".join(d.datasets))
  p.add_argument("--objectives", default=",".join(d.objectives),
                 help="lm,classifier (the objective axis and its bit check) or lm (the activation axis only)")
  p.add_argument("--out", default="results/roles_reductio")
  a = p.parse_args()
  run = provenance.start()
  config = experiment.ExperimentConfig("reductio", seeds=a.seeds, steps=a.steps, batch_size=a.batch_size,
                                       width=a.width, num_layers=a.num_layers, datasets=tuple(a.datasets.split(",")),
                                       objectives=tuple(a.objectives.split(",")))
  show = lambda ds, g: print(ds, json.dumps({k: v for k, v in g.items() if k != "cells"}), flush=True)  # noqa: E731
  out = {"args": vars(a), **experiment.run(config, progress=show)}
  headline = []
  for ds, g in out["grids"].items():
    key = "label_acc" if "label_acc" in g["cells"]["relu/lm"] else "nll"
    bits = [g[f"{act}/bits"] for act in ("relu", "tanh") if f"{act}/bits" in g]
    lm = {act: g["cells"][f"{act}/lm"][key] for act in ("relu", "tanh")}
    headline.append((f"{ds}, width {a.width}, {a.steps} steps: {key}, relu vs tanh (LM; mean ± seed std)"
                     + "; final-parameter elements whose bits differ, LM vs classifier" * bool(bits),
                     " vs ".join(f"{np.mean(v):.3f} ± {np.std(v):.3f}" for v in lm.values())
                     + (f"; {sum(b['mismatched'] for b in bits)} of {sum(b['elements'] for b in bits)} elements differ"
                        if bits else "")))
  provenance.write(run, a.out, out, seeds=list(range(a.seeds)), headline=headline,
                   model=f"jaxequiv.model transformer, {a.num_layers} layers, width {a.width}, relu or tanh; Adam,"
                         f" {a.steps} steps of {a.batch_size} sentences; {a.seeds} seeds (vmapped)")


if __name__ == "__main__":
  main()
