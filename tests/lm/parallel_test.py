"""Tests for jaxequiv.lm.parallel: data parallelism over a 'data' mesh axis.

The multi-device checks run in a subprocess with 8 host CPU devices
(``XLA_FLAGS=--xla_force_host_platform_device_count=8``), since XLA reads its
flags once per process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest

import jaxequiv
from jaxequiv.lm import parallel

# Sharded vs single-device gradients: same maths, but the sums over rows are
# split into per-device partial sums plus an all-reduce, so float32 rounding
# differs. Per leaf, max|g_sharded - g_single| / max|g_single| must be below:
GRAD_RTOL = 1e-5

SCRIPT = textwrap.dedent(r"""
    import json, os, sys
    import jax, jax.numpy as jnp, numpy as np
    import jaxequiv
    from jaxequiv import bitwise
    from jaxequiv.lm import data
    from jaxequiv.lm import parallel
    from jaxequiv.lm import train as tr

    assert jax.device_count() == 8, jax.devices()
    sentences = ["The cat sat on the mat.", "A dog ran.", "We like tea.", "It is cold today.", "She sings.",
                 "Birds fly south.", "The sun is hot.", "He reads books.", "Rain falls.", "I see the sea.",
                 "They play chess.", "Fish swim fast.", "The tree is tall.", "You win.", "Snow is white.",
                 "My cat naps."]
    cfg = jaxequiv.ModelConfig(num_layers=2, width=32, num_heads=2, seq_len=24)
    params = jaxequiv.init(jax.random.key(0), cfg)
    lm = next(data.lm_batches(sentences, 16, 24, seed=3))
    cl = next(data.classification_batches(sentences, 16, 24, mode="paired", seed=3))
    lm_loss, cl_loss = tr.make_loss_fn("lm", cfg), tr.make_loss_fn("classification", cfg)

    mesh = parallel.make_mesh()
    out = {"devices": jax.device_count(), "mesh": dict(mesh.shape)}
    single = jax.jit(jax.grad(lm_loss))(params, lm)
    rep = parallel.replicate(params, mesh)
    lm_s, cl_s = parallel.shard_batch(lm, mesh), parallel.shard_batch(cl, mesh)
    out["tokens_shards"] = sorted({tuple(s.data.shape) for s in lm_s.inputs.addressable_shards})
    g_lm = parallel.jit_grad(lm_loss, mesh)(rep, lm_s)
    g_cl = parallel.jit_grad(cl_loss, mesh)(rep, cl_s)
    out["max_rel_err_sharded_vs_single"] = bitwise.max_relative_error(single, g_lm)
    out["lm_vs_cl_sharded"] = bitwise.compare_bits(g_lm, g_cl).mismatched_elements
    out["lm_vs_cl_single"] = bitwise.compare_bits(single, jax.jit(jax.grad(cl_loss))(params, cl)).mismatched_elements

    # Whole training loop on the mesh, both objectives: bitwise-equal trajectories.
    t_lm = tr.TrainConfig(steps=6, batch_size=8, warmup_steps=1, eval_every=0, checkpoint_every=0, log_every=2)
    t_cl = tr.TrainConfig(**{**t_lm.__dict__, "objective": "classification"})
    a = tr.train(cfg, t_lm, tr.sentence_batches(sentences, cfg, t_lm), progress=False, mesh=mesh)
    b = tr.train(cfg, t_cl, tr.sentence_batches(sentences, cfg, t_cl), progress=False, mesh=mesh)
    c = tr.train(cfg, t_lm, tr.sentence_batches(sentences, cfg, t_lm), progress=False)
    out["train_lm_vs_cl_mesh"] = bitwise.compare_bits(a.state, b.state).mismatched_elements
    out["train_params_sharding"] = str(jax.tree.leaves(a.state.params)[0].sharding.spec)
    out["train_loss_first_last"] = [a.history[0]["loss"], a.history[-1]["loss"]]
    la, lc = np.array([r["loss"] for r in a.history]), np.array([r["loss"] for r in c.history])
    out["train_mesh_vs_single_loss_rel_err"] = float(np.max(np.abs(la - lc) / lc))
    print("RESULT " + json.dumps(out))
""")


@pytest.fixture(scope="module")
def eight_devices():
  env = dict(os.environ)
  env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8").strip()
  env["JAX_PLATFORMS"] = "cpu"
  proc = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-4000:]
  line = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")][-1]
  out = json.loads(line[len("RESULT "):])
  print(out)
  return out


@pytest.mark.slow  # an 8-device subprocess; CI runs the 2-process drill (multiprocess_test)
def test_eight_device_mesh_splits_rows(eight_devices):
  assert eight_devices["devices"] == 8 and eight_devices["mesh"] == {"data": 8}
  assert eight_devices["tokens_shards"] == [[2, 24]]  # 16 rows / 8 devices


@pytest.mark.slow  # an 8-device subprocess; CI runs the 2-process drill (multiprocess_test)
def test_sharded_gradients_match_single_device_within_rounding(eight_devices):
  err = eight_devices["max_rel_err_sharded_vs_single"]
  print(f"max relative error sharded vs single-device gradients: {err:.3g}; tolerance {GRAD_RTOL}")
  assert err <= GRAD_RTOL


@pytest.mark.slow  # an 8-device subprocess; CI runs the 2-process drill (multiprocess_test)
def test_lm_and_classification_gradients_bitwise_equal_on_mesh(eight_devices):
  assert eight_devices["lm_vs_cl_single"] == 0
  assert eight_devices["lm_vs_cl_sharded"] == 0


@pytest.mark.slow  # an 8-device subprocess; CI runs the 2-process drill (multiprocess_test)
def test_train_loop_on_mesh(eight_devices):
  assert eight_devices["train_lm_vs_cl_mesh"] == 0
  assert eight_devices["train_params_sharding"] in ("P()", "PartitionSpec()")  # replicated
  first, last = eight_devices["train_loss_first_last"]
  assert last < first
  # Params are not compared: the key bias (part of qkv.bias) has an exactly-zero true gradient
  # (softmax ignores a shift shared by all keys), so its computed gradient is rounding noise that
  # Adam scales to +-lr steps; that leaf differs by ~10% between any two summation orders. The
  # training losses, which depend on everything else, must agree closely:
  err = eight_devices["train_mesh_vs_single_loss_rel_err"]
  print(f"training losses over 6 steps, mesh vs single device: max relative error {err:.3g} (tolerance 1e-5)")
  assert err <= 1e-5


def test_shard_batch_requires_divisible_rows():
  mesh = parallel.make_mesh(jax.devices()[:1])
  batch = jaxequiv.lm_batch(["Hi.", "Ok."], 8)
  placed = parallel.shard_batch(batch, mesh)
  assert isinstance(placed, jaxequiv.LMBatch)
  np.testing.assert_array_equal(np.asarray(placed.inputs), batch.inputs)

  class FakeMesh:
    shape = {"data": 3}
  with pytest.raises(ValueError, match="R=2 rows, not divisible by the 3 devices"):
    parallel.shard_batch(batch, FakeMesh())
  with pytest.raises(TypeError, match="LMBatch or ClassificationBatch"):
    parallel.batch_sharding((1, 2), mesh)


def test_maybe_initialize_distributed_is_opt_in(monkeypatch):
  monkeypatch.delenv(parallel.DISTRIBUTED_ENV, raising=False)
  assert parallel.maybe_initialize_distributed() is False
  monkeypatch.setenv(parallel.DISTRIBUTED_ENV, "0")
  assert parallel.maybe_initialize_distributed() is False
