"""Writes results/roles.md from results/roles_*.json (run after roles_gan.py, roles_jem.py, roles_reductio.py).

  python scripts/roles_report.py
"""

import datetime
import json
import os
import pathlib
import platform
import subprocess

import numpy as np

R = pathlib.Path(__file__).resolve().parent.parent / "results"
PACGAN = {"ring, pack 1": ("6.3 ± 0.5", "98.2%", "0.45"), "ring, pack 2": ("7.9 ± 0.1", "95.6%", "0.07"),
          "grid, pack 1": ("17.3 ± 0.8", "94.8%", "0.70"), "grid, pack 4": ("24.8 ± 0.2", "93.6%", "0.04")}


def _load(name):
  p = R / name
  return json.loads(p.read_text()) if p.exists() else None


def _ms(xs, fmt="{:.3f}"):
  xs = np.asarray(xs, float)
  return (fmt + " ± " + fmt).format(xs.mean(), xs.std())


def machine():
  cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
  import jax  # pylint: disable=import-outside-toplevel
  return (f"{platform.machine()}, {os.cpu_count()} cores ({cpu}), shared with other jobs; jax {jax.__version__}"
          f" on {jax.default_backend()}; {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC")


def gan_section():
  runs = []
  for f in sorted(R.glob("roles_gan_*.json"), key=lambda f: ("ring" not in f.stem, f.stem.split("_")[3:], f.stem)):
    d = json.loads(f.read_text())
    for k, v in d["runs"].items():
      runs.append((k, dict(v, args=d["args"])))
  if not runs:
    return ["(GAN runs missing)"]
  a0 = runs[0][1]["args"]
  lines = [f"Command per setting: `python scripts/roles_gan.py --seeds S --steps N --gen-width G"
           f" --disc-width D --lr {a0['lr']} [--decay] --settings <ring:1|ring:2|grid:1|grid:4>"
           f" --out results/roles_gan_<setting>[_decay...].json` (S, N, decay, G, D per row below).", "",
           f"Generator MLP 2→G×4→2, discriminator MLP 2·pack→D×3→1 (the same"
           f" `roles.mlp` class, ReLU, no batch norm), Adam lr {a0['lr']} b1 0.5, batch {a0['batch_size']} packed"
           " inputs, fresh data each step; 2,500 samples per seed; mean ± std over seeds. **Reduced runs**: narrower"
           " nets and far fewer steps than PacGAN's (CPU only, shared). PacGAN Table 1 numbers beside ours. True samples"
           " score 98.9% high quality (3 std in 2-D holds 1 − e^−4.5), so PacGAN's 98.2% is near the ceiling.", "",
           "| setting | seeds, steps, G/D width | modes captured | PacGAN T1 | high quality | PacGAN T1 | reverse KL | PacGAN T1 |",
           "|---|---|---|---|---|---|---|---|"]
  for k, run in runs:
    ps, a, ar = run["per_seed"], PACGAN[k], run["args"]
    name = k.replace("pack 1", "GAN").replace("pack 2", "PacGAN2").replace("pack 4", "PacGAN4")
    lines.append(f"| {name} | {ar['seeds']}, {ar['steps']}{' (decay)' if ar.get('decay') else ''},"
                 f" {ar['gen_width']}/{ar['disc_width']}"
                 f" | {_ms([p['modes'] for p in ps], '{:.1f}')} | {a[0]}"
                 f" | {100 * np.mean([p['high_quality'] for p in ps]):.1f}% | {a[1]}"
                 f" | {_ms([p['reverse_kl'] for p in ps])} | {a[2]} |")
  lines += ["", "Reading: on the ring, with a decaying learning rate, packing moves modes captured from 6.7 ± 0.8 to"
            " 8.0 ± 0.0 and reverse KL from 0.52 to 0.003, as in PacGAN's Table 1. On the grid, packing again lowers"
            " reverse KL (0.63 → 0.03) and raises modes captured, but our PacGAN4 samples sit between the modes"
            " (high quality ≤ 3%): with our narrow ReLU discriminator (PacGAN uses 200-unit maxout layers) and short"
            " runs the packed grid does not sharpen. A run at PacGAN's widths (G 400, D 200) did not finish in its"
            " 7-minute slot on this CPU and is not reported."]
  return lines


def _pcts(runs):
  return ", ".join("{:.1f}%".format(100 * r["test_acc"]) for r in runs)


def jem_section():
  d = _load("roles_jem.json")
  if not d:
    return ["(JEM runs missing)"]
  a = d["args"]
  lines = []
  if "exact_jem" in d and "char_lm" in d:
    e, l = d["exact_jem"], d["char_lm"]
    lines += [f"Command: `python scripts/roles_jem.py --seeds {a['seeds']} --exact-steps {a['exact_steps']}"
              f" --lm-steps {a['lm_steps']} --sgld-steps {a['sgld_steps']}`", "",
              "Exact test NLL, bits per image, 4×4 binary digits (359 test images; uniform baseline: 16 bits for x,"
              " 19.32 for (x, y)); each model at its best validation step; mean ± std over seeds:", "",
              "| model | −log2 p(x) | −log2 p(x, y) | accuracy p(y|x) |", "|---|---|---|---|",
              f"| JEM: MLP 16→64→64→10 classifier, exact ML on log p(x,y) (Z over 2^16×10 states) |"
              f" {_ms([r['test_x'] for r in e])} | {_ms([r['test_xy'] for r in e])} | {_ms([r['test_acc'] for r in e])} |",
              f"| char LM: `jaxequiv.model` 2 layers width 64, `lm_nll` on `\"0110…1\" + label + \".\"` |"
              f" {_ms([r['test_x'] for r in l])} | {_ms([r['test_xy'] for r in l])} | {_ms([r['test_acc'] for r in l])} |",
              "", f"Char LM, raw (full 64-way softmax over the whole 18-char string, '.' included):"
              f" {_ms([r['test_raw'] for r in l])} bits per image; the table renormalises each position over the valid"
              " characters (0/1, then a digit), an exact distribution over the same 2^16×10 states as JEM's.", ""]
  if "sgld_jem" in d:
    j, c = d["sgld_jem"], d["sgld_ce"]
    ratio = np.mean([r["sec_per_step"] for r in j]) / np.mean([r["sec_per_step"] for r in c])
    lines += [f"SGLD JEM on continuous 8×8 digits (MLP 64→256→256→10, leaky ReLU; 20 SGLD steps, step size 1, noise"
              f" 0.01, buffer 10,000, reinit 5%; Adam 1e-3, batch 64, {a['sgld_steps']} steps; 359 test images):", "",
              "| training | test accuracy | ECE (15 bins) | seconds per step |", "|---|---|---|---|",
              f"| plain cross-entropy | {_ms([r['test_acc'] for r in c])} | {_ms([r['ece'] for r in c])} |"
              f" {np.mean([r['sec_per_step'] for r in c]) * 1e3:.2f} ms |",
              f"| JEM (CE + SGLD log p(x)) | {_ms([r['test_acc'] for r in j])} | {_ms([r['ece'] for r in j])} |"
              f" {np.mean([r['sec_per_step'] for r in j]) * 1e3:.2f} ms |", "",
              f"Cost per step JEM ÷ CE: **{ratio:.1f}×** (timed on the shared, loaded CPU, so noisy; anchor: ~20 extra forward/backward passes per step; on this"
              " tiny MLP per-step overhead dominates, so the ratio is below 21). Anchor: JEM on CIFAR-10 92.9% accuracy,"
              " IS 8.76 (WRN-28-10; not comparable in scale). Per-seed accuracies: "
              f"{_pcts(j)} (JEM) vs {_pcts(c)} (CE). Samples, one panel per seed:"
              " `results/roles_jem_samples.png`.", ""]
  return lines


def reductio_section():
  files = sorted(R.glob("roles_reductio*.json"))
  if not files:
    return ["(reductio runs missing)"]
  lines = []
  for f in files:
    d = json.loads(f.read_text())
    lines += _reductio_file(d, f.name)
  return lines


def _reductio_file(d, fname):
  a = d["args"]
  lines = [f"Command: `python scripts/roles_reductio.py --seeds {a['seeds']} --steps {a['steps']}"
           f" --batch-size {a['batch_size']} --width {a['width']} --num-layers {a['num_layers']}"
           f" --datasets {a['datasets']} --out results/{fname}`", "",
           f"`jaxequiv.model` transformer ({a['num_layers']} layers, width {a['width']}), Adam 3e-3, {a['steps']} steps of"
           f" {a['batch_size']} sentences; mean ± std over {a['seeds']} seeds (vmapped). **Reduced run** (CPU).", ""]
  for ds, g in d["grids"].items():
    cells = g["cells"]
    label = "label_acc" in next(iter(cells.values()))
    lines += [f"**{ds}** ({g['train_sentences']} train / {g['eval_sentences']} eval sentences):", "",
              "| activation \\ objective | LM | classifier | final-param bits differing, LM vs classifier |",
              "|---|---|---|---|"]
    for act in ("relu", "tanh"):
      row = []
      for obj in ("lm", "classifier"):
        c = cells[f"{act}/{obj}"]
        s = f"NLL {_ms(c['nll'])} nats/char, acc {_ms(c['acc'])}"
        if label:
          s += f"; label acc {_ms(c['label_acc'])}, label NLL {_ms(c['label_nll'])}"
        row.append(s)
      b = g[f"{act}/bits"]
      lines.append(f"| {act} | {row[0]} | {row[1]} | {b['mismatched']} of {b['elements']} |")
    key = "label_acc" if label else "nll"
    diff_obj = max(abs(x - y) for act in ("relu", "tanh")
                   for x, y in zip(cells[f"{act}/lm"][key], cells[f"{act}/classifier"][key]))
    diff_act = abs(np.mean(cells["relu/lm"][key]) - np.mean(cells["tanh/lm"][key]))
    spread = max(np.std(cells["relu/lm"][key]), np.std(cells["tanh/lm"][key]))
    lines += ["", f"Objective axis: max per-seed |LM − classifier| in {key} = {diff_obj:g}."
              f" Activation axis: |mean relu − mean tanh| = {diff_act:.4f}, seed std up to {spread:.4f}"
              f" (ratio {diff_act / max(spread, 1e-12):.1f}).", ""]
  return lines


def sample_png():
  """One panel of 64 buffer samples per SGLD JEM seed, titled with that seed's test accuracy."""
  d = _load("roles_jem.json")
  if not d or "sgld_jem" not in d:
    return
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  runs = d["sgld_jem"]
  fig, axes = plt.subplots(1, len(runs), figsize=(3.2 * len(runs), 3.4))
  for i, (ax, r) in enumerate(zip(np.atleast_1d(axes), runs)):
    x = np.clip(np.array(r["samples"]), -1, 1).reshape(8, 8, 8, 8).transpose(0, 2, 1, 3).reshape(64, 64)
    ax.imshow(x, cmap="gray_r")
    ax.set_axis_off()
    ax.set_title(f"seed {i}: test acc {100 * r['test_acc']:.1f}%", fontsize=9)
  fig.suptitle("JEM persistent SGLD buffer samples (8x8 digits, clipped to [-1, 1])", fontsize=9)
  fig.savefig(R / "roles_jem_samples.png", dpi=100, bbox_inches="tight")


def _checks():
  from jaxequiv.roles import checks  # pylint: disable=import-outside-toplevel
  return [line for _, line in checks.run_checks()]


def main():
  sample_png()
  commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
  text = ["# Same network, different roles: GAN, JEM and the ReLU/tanh reductio", "",
          f"Machine: {machine()}; commit {commit}. No accelerator was available to these runs.", "",
          "## Identities (`jaxequiv.roles.checks.run_checks()`, this run)", "", "```", *_checks(), "```", "",
          "Tests (`tests/roles/`, jit-compiled) add: the LM/packed-classifier gradient bits for every activation in"
          " `jaxequiv.model.ACTIVATIONS` × {float32, bfloat16}; tanh→sigmoid over random depths/widths (hypothesis);"
          " density-ratio convergence over n = 300 … 300,000 (tolerance 30/√n); exact ML gradient = data term − model"
          " expectation; bitwise-equal LM/classifier trajectories in the grid's training loop (slow).", "",
          "## Reductio: {relu, tanh} × {LM, classifier}", "", *reductio_section(),
          "Anchor: activation swaps move ImageNet top-1 by under 1% (Ramachandran et al., 2017).", "",
          "## GAN vs PacGAN: one MLP class in both roles", "", *gan_section(), "",
          "## JEM: a classifier is a generative model of x", "", *jem_section()]
  (R / "roles.md").write_text("\n".join(text) + "\n")
  print("\n".join(text))


if __name__ == "__main__":
  main()
