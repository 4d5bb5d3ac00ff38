"""One taxonomy run: ``ExperimentConfig`` -> ``run`` -> the results dict (the same ``run`` for scripts and notebook 04).

Three experiments, each a call of the ``exp_*`` module that holds its logic:

* ``"regression"``: diabetes k-fold, five conditional-likelihood heads beside ridge (``exp_regression.run``).
* ``"embeddings"``: digits three ways (``exp_embeddings.digits_three_ways``) and a mini search engine over the Zen
  of Python plus builtin-corpus sentences, and over the Zen alone (``exp_embeddings.search_engine``).
* ``"functions"``: a CNP against the exact GP posterior (``exp_functions.cnp_vs_gp``) and expression recovery
  from point sets (``exp_functions.expression_recovery``).

``scripts/taxonomy_{regression,embeddings,functions}.py`` are flags -> ``ExperimentConfig`` -> ``run`` -> a results
record. Settings left ``None`` take their experiment's default (``DEFAULTS``), the scripts' defaults.

Every experiment runs ``num_seeds`` seeds (``seed`` .. ``seed + num_seeds - 1``; each draws the data split, the
initialisations and the sampled tasks). Regression reports (mean, std) over seeds itself; the others run once per
seed and ``over_seeds`` turns every number into ``[mean, std]`` over seeds, keeping the per-seed results.

Examples:
  >>> ExperimentConfig("regression").steps, ExperimentConfig("embeddings").steps, ExperimentConfig("functions").parts
  (800, 1500, ('cnp', 'expressions'))
  >>> ExperimentConfig("embeddings", digit_models=["clip"]).digit_models   # JSON lists back to tuples
  ('clip',)
  >>> ExperimentConfig("regression", seed=3, num_seeds=2).seeds
  (3, 4)
  >>> over_seeds([{"acc": 0.5, "n": 10, "name": "a"}, {"acc": 0.7, "n": 10, "name": "a"}])["acc"]
  [0.6, 0.09999999999999998]
  >>> ExperimentConfig("clustering")
  Traceback (most recent call last):
  ...
  ValueError: experiment must be one of 'regression', 'embeddings', 'functions', got 'clustering'
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from jaxequiv import configs
from jaxequiv.lm import corpus
from jaxequiv.taxonomy import exp_embeddings, exp_functions, exp_regression

# Per-experiment defaults of the settings that several experiments share (None in ExperimentConfig).
DEFAULTS: dict[str, dict[str, Any]] = {
    "regression": {"steps": 800, "parts": ()},
    "embeddings": {"steps": 1500, "parts": ("digits", "search")},
    "functions": {"steps": None, "parts": ("cnp", "expressions")},
}


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
  """Everything one taxonomy run depends on; JSON-able through ``dataclasses.asdict``.

  Attributes:
    experiment: ``"regression"``, ``"embeddings"`` or ``"functions"``.
    seed: seeds the data split, the parameters and the sampled tasks.
    steps: training steps of each model (regression 800, an upper bound under early stopping; embeddings 1500;
      functions has one per part, below).
    parts: embeddings: ``"digits"`` and/or ``"search"``; functions: ``"cnp"`` and/or ``"expressions"``
      (default both).
    folds, lr: regression: cross-validation folds, AdamW's learning rate.
    docs: embeddings: Zen lines plus builtin-corpus sentences (6 to 25 words), this many in all.
    digit_models: embeddings: any of ``"10way"``, ``"clip"``, ``"captioner"``.
    cnp_steps, cnp_tasks, cnp_test_tasks: functions: CNP steps, GP draws per step, held-out GP draws.
    expr_steps, max_len: functions: expression-recovery steps, longest expression (symbols).
    num_seeds: seeds run, ``seed`` .. ``seed + num_seeds - 1``.
    decoder_width, decoder_layers: every string head's transformer (``taxonomy.decoder``); width ``None``: each
      experiment's default (32; 64 for expressions).
  """

  experiment: str = "regression"
  seed: int = 0
  steps: int | None = None
  parts: tuple[str, ...] | None = None
  folds: int = 5
  lr: float = 1e-3
  docs: int = 100
  digit_models: tuple[str, ...] = ("10way", "clip", "captioner")
  cnp_steps: int = 10000
  cnp_tasks: int = 32
  cnp_test_tasks: int = 256
  expr_steps: int = 2000
  max_len: int = 4
  num_seeds: int = 5
  decoder_width: int | None = None
  decoder_layers: int = 2

  def __post_init__(self):
    configs.fill_experiment_defaults(self, DEFAULTS, tuples=("parts", "digit_models"))
    allowed = DEFAULTS[self.experiment]["parts"]
    if any(p not in allowed for p in self.parts):
      raise ValueError(f"{self.experiment} parts must be among {allowed}, got {self.parts}")
    if not (isinstance(self.num_seeds, int) and self.num_seeds >= 1):
      raise ValueError(f"num_seeds must be an int >= 1, got {self.num_seeds!r}")

  @property
  def seeds(self) -> tuple[int, ...]:
    return tuple(range(self.seed, self.seed + self.num_seeds))


def over_seeds(per_seed: list[Any]) -> Any:
  """One result from per-seed results of the same structure: each number -> ``[mean, std]`` (population std).

  Dicts recurse; anything else (strings, lists of examples) is taken from the first seed.
  """
  first = per_seed[0]
  if isinstance(first, dict):
    return {k: over_seeds([r[k] for r in per_seed]) for k in first}
  if isinstance(first, (int, float)) and not isinstance(first, bool):
    v = np.asarray(per_seed, np.float64)
    return [float(np.mean(v)), float(np.std(v))]
  return first


def run(config: ExperimentConfig) -> dict[str, Any]:
  """Runs ``config.experiment`` over ``config.seeds``; returns its results (a record's ``data``) and ``"arrays"``.

  Returns:
    regression: ``exp_regression.run``'s ``{"heads", "setup"}``, (mean, std) over seeds;
    embeddings: ``{"digits", "search", "search_zen_only"}`` (the parts run), each number ``[mean, std]`` over seeds,
    plus ``"per_seed"`` (the same dicts, one per seed);
    functions: ``{"cnp", "expressions"}`` likewise;
    ``arrays`` (not JSON: a record leaves it out) holds the first seed's ``"clip"`` test image and caption
    embeddings and test labels (when ``"clip"`` was trained), or its CNP's ``"cnp_params"`` and held-out
    ``"cnp_test"`` tasks.
  """
  c = config
  dec = {"decoder_layers": c.decoder_layers, **({"decoder_width": c.decoder_width} if c.decoder_width else {})}
  if c.experiment == "regression":
    return exp_regression.run(folds=c.folds, steps=c.steps, seeds=c.seeds, lr=c.lr, **dec)
  per_seed: list[dict[str, Any]] = []
  arrays: dict[str, Any] = {}
  for seed in c.seeds:
    out: dict[str, Any] = {}
    if "digits" in c.parts:
      out["digits"] = exp_embeddings.digits_three_ways(steps=c.steps, seed=seed, models=c.digit_models,
                                                       return_arrays=True, **dec)
      if "clip_arrays" in out["digits"]:
        arrays.setdefault("clip", out["digits"]["clip_arrays"])
        del out["digits"]["clip_arrays"]
    if "search" in c.parts:
      builtin = [s for s in corpus.load_sentences("builtin") if 6 <= len(s.split()) <= 25]
      zen = exp_embeddings.zen_lines()
      docs = zen + builtin[:max(0, c.docs - len(zen))]
      out["search"] = exp_embeddings.search_engine(docs, steps=c.steps, seed=seed, **dec)
      out["search_zen_only"] = exp_embeddings.search_engine(zen, steps=c.steps, seed=seed, **dec)
    if "cnp" in c.parts:
      out["cnp"] = exp_functions.cnp_vs_gp(steps=c.cnp_steps, tasks_per_step=c.cnp_tasks,
                                           test_tasks=c.cnp_test_tasks, seed=seed)
      params, test = out["cnp"].pop("params"), out["cnp"].pop("test")
      arrays.setdefault("cnp_params", params)
      arrays.setdefault("cnp_test", test)
    if "expressions" in c.parts:
      out["expressions"] = exp_functions.expression_recovery(max_len=c.max_len, steps=c.expr_steps, seed=seed, **dec)
    per_seed.append(out)
  return {**over_seeds(per_seed), "per_seed": per_seed, "seeds": list(c.seeds), "arrays": arrays}
