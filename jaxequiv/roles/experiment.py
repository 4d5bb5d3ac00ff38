"""One roles run: ``ExperimentConfig`` -> ``run`` -> the results dict (the same ``run`` for scripts and notebook 05).

Three experiments, each a call of the module that holds its logic:

* ``"gan"``: GAN vs PacGAN on PacGAN's 2-D ring and grid (``jaxequiv.roles.gan.train_seeds``), one run per
  ``"mixture:pack"`` setting, PacGAN's metrics per seed and their mean and std.
* ``"jem"``: exact JEM and the library's character LM on 4x4 binary digits (``jaxequiv.roles.jem_train``); SGLD
  JEM (the paper's settings and ``jem_sgld.VARIANTS``' stabilised one) vs cross-entropy on 8x8 digits, seeds vmapped
  (``jaxequiv.roles.jem_sgld``); the ``parts`` asked for.
* ``"reductio"``: the {relu, tanh} x {LM, classifier} grid (``jaxequiv.roles.reductio.run_grid``) per data set.

``scripts/roles_{gan,jem,reductio}.py`` are flags -> ``ExperimentConfig`` -> ``run`` -> a results record. Settings
left ``None`` take their experiment's default (``DEFAULTS``), the scripts' defaults.

Examples:
  >>> ExperimentConfig("gan").seeds, ExperimentConfig("reductio").seeds, ExperimentConfig("jem").parts
  (10, 5, ('exact', 'lm', 'sgld'))
  >>> ExperimentConfig("reductio", datasets=["digits"]).datasets   # JSON lists back to tuples
  ('digits',)
  >>> ExperimentConfig("vae")
  Traceback (most recent call last):
  ...
  ValueError: experiment must be one of 'gan', 'jem', 'reductio', got 'vae'
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from jaxequiv import configs
from jaxequiv.roles import gan, jem_sgld, jem_train, mixtures, reductio

# Per-experiment defaults of the settings that several experiments share (None in ExperimentConfig).
DEFAULTS: dict[str, dict[str, Any]] = {
    "gan": {"seeds": 10, "steps": 3000, "batch_size": 100, "parts": ()},
    "jem": {"seeds": 3, "steps": None, "batch_size": None, "parts": ("exact", "lm", "sgld")},
    "reductio": {"seeds": 5, "steps": 300, "batch_size": 16, "parts": ()},
}


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
  """Everything one roles run depends on; JSON-able through ``dataclasses.asdict``.

  Attributes:
    experiment: ``"gan"``, ``"jem"`` or ``"reductio"``.
    seeds: seeds ``0 .. seeds - 1`` (default 10, 3, 5).
    steps: training steps (gan 3000, reductio 300; jem has one per part, below).
    batch_size: gan: packed discriminator inputs per step (100); reductio: sentences per step (16).
    parts: jem only: any of ``"exact"``, ``"lm"``, ``"sgld"`` (default all three).
    gen_width, gen_layers, disc_width, disc_layers: gan: the generator's and discriminator's hidden layers.
    lr, b1: gan: Adam's learning rate and first-moment decay (PacGAN: 1e-4, 0.8).
    disc_pieces: gan: maxout pieces of the discriminator (PacGAN: 5); 0 = a ReLU MLP.
    decay: gan: cosine learning-rate decay over the run.
    settings: gan: ``"ring:PACK"`` or ``"grid:PACK"`` runs.
    num_samples: gan: generated samples scored per seed.
    exact_steps, lm_steps, sgld_steps: jem: steps of exact JEM, of the character LM, of SGLD JEM and of CE.
    sgld_variants: jem: names in ``jem_sgld.VARIANTS`` run by the ``"sgld"`` part.
    acc_floor: jem: a seed whose final test accuracy is below this counts as diverged.
    width, num_layers: reductio: the transformer.
    datasets: reductio: ``"builtin"`` and/or ``"digits"``.
    objectives: reductio: ``"lm"`` and/or ``"classifier"`` (both: the objective axis and its bit check).
  """

  experiment: str = "gan"
  seeds: int | None = None
  steps: int | None = None
  batch_size: int | None = None
  parts: tuple[str, ...] | None = None
  gen_width: int = 400
  gen_layers: int = 4
  disc_width: int = 200
  disc_layers: int = 3
  lr: float = 1e-4
  b1: float = 0.8
  disc_pieces: int = 5
  decay: bool = False
  settings: tuple[str, ...] = ("ring:1", "ring:2", "grid:1", "grid:4")
  num_samples: int = 2500
  exact_steps: int = 400
  lm_steps: int = 1500
  sgld_steps: int = 2000
  sgld_variants: tuple[str, ...] = tuple(jem_sgld.VARIANTS)
  acc_floor: float = 0.5
  width: int = 32
  num_layers: int = 2
  datasets: tuple[str, ...] = ("builtin", "digits")
  objectives: tuple[str, ...] = reductio.OBJECTIVES

  def __post_init__(self):
    configs.fill_experiment_defaults(self, DEFAULTS, tuples=("parts", "settings", "datasets", "sgld_variants", "objectives"))
    allowed = DEFAULTS[self.experiment]["parts"]
    if any(p not in allowed for p in self.parts):
      raise ValueError(f"{self.experiment} parts must be among {allowed}, got {self.parts}")
    if any(v not in jem_sgld.VARIANTS for v in self.sgld_variants):
      raise ValueError(f"sgld_variants must be among {tuple(jem_sgld.VARIANTS)}, got {self.sgld_variants}")
    for s in self.settings:
      name, _, pack = s.partition(":")
      if name not in ("ring", "grid") or not pack.isdigit():
        raise ValueError(f"gan settings are 'ring:PACK' or 'grid:PACK', got {s!r}")


Progress = Callable[[str, Any], None]


def run(config: ExperimentConfig, progress: Progress | None = None) -> dict[str, Any]:
  """Runs ``config.experiment``; returns its JSON-able results (a record's ``data`` without the script's ``args``).

  Args:
    config: the run's settings.
    progress: called as ``progress(key, value)`` as each part of the result is ready (``key`` as in the result:
      a gan run's name, a jem list's name, a reductio data set).

  Returns:
    gan: ``{"runs": {"ring, pack 1": {"per_seed", "mean_std", "samples_seed0"}, ...}}``;
    jem: ``{"sgld_settings", "exact_jem", "char_lm", *sgld_variants}`` (the parts run, per seed);
    reductio: ``{"grids": {dataset: run_grid's dict plus "seconds"}}``.
  """
  report = progress or (lambda key, value: None)
  return {"gan": _gan, "jem": _jem, "reductio": _reductio}[config.experiment](config, report)


def _gan(c: ExperimentConfig, report: Progress) -> dict[str, Any]:
  out: dict[str, Any] = {"runs": {}}
  for setting in c.settings:
    name, pack = setting.split(":")
    mix = mixtures.ring() if name == "ring" else mixtures.grid()
    cfg = gan.GANConfig(gen_hidden=(c.gen_width,) * c.gen_layers, disc_hidden=(c.disc_width,) * c.disc_layers,
                        pack=int(pack), learning_rate=c.lr, b1=c.b1, disc_pieces=c.disc_pieces,
                        batch_size=c.batch_size,
                        decay_steps=c.steps if c.decay else 0)
    per_seed, samples = gan.train_seeds(list(range(c.seeds)), cfg, mix, c.steps, num_samples=c.num_samples)
    summary = {k: (float(np.mean([r[k] for r in per_seed])), float(np.std([r[k] for r in per_seed])))
               for k in per_seed[0]}
    key = f"{name}, pack {pack}"
    out["runs"][key] = {"per_seed": per_seed, "mean_std": summary,
                        "samples_seed0": np.asarray(samples[0][:1000]).round(4).tolist()}
    report(key, out["runs"][key])
  return out


def _jem(c: ExperimentConfig, report: Progress) -> dict[str, Any]:
  out: dict[str, Any] = {"sgld_settings": {v: dataclasses.asdict(jem_sgld.VARIANTS[v]) for v in c.sgld_variants}}
  seeds = range(c.seeds)
  if "exact" in c.parts:
    out["exact_jem"] = [jem_train.train_exact_jem(seed=s, steps=c.exact_steps) for s in seeds]
    report("exact_jem", out["exact_jem"])
  if "lm" in c.parts:
    out["char_lm"] = [jem_train.train_char_lm(seed=s, steps=c.lm_steps) for s in seeds]
    report("char_lm", out["char_lm"])
  if "sgld" in c.parts:
    for v in c.sgld_variants:
      out[v] = jem_sgld.train_seeds(list(seeds), c.sgld_steps, jem_sgld.VARIANTS[v], acc_floor=c.acc_floor)
      report(v, out[v])
  return out


def _reductio(c: ExperimentConfig, report: Progress) -> dict[str, Any]:
  out: dict[str, Any] = {"grids": {}}
  for ds in c.datasets:
    t = time.time()
    out["grids"][ds] = reductio.run_grid(ds, list(range(c.seeds)), c.steps, c.batch_size, c.width, c.num_layers,
                                         objectives=c.objectives)
    out["grids"][ds]["seconds"] = time.time() - t
    report(ds, out["grids"][ds])
  return out
