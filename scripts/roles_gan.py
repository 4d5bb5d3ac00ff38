"""GAN vs PacGAN on PacGAN's 2-D ring and grid: one MLP class as generator and discriminator.

  python scripts/roles_gan.py --seeds 10 --steps 3000 --decay --settings ring:2 --out results/roles_gan_ring2_decay

Metrics are PacGAN's (``jaxequiv.roles.mixtures.metrics``): modes captured and reverse KL over the high-quality samples.
"""

import argparse

from jaxequiv import provenance
from jaxequiv.roles import experiment

NAMES = {"1": "GAN", "2": "PacGAN2", "4": "PacGAN4"}


def model(args: dict) -> str:
  """The architecture and budget of one roles_gan record's models, from its recorded arguments."""
  return (f"generator ReLU MLP 2-{args['gen_width']}x4-2, discriminator ReLU MLP (2·pack)-{args['disc_width']}x3-1"
          f" (the same roles.mlp class; no maxout, no batch norm); Adam lr {args['lr']} (b1 0.5),"
          f" {'cosine decay, ' if args.get('decay') else ''}batch {args['batch_size']}, {args['steps']} steps,"
          f" {args['seeds']} seeds; metrics on 2,500 samples per seed")


def summary_line(name: str, run: dict) -> str:
  s = run["mean_std"]
  return (f"modes {s['modes'][0]:.1f} ± {s['modes'][1]:.1f}, high quality {100 * s['high_quality'][0]:.1f}%,"
          f" reverse KL {s['reverse_kl'][0]:.3f} ± {s['reverse_kl'][1]:.3f}")


def main():
  d = experiment.ExperimentConfig("gan")
  p = argparse.ArgumentParser()
  p.add_argument("--seeds", type=int, default=d.seeds)
  p.add_argument("--steps", type=int, default=d.steps)
  p.add_argument("--gen-width", type=int, default=d.gen_width)
  p.add_argument("--disc-width", type=int, default=d.disc_width)
  p.add_argument("--lr", type=float, default=d.lr)
  p.add_argument("--batch-size", type=int, default=d.batch_size)
  p.add_argument("--decay", action="store_true", help="cosine learning-rate decay over the run")
  p.add_argument("--settings", default=",".join(d.settings))
  p.add_argument("--out", default="results/roles_gan")
  a = p.parse_args()
  run = provenance.start()
  config = experiment.ExperimentConfig("gan", seeds=a.seeds, steps=a.steps, gen_width=a.gen_width,
                                       disc_width=a.disc_width, lr=a.lr, batch_size=a.batch_size, decay=a.decay,
                                       settings=tuple(a.settings.split(",")))
  show = lambda key, r: print(f"{key.replace(', pack ', ' pack=')}: {summary_line(key, r)}", flush=True)  # noqa: E731
  out = {"args": vars(a), **experiment.run(config, progress=show)}
  provenance.write(run, a.out, out, model=model(vars(a)), seeds=list(range(a.seeds)),
                   headline=[(f"{k.split(',')[0]} {NAMES[k[-1]]}, {a.seeds} seeds, {a.steps} steps",
                              summary_line(k, r)) for k, r in out["runs"].items()])


if __name__ == "__main__":
  main()
