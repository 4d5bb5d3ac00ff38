"""JEM on sklearn digits: exact likelihoods on 4x4 binary images (JEM classifier vs the library's char LM), and SGLD
JEM (the paper's settings, and stabilised) vs plain cross-entropy on 8x8 images, seeds vmapped: accuracy, ECE, cost per
step, divergence rate with its 95% Wilson interval, sample grid.

  python scripts/roles_jem.py --seeds 10 --parts sgld --sgld-steps 2000 --out results/roles_jem \
      --png results/roles_jem_samples.png
  python scripts/roles_jem.py --seeds 3 --parts exact,lm --out results/roles_jem_exact
"""

import argparse
import inspect

import numpy as np

from jaxequiv import provenance
from jaxequiv.roles import experiment, jem_sgld, jem_train

_NLL, _SGLD = ("test_x", "test_xy", "test_acc"), ("test_acc", "ece", "diverged")
SHOW = {"exact_jem": ("exact JEM", _NLL), "char_lm": ("char LM", _NLL), **{v: (v, _SGLD) for v in jem_sgld.VARIANTS}}


def show(key: str, runs: list[dict]) -> None:
  """Prints one part's per-seed numbers as it finishes."""
  name, fields = SHOW[key]
  print(name, [tuple(r[f] for f in fields) for r in runs], flush=True)


def divergence(runs: list[dict]) -> tuple[int, int, tuple[float, float]]:
  """Diverged seeds, seeds, and the 95% Wilson interval of the rate."""
  k = sum(r["diverged"] for r in runs)
  return k, len(runs), jem_sgld.wilson_interval(k, len(runs))


def describe(s: dict) -> str:
  """One SGLD variant's recipe, from its recorded settings."""
  if not s["use_jem"]:
    return "cross-entropy only"
  extra = [f"energy penalty {s['energy_reg']:g}"] * (s["energy_reg"] > 0) + ["samples clipped to [-1, 1]"] * s["clip"]
  return (f"{s['sgld_steps']} SGLD steps of size {s['step_size']:g}, noise {s['noise']:g}, buffer"
          f" {s['buffer_size']}, reinit {100 * s['reinit']:g}%{''.join(', ' + e for e in extra)}")


def main():
  d = experiment.ExperimentConfig("jem")
  p = argparse.ArgumentParser()
  p.add_argument("--seeds", type=int, default=d.seeds)
  p.add_argument("--exact-steps", type=int, default=d.exact_steps)
  p.add_argument("--lm-steps", type=int, default=d.lm_steps)
  p.add_argument("--sgld-steps", type=int, default=d.sgld_steps)
  p.add_argument("--parts", default=",".join(d.parts))
  p.add_argument("--sgld-variants", default=",".join(d.sgld_variants), help=f"among {tuple(jem_sgld.VARIANTS)}")
  p.add_argument("--acc-floor", type=float, default=d.acc_floor, help="below this test accuracy a seed has diverged")
  p.add_argument("--out", default="results/roles_jem")
  p.add_argument("--png", default="results/roles_jem_samples.png")
  a = p.parse_args()
  run = provenance.start()
  config = experiment.ExperimentConfig("jem", seeds=a.seeds, exact_steps=a.exact_steps, lm_steps=a.lm_steps,
                                       sgld_steps=a.sgld_steps, parts=tuple(a.parts.split(",")),
                                       sgld_variants=tuple(a.sgld_variants.split(",")), acc_floor=a.acc_floor)
  out = {"args": vars(a), **experiment.run(config, progress=show)}
  sgld = {v: c for v, c in out["sgld_settings"].items() if v in out}  # the variants this run trained (--parts)
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
  for v, s in sgld.items():
    k, n, (lo, hi) = divergence(out[v])
    headline.append((f"8x8 digits, {v} ({describe(s)}): diverged seeds (test accuracy < {a.acc_floor:g} or"
                     " non-finite), 95% Wilson interval; median test accuracy",
                     f"{k} of {n} [{lo:.2f}, {hi:.2f}]; {100 * np.median([r['test_acc'] for r in out[v]]):.1f}%"))
  s0 = next(iter(sgld.values()), None)
  sgld_model = ([f"SGLD variants: leaky-ReLU MLP 64-{s0['hidden']}-{s0['hidden']}-10, {a.sgld_steps} Adam steps"
                 f" (lr {s0['lr']}, batch {s0['batch_size']})"] + [f"{v}: {describe(s)}" for v, s in sgld.items()]
                if s0 else [])
  hidden = exact_kw["hidden"]
  models = [f"exact JEM: MLP 16-{hidden}-{hidden}-10, {a.exact_steps} steps"] * ("exact_jem" in out)
  models += [f"char LM: jaxequiv.model transformer, width {lm_kw['width']}, {a.lm_steps} steps of"
             f" {lm_kw['batch_size']}"] * ("char_lm" in out)
  provenance.write(run, a.out, out, seeds=list(seeds), headline=headline, model="; ".join(models + sgld_model))


if __name__ == "__main__":
  main()
