"""The reductio grid: {relu, tanh} x {LM, classifier} on the builtin corpus and on sklearn digits, several seeds.

  python scripts/roles_reductio.py --seeds 5 --steps 300 --out results/roles_reductio.json
"""

import argparse
import json
import time

from jaxequiv.roles import reductio


def main():
  p = argparse.ArgumentParser()
  p.add_argument("--seeds", type=int, default=5)
  p.add_argument("--steps", type=int, default=300)
  p.add_argument("--batch-size", type=int, default=16)
  p.add_argument("--width", type=int, default=32)
  p.add_argument("--num-layers", type=int, default=2)
  p.add_argument("--datasets", default="builtin,digits")
  p.add_argument("--out", default="results/roles_reductio.json")
  a = p.parse_args()
  out = {"args": vars(a), "grids": {}}
  for ds in a.datasets.split(","):
    t = time.time()
    out["grids"][ds] = reductio.run_grid(ds, list(range(a.seeds)), a.steps, a.batch_size, a.width, a.num_layers)
    out["grids"][ds]["seconds"] = time.time() - t
    print(ds, json.dumps({k: v for k, v in out["grids"][ds].items() if k != "cells"}), flush=True)
    with open(a.out, "w") as f:
      json.dump(out, f)


if __name__ == "__main__":
  main()
