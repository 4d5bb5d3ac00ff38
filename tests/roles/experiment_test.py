"""roles.experiment: the scripts' defaults, one-line errors, a tiny run of each experiment through run."""

import dataclasses
import json

import numpy as np
import pytest

from jaxequiv.roles import experiment, gan, mixtures
from jaxequiv.roles.experiment import ExperimentConfig


def test_defaults_per_experiment_and_json_round_trip():
  g = ExperimentConfig("gan")
  assert (g.seeds, g.steps, g.batch_size, g.settings) == (10, 3000, 100, ("ring:1", "ring:2", "grid:1", "grid:4"))
  assert (g.gen_width, g.disc_width, g.lr, g.b1, g.disc_pieces) == (400, 200, 1e-4, 0.8, 5)  # PacGAN's official code
  assert (ExperimentConfig("reductio").seeds, ExperimentConfig("reductio").steps) == (5, 300)
  assert ExperimentConfig("jem").seeds == 3 and ExperimentConfig("jem").parts == ("exact", "lm", "sgld")
  for name in experiment.DEFAULTS:
    c = ExperimentConfig(name, seeds=2)
    assert ExperimentConfig(**json.loads(json.dumps(dataclasses.asdict(c)))) == c


@pytest.mark.parametrize("kw, culprit", [({"experiment": "vae"}, "'vae'"),
                                         ({"experiment": "jem", "parts": ["mcmc"]}, "mcmc"),
                                         ({"settings": ["ring2"]}, "'ring2'"),
                                         ({"experiment": "jem", "sgld_variants": ["sgld_fast"]}, "sgld_fast")])
def test_bad_config_is_one_line_naming_it(kw, culprit):
  with pytest.raises(ValueError, match=culprit) as e:
    ExperimentConfig(**kw)
  assert "\n" not in str(e.value)


@pytest.mark.slow
def test_gan_run_is_train_seeds_per_setting():
  c = ExperimentConfig("gan", seeds=2, steps=3, gen_width=8, gen_layers=2, disc_width=8, disc_layers=1, lr=1e-3,
                       batch_size=16, settings=("grid:2",), num_samples=200)
  seen = []
  r = experiment.run(c, progress=lambda key, value: seen.append(key))
  assert seen == ["grid, pack 2"] and list(r) == ["runs"]
  got = r["runs"]["grid, pack 2"]
  cfg = gan.GANConfig(gen_hidden=(8, 8), disc_hidden=(8,), pack=2, learning_rate=1e-3, b1=c.b1,
                      disc_pieces=c.disc_pieces, batch_size=16)
  per_seed, samples = gan.train_seeds([0, 1], cfg, mixtures.grid(), 3, num_samples=200)
  bits = lambda rows: np.asarray([[r[k] for k in sorted(r)] for r in rows], np.float64).view(np.uint64)  # noqa: E731
  assert [sorted(r) for r in got["per_seed"]] == [sorted(r) for r in per_seed]
  assert np.array_equal(bits(got["per_seed"]), bits(per_seed))   # NaN-safe: a reverse KL may be NaN this early
  expected = np.asarray(samples[0][:1000]).round(4)
  assert np.array_equal(np.asarray(got["samples_seed0"], np.float32).view(np.uint32), expected.view(np.uint32))
  hq = [s["high_quality"] for s in per_seed]
  assert got["mean_std"]["high_quality"] == (float(np.mean(hq)), float(np.std(hq)))


def test_jem_exact_part_only():
  r = experiment.run(ExperimentConfig("jem", seeds=1, parts=("exact",), exact_steps=2))
  assert list(r) == ["sgld_settings", "exact_jem"] and len(r["exact_jem"]) == 1
  assert r["sgld_settings"]["sgld_jem"]["sgld_steps"] == 20 and 0.0 <= r["exact_jem"][0]["test_acc"] <= 1.0


@pytest.mark.slow
def test_reductio_tiny_grid():
  r = experiment.run(ExperimentConfig("reductio", seeds=1, steps=2, batch_size=4, width=8, num_layers=1,
                                      datasets=("digits",)))
  g = r["grids"]["digits"]
  assert sorted(g["cells"]) == ["relu/classifier", "relu/lm", "tanh/classifier", "tanh/lm"] and g["seconds"] > 0
  assert g["relu/bits"]["mismatched"] == 0 and g["relu/bits"]["elements"] > 0   # the objective axis: bitwise equal
