"""GAN vs PacGAN on PacGAN's 2-D ring and grid: MLPs as generator and discriminator.

  python scripts/roles_gan.py --seeds 10 --steps 900 --settings ring:1,ring:2 --out results/roles_gan_ring_paper
  python scripts/roles_gan.py --seeds 10 --steps 900 --settings grid:1,grid:4 --out results/roles_gan_grid_paper

The defaults are PacGAN's setup as its official code has it
(``synthetic_data_experiments/2DGrid_GAN&PacGAN/config.py``): generator 4 x 400 ReLU, discriminator 3 x 200 maxout with 5 pieces, Adam lr 1e-4 and beta1 0.8, batch 100; what still
differs (iterations; ``UNMATCHED``) is a column of ``scripts/roles_report.py``'s table.
Metrics are PacGAN's (``jaxequiv.roles.mixtures.metrics``): modes captured and reverse KL over the high-quality samples.
"""

import argparse

from jaxequiv import provenance
from jaxequiv.roles import experiment

NAMES = {"1": "GAN", "2": "PacGAN2", "3": "PacGAN3", "4": "PacGAN4"}
# Settings of records made before their flag existed (what the code then ran).
LEGACY = {"b1": 0.5, "disc_pieces": 0}
# What the code does not match of PacGAN's setup, whatever the flags.
UNMATCHED = ("no batch norm in the generator (PacGAN: batch norm before each ReLU)",
             "LeCun-normal initialisation (PacGAN: N(0, 0.02^2) weights)")


def setting(args: dict, name: str):
  """A record's setting, or what the code ran before the flag existed."""
  return args.get(name, LEGACY.get(name))


def model(args: dict) -> str:
  """The architecture and budget of one roles_gan record's models, from its recorded arguments."""
  pieces = setting(args, "disc_pieces")
  disc = f"maxout MLP ({pieces} pieces)" if pieces else "ReLU MLP"
  return (f"generator ReLU MLP 2-{args['gen_width']}x4-2 (no batch norm), discriminator {disc}"
          f" (2·pack)-{args['disc_width']}x3-1; LeCun-normal init; Adam lr {args['lr']} (b1 {setting(args, 'b1')}),"
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
  p.add_argument("--b1", type=float, default=d.b1, help="Adam's beta1")
  p.add_argument("--disc-pieces", type=int, default=d.disc_pieces, help="discriminator maxout pieces (0: ReLU MLP)")
  p.add_argument("--batch-size", type=int, default=d.batch_size)
  p.add_argument("--decay", action="store_true", help="cosine learning-rate decay over the run")
  p.add_argument("--settings", default=",".join(d.settings))
  p.add_argument("--out", default="results/roles_gan")
  a = p.parse_args()
  run = provenance.start()
  config = experiment.ExperimentConfig("gan", seeds=a.seeds, steps=a.steps, gen_width=a.gen_width,
                                       disc_width=a.disc_width, lr=a.lr, b1=a.b1, disc_pieces=a.disc_pieces,
                                       batch_size=a.batch_size, decay=a.decay,
                                       settings=tuple(a.settings.split(",")))
  show = lambda key, r: print(f"{key.replace(', pack ', ' pack=')}: {summary_line(key, r)}", flush=True)  # noqa: E731
  out = {"args": vars(a), **experiment.run(config, progress=show)}
  provenance.write(run, a.out, out, model=model(vars(a)), seeds=list(range(a.seeds)),
                   headline=[(f"{k.split(',')[0]} {NAMES[k[-1]]}, {a.seeds} seeds, {a.steps} steps",
                              summary_line(k, r)) for k, r in out["runs"].items()])


if __name__ == "__main__":
  main()
