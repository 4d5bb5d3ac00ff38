"""GAN vs PacGAN on PacGAN's 2-D ring and grid: one MLP class as generator and discriminator.

  python scripts/roles_gan.py --seeds 10 --steps 3000 --out results/roles_gan.json
"""

import argparse
import json
import time

import numpy as np

from jaxequiv.roles import gan, mixtures


def main():
  p = argparse.ArgumentParser()
  p.add_argument("--seeds", type=int, default=10)
  p.add_argument("--steps", type=int, default=3000)
  p.add_argument("--gen-width", type=int, default=400)
  p.add_argument("--disc-width", type=int, default=200)
  p.add_argument("--lr", type=float, default=1e-4)
  p.add_argument("--batch-size", type=int, default=100)
  p.add_argument("--decay", action="store_true", help="cosine learning-rate decay over the run")
  p.add_argument("--settings", default="ring:1,ring:2,grid:1,grid:4")
  p.add_argument("--out", default="results/roles_gan.json")
  a = p.parse_args()
  out = {"args": vars(a), "runs": {}}
  for setting in a.settings.split(","):
    name, pack = setting.split(":")
    mix = mixtures.ring() if name == "ring" else mixtures.grid()
    cfg = gan.GANConfig(gen_hidden=(a.gen_width,) * 4, disc_hidden=(a.disc_width,) * 3, pack=int(pack),
                        learning_rate=a.lr, batch_size=a.batch_size,
                        decay_steps=a.steps if a.decay else 0)
    t = time.time()
    per_seed, samples = gan.train_seeds(list(range(a.seeds)), cfg, mix, a.steps)
    secs = time.time() - t
    summary = {k: (float(np.mean([r[k] for r in per_seed])), float(np.std([r[k] for r in per_seed])))
               for k in per_seed[0]}
    out["runs"][f"{name}, pack {pack}"] = {"per_seed": per_seed, "mean_std": summary, "seconds": secs,
                                           "samples_seed0": np.asarray(samples[0][:1000]).round(4).tolist()}
    print(f"{name} pack={pack}: modes {summary['modes'][0]:.1f} +- {summary['modes'][1]:.1f},"
          f" HQ {100 * summary['high_quality'][0]:.1f}%, reverse KL {summary['reverse_kl'][0]:.3f} ({secs:.0f} s)",
          flush=True)
  with open(a.out, "w") as f:
    json.dump(out, f)


if __name__ == "__main__":
  main()
