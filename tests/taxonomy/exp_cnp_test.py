"""exp_cnp: fresh tasks every step, seeds vmapped, the plateau rule, and the script's table."""

import importlib.util
import pathlib

import jax
import numpy as np
import pytest

from jaxequiv.taxonomy import cnp, exp_cnp

ROOT = pathlib.Path(__file__).resolve().parents[2]
TINY = dict(width=16, batch=4, num_ctx=5, num_tgt=6, test_tasks=8, eval_every=5, lr=1e-3)


def test_sample_tasks_are_gp_draws():
  b = cnp.sample_tasks(jax.random.key(3), 20000, 3, 2)
  y = np.asarray(b.y_ctx_BxC, np.float64)
  x = np.asarray(b.x_ctx_BxC, np.float64)
  var = y.var(axis=0)
  cov01 = np.mean(y[:, 0] * y[:, 1] - np.exp(-0.5 * (x[:, 0] - x[:, 1]) ** 2 / 0.4**2))
  se = 4 * np.sqrt(2 / 20000) * 1.01   # four standard errors of a variance estimate
  print(f"variances {var} (want 1.01 +- {se:.3f}); mean y0*y1 - k(x0, x1) = {cov01:.4f}")
  assert np.all(np.abs(var - 1.01) < se) and abs(cov01) < se
  sizes = np.asarray(b.mask_BxC).sum(1)
  assert sizes.min() == 3 and sizes.max() == 3 and bool(np.all(np.asarray(b.mask_BxC)[:, 0]))
  b2 = cnp.sample_tasks(jax.random.key(4), 200, 10, 2)
  s2 = np.asarray(b2.mask_BxC).sum(1)
  assert s2.min() == 3 and s2.max() == 10   # 3..num_ctx context points


def test_chunk_keys_give_every_step_and_seed_its_own_tasks():
  data_keys = jax.random.split(jax.random.key(0), 3)
  a = np.asarray(exp_cnp._chunk_keys(data_keys, 0, 4))
  b = np.asarray(exp_cnp._chunk_keys(data_keys, 2, 4))
  assert a.shape == (4, 3, 2)
  assert len({tuple(k) for k in a.reshape(-1, 2)}) == 12   # no task batch drawn twice
  np.testing.assert_array_equal(a[2:], b[:2])   # step i's key does not depend on the chunking


def test_train_runs_seeds_at_once_and_stops_at_max_steps():
  r = exp_cnp.train(exp_cnp.NPConfig(model="cnp", seeds=2, max_steps=7, **TINY), log=None)   # acnp: the script test
  assert r["steps"] == [0, 5, 7] and r["stopped"] == "max_steps" and r["final_step"] == 7
  assert np.asarray(r["test_nll_SxE"]).shape == (2, 3) and len(set(r["final_test_nll"])) == 2   # two seeds differ
  assert r["gp_posterior_nll"] < r["gp_prior_nll"]
  assert jax.tree.leaves(r["params"])[0].shape[0] == 2


def test_train_stops_at_a_plateau():
  # A learning rate of 0 never improves: the run must stop after `patience` evaluations.
  r = exp_cnp.train(exp_cnp.NPConfig(seeds=1, max_steps=1000, patience=2, **{**TINY, "lr": 0.0}), log=None)
  assert r["stopped"] == "plateau" and r["steps"] == [0, 5, 10]
  assert len(set(np.asarray(r["test_nll_SxE"]).ravel().tolist())) == 1


@pytest.mark.parametrize("kw, culprit", [({"model": "gp"}, "model must be one of"), ({"num_ctx": 2}, "num_ctx"),
                                         ({"eval_every": 0}, "eval_every")])
def test_bad_config_is_one_line(kw, culprit):
  with pytest.raises(ValueError, match=culprit) as e:
    exp_cnp.NPConfig(**kw)
  assert "\n" not in str(e.value)


def test_script_writes_a_record_and_its_table(tmp_path):
  spec = importlib.util.spec_from_file_location("cnp_converged", ROOT / "scripts" / "cnp_converged.py")
  script = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(script)
  out = tmp_path / "cnp"
  import sys
  argv, sys.argv = sys.argv, ["cnp_converged.py", "--max-steps", "6", "--eval-every", "3", "--width", "16",
                              "--seeds", "2", "--test-tasks", "8", "--batch", "4", "--out", str(out)]
  try:
    script.main()
  finally:
    sys.argv = argv
  md = (tmp_path / "cnp.md").read_text()
  assert (tmp_path / "cnp.png").stat().st_size > 0
  assert "| CNP (mean-pooled context) |" in md and "| attentive CNP" in md
  assert "| iterations | 200000 | **6** | **6** |" in md and "| batch (tasks per step) | 64 | **4** | **4** |" in md
  assert "| encoder (layers x width) | 4 x 128 | **4 x 16** | **4 x 16** |" in md


def test_render_marks_only_what_differs_from_the_reference():
  spec = importlib.util.spec_from_file_location("cnp_converged", ROOT / "scripts" / "cnp_converged.py")
  script = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(script)
  run = {"config": {**exp_cnp.NPConfig().__dict__}, "final_step": 200_000, "stopped": "max_steps",
         "final_test_nll": [0.7, 0.72], "gp_posterior_nll": 0.4, "gp_prior_nll": 1.4, "ms_per_step_per_seed": 5.0}
  rec = {"name": "x", "model": "m", "data": {"runs": {"cnp": run}, "eval_every": 1, "patience": 1, "min_delta": 0.1},
         "provenance": {"commit": "0" * 40, "dirty": False, "versions": {k: "0" for k in
                        ("jax", "jaxlib", "flax", "optax", "numpy", "python")}, "date_utc": "d", "wall_s": 1.0,
                        "cores": 2, "cpu": "c", "platform": "p", "backend": "cpu", "devices": ["cpu:0"],
                        "loadavg_start": [1.0], "loadavg_end": [1.0], "command": "c", "seeds": [0, 1],
                        "source_hash": "0" * 64, "sources": {}}}
  md = script.render(rec)
  for row in ("| iterations | 200000 | 200000 |", "| batch (tasks per step) | 64 | 64 |",
              "| encoder (layers x width) | 4 x 128 | 4 x 128 |", "| Adam learning rate | 0.0001 | 0.0001 |"):
    assert row in md, row
  assert "69% of the prior-to-posterior gap closed" in md   # (1.4 - 0.71) / (1.4 - 0.4)
