"""JEM on sklearn digits: exact likelihoods on 4x4 binary images (JEM classifier vs the library's char LM), and SGLD
JEM vs plain cross-entropy on 8x8 images (accuracy, ECE, cost per step, sample grid).

  python scripts/roles_jem.py --seeds 3 --out results/roles_jem --png results/roles_jem_samples.png
"""

import argparse
import inspect

import numpy as np

from jaxequiv import provenance
from jaxequiv.roles import jem_train


def main():
  p = argparse.ArgumentParser()
  p.add_argument("--seeds", type=int, default=3)
  p.add_argument("--exact-steps", type=int, default=400)
  p.add_argument("--lm-steps", type=int, default=1500)
  p.add_argument("--sgld-steps", type=int, default=2000)
  p.add_argument("--parts", default="exact,lm,sgld")
  p.add_argument("--out", default="results/roles_jem")
  p.add_argument("--png", default="results/roles_jem_samples.png")
  a = p.parse_args()
  run = provenance.start()
  sgld = {n: v.default for n, v in inspect.signature(jem_train.train_sgld).parameters.items()
          if n not in ("seed", "steps", "use_jem")}
  out = {"args": vars(a), "sgld_settings": sgld}
  seeds = range(a.seeds)
  if "exact" in a.parts:
    out["exact_jem"] = [jem_train.train_exact_jem(seed=s, steps=a.exact_steps) for s in seeds]
    print("exact JEM", [(r["test_x"], r["test_xy"], r["test_acc"]) for r in out["exact_jem"]], flush=True)
  if "lm" in a.parts:
    out["char_lm"] = [jem_train.train_char_lm(seed=s, steps=a.lm_steps) for s in seeds]
    print("char LM", [(r["test_x"], r["test_xy"], r["test_acc"]) for r in out["char_lm"]], flush=True)
  if "sgld" in a.parts:
    out["sgld_jem"] = [jem_train.train_sgld(seed=s, steps=a.sgld_steps, use_jem=True) for s in seeds]
    out["sgld_ce"] = [jem_train.train_sgld(seed=s, steps=a.sgld_steps, use_jem=False) for s in seeds]
    for k in ("sgld_jem", "sgld_ce"):
      print(k, [(r["test_acc"], r["ece"], r["sec_per_step"]) for r in out[k]], flush=True)
    import matplotlib  # pylint: disable=import-outside-toplevel
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
    x = np.clip(np.array(out["sgld_jem"][0]["samples"]), -1, 1).reshape(8, 8, 8, 8)
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.imshow(x.transpose(0, 2, 1, 3).reshape(64, 64), cmap="gray_r")
    ax.set_axis_off()
    ax.set_title("JEM SGLD samples (persistent buffer, seed 0, clipped to [-1, 1])", fontsize=8)
    fig.savefig(a.png, dpi=100, bbox_inches="tight")
  exact_kw = {n: v.default for n, v in inspect.signature(jem_train.train_exact_jem).parameters.items()}
  lm_kw = {n: v.default for n, v in inspect.signature(jem_train.train_char_lm).parameters.items()}
  headline = []
  if "exact_jem" in out and "char_lm" in out:
    e, l = (np.mean([r["test_x"] for r in out[k]]) for k in ("exact_jem", "char_lm"))
    headline.append(("4x4 binary digits, test bits per image: JEM classifier (exact Z), character LM",
                     f"{e:.2f}, {l:.2f} ({a.seeds} seeds)"))
  if "sgld_jem" in out:
    headline.append(("8x8 digits, test accuracy per seed: SGLD JEM; cross-entropy", "; ".join(
        ", ".join(f"{100 * r['test_acc']:.1f}%" for r in out[k]) for k in ("sgld_jem", "sgld_ce"))))
  provenance.write(
      run, a.out, out, seeds=list(seeds), headline=headline,
      model=f"exact JEM: MLP 16-{exact_kw['hidden']}-{exact_kw['hidden']}-10, {a.exact_steps} steps; char LM:"
            f" jaxequiv.model transformer, width {lm_kw['width']}, {a.lm_steps} steps of {lm_kw['batch_size']};"
            f" SGLD JEM and CE: leaky-ReLU MLP 64-{sgld['hidden']}-{sgld['hidden']}-10, {a.sgld_steps} Adam steps"
            f" (lr {sgld['lr']}, batch {sgld['batch_size']}), {sgld['sgld_steps']} SGLD steps per step")


if __name__ == "__main__":
  main()
