"""A CNP (and an attentive CNP) at the reference widths, trained on fresh GP draws until the test NLL stops improving.

Each model trains ``--seeds`` runs at once (vmapped), every step on new GP tasks, and is evaluated every
``--eval-every`` steps on one fixed held-out set of GP draws beside the exact GP posterior (the floor) and the
GP prior (a model that ignores the context). Training stops at a plateau (``--patience`` evaluations without a
``--min-delta`` improvement of the seeds' mean) or at ``--max-steps``; the record says which.

  python scripts/cnp_converged.py --out results/cnp_converged                   # CNP then attentive CNP, 3 seeds
  python scripts/cnp_converged.py --models cnp --max-steps 20 --eval-every 10 --width 16 --seeds 2 \\
      --test-tasks 16 --out /tmp/cnp                                                # smoke
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from jaxequiv import provenance  # noqa: E402
from jaxequiv.taxonomy import exp_cnp  # noqa: E402

NAMES = {"cnp": "CNP (mean-pooled context)", "acnp": "attentive CNP (self- and cross-attention, 8 heads)"}
# The reference CNP as the issue reads DeepMind's neural-processes notebook; our value beside it.
REFERENCE = (("iterations", 200_000, lambda c, r: r["final_step"]),
             ("batch (tasks per step)", 64, lambda c, r: c["batch"]),
             ("encoder (layers x width)", "4 x 128", lambda c, r: f"{c['enc_hidden'] + 1} x {c['width']}"),
             ("Adam learning rate", 1e-4, lambda c, r: c["lr"]))


def _pm(xs, fmt=".3f") -> str:
  xs = np.asarray(xs, np.float64)
  return f"{xs.mean():{fmt}} ± {xs.std(ddof=1):{fmt}}" if len(xs) > 1 else f"{xs.mean():{fmt}}"


def _cell(v) -> str:
  return v if isinstance(v, str) else f"{v:g}"


def gap_line(run: dict) -> str:
  """The model's final test NLL against the exact GP posterior, read from the run."""
  final, floor, prior = np.asarray(run["final_test_nll"]), run["gp_posterior_nll"], run["gp_prior_nll"]
  closed = (prior - final) / (prior - floor)
  return (f"{_pm(final)} nats per target point (GP posterior {floor:.3f}, prior {prior:.3f}); gap to the GP"
          f" {_pm(final - floor)}; {100 * closed.mean():.0f}% of the prior-to-posterior gap closed;"
          f" {run['final_step']} steps, stopped at {run['stopped']}")


def render(rec: dict) -> str:
  d = rec["data"]
  lines = ["# Neural processes trained to convergence on GP draws", "", *provenance.header(rec), "",
           "Fresh GP draws every step (RBF, lengthscale 0.4, amplitude 1, noise 0.1, x in [-2, 2]); 3..10 context"
           " points and 20 target points per task; the held-out set and both GP references are the same"
           " draws for every model and seed.", "",
           "| model | test NLL per target point | GP posterior (floor) | GP prior | gap to the floor | steps | stopped |"
           " ms per step per seed |", "|---|---|---|---|---|---|---|---|"]
  for name, run in d["runs"].items():
    final = np.asarray(run["final_test_nll"])
    lines.append(f"| {NAMES[name]} | {_pm(final)} | {run['gp_posterior_nll']:.3f} | {run['gp_prior_nll']:.3f} |"
                 f" {_pm(final - run['gp_posterior_nll'])} | {run['final_step']} | {run['stopped']} |"
                 f" {run['ms_per_step_per_seed']:.1f} |")
  lines += ["", "Against the reference CNP's setup (bold: differs):", "",
            "| setting | reference | " + " | ".join(NAMES[n].split(" (")[0] for n in d["runs"]) + " |",
            "|---|---|" + "---|" * len(d["runs"])]
  for what, ref, ours in REFERENCE:
    cells = [_cell(ours(r["config"], r)) if ours(r["config"], r) == ref else f"**{_cell(ours(r['config'], r))}**"
             for r in d["runs"].values()]
    lines.append(f"| {what} | {_cell(ref)} | " + " | ".join(cells) + " |")
  lines += ["", "Also not the reference's: disjoint context and target points (the reference's targets include the"
            " context), GP noise 0.1, variance 1e-4 + softplus.", "",
            f"Plateau rule: stop when the seeds' mean test NLL has not improved by {d['min_delta']} for"
            f" {d['patience']} evaluations ({d['eval_every']} steps apart).", "",
            f"![curves]({rec['name']}.png)", ""]
  for name, run in d["runs"].items():
    lines.append(f"- {NAMES[name]}: {gap_line(run)}.")
  return "\n".join(lines)


def plot(data: dict, path: str) -> None:
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  fig, ax = plt.subplots(figsize=(7, 4))
  for i, (name, run) in enumerate(data["runs"].items()):
    for s, curve in enumerate(run["test_nll_SxE"]):
      ax.plot(run["steps"], curve, color=f"C{i}", alpha=0.7, label=NAMES[name] if s == 0 else None)
  run = next(iter(data["runs"].values()))
  ax.axhline(run["gp_posterior_nll"], color="k", ls="--", label="exact GP posterior")
  ax.axhline(run["gp_prior_nll"], color="gray", ls=":", label="GP prior")
  ax.set_xlabel("steps (batch of fresh GP tasks each)")
  ax.set_ylabel("held-out NLL per target point (nats)")
  ax.legend()
  fig.tight_layout()
  fig.savefig(path, dpi=100)


def main():
  d = exp_cnp.NPConfig()
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--models", default="cnp,acnp", help=f"comma-separated, of {sorted(exp_cnp.MODELS)}")
  p.add_argument("--seeds", type=int, default=d.seeds)
  p.add_argument("--max-steps", type=int, default=d.max_steps)
  p.add_argument("--eval-every", type=int, default=d.eval_every)
  p.add_argument("--patience", type=int, default=d.patience)
  p.add_argument("--min-delta", type=float, default=d.min_delta)
  p.add_argument("--lr", type=float, default=d.lr)
  p.add_argument("--width", type=int, default=d.width)
  p.add_argument("--batch", type=int, default=d.batch)
  p.add_argument("--test-tasks", type=int, default=d.test_tasks)
  p.add_argument("--out", default="results/cnp_converged", help="writes OUT.json, OUT.md and OUT.png")
  a = p.parse_args()
  models = a.models.split(",")
  bad = [m for m in models if m not in exp_cnp.MODELS]
  if bad:
    p.error(f"--models: unknown model {bad[0]!r} (known: {', '.join(sorted(exp_cnp.MODELS))})")
  try:
    cfgs = {m: exp_cnp.NPConfig(model=m, seeds=a.seeds, max_steps=a.max_steps, eval_every=a.eval_every,
                                patience=a.patience, min_delta=a.min_delta, lr=a.lr, width=a.width, batch=a.batch,
                                test_tasks=a.test_tasks) for m in models}
  except ValueError as e:
    p.error(str(e))
  run = provenance.start()
  runs = {}
  for m, cfg in cfgs.items():
    r = exp_cnp.train(cfg)
    r.pop("params"), r.pop("test")
    runs[m] = r
    print(f"{NAMES[m]}: {gap_line(r)}")
  data = {"runs": runs, "eval_every": a.eval_every, "patience": a.patience, "min_delta": a.min_delta}
  plot(data, a.out + ".png")
  provenance.write(
      run, a.out, data, seeds=list(range(a.seeds)), render=render,
      model="; ".join(f"{NAMES[m]}: width {c.width}, encoder {c.enc_hidden + 1} x {c.width}, Adam {c.lr:g},"
                      f" batch {c.batch} fresh GP tasks, up to {c.max_steps} steps" for m, c in cfgs.items()),
      headline=[(f"GP regression, {NAMES[m]} vs the exact GP posterior, {a.seeds} seeds", gap_line(r))
                for m, r in runs.items()])


if __name__ == "__main__":
  main()
