"""JEM on sklearn digits: exact likelihoods on 4x4 binary images (JEM classifier vs the library's char LM), and SGLD
JEM vs plain cross-entropy on 8x8 images (accuracy, ECE, cost per step, sample grid).

  python scripts/roles_jem.py --seeds 3 --out results/roles_jem --png results/roles_jem_samples.png
"""

import argparse
import inspect

import numpy as np

from jaxequiv import provenance
from jaxequiv.roles import experiment, jem_train

_NLL, _SGLD = ("test_x", "test_xy", "test_acc"), ("test_acc", "ece", "sec_per_step")
SHOW = {"exact_jem": ("exact JEM", _NLL), "char_lm": ("char LM", _NLL), "sgld_jem": ("sgld_jem", _SGLD),
        "sgld_ce": ("sgld_ce", _SGLD)}


def show(key: str, runs: list[dict]) -> None:
  """Prints one part's per-seed numbers as it finishes."""
  name, fields = SHOW[key]
  print(name, [tuple(r[f] for f in fields) for r in runs], flush=True)


def main():
  d = experiment.ExperimentConfig("jem")
  p = argparse.ArgumentParser()
  p.add_argument("--seeds", type=int, default=d.seeds)
  p.add_argument("--exact-steps", type=int, default=d.exact_steps)
  p.add_argument("--lm-steps", type=int, default=d.lm_steps)
  p.add_argument("--sgld-steps", type=int, default=d.sgld_steps)
  p.add_argument("--parts", default=",".join(d.parts))
  p.add_argument("--out", default="results/roles_jem")
  p.add_argument("--png", default="results/roles_jem_samples.png")
  a = p.parse_args()
  run = provenance.start()
  config = experiment.ExperimentConfig("jem", seeds=a.seeds, exact_steps=a.exact_steps, lm_steps=a.lm_steps,
                                       sgld_steps=a.sgld_steps, parts=tuple(a.parts.split(",")))
  out = {"args": vars(a), **experiment.run(config, progress=show)}
  sgld = out["sgld_settings"]
  seeds = range(a.seeds)
  if "sgld_jem" in out:
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
