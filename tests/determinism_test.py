import functools
import os
import subprocess
import sys

import jax
import numpy as np

import jaxequiv
from jaxequiv import bitwise, determinism
from tests import conftest


def test_flags_set_for_this_backend_are_accepted_candidates():
  backend = determinism.probe_backend()
  assert backend in ("cpu", "gpu", "cuda", "rocm", "tpu")
  assert set(conftest.ADDED_XLA_FLAGS) <= set(determinism.CANDIDATE_FLAGS[backend])
  for flag in conftest.ADDED_XLA_FLAGS:
    assert flag in os.environ["XLA_FLAGS"].split()


def test_gpu_flag_probe_rejects_unknown_flags():
  assert determinism.accepted_flags("cpu") == []
  ok, _ = determinism._run_probe("--xla_this_flag_does_not_exist=true")  # pylint: disable=protected-access
  assert not ok


def test_set_xla_flags_refuses_after_jax_started():
  jax.numpy.zeros(1).block_until_ready()
  try:
    determinism.set_xla_flags("cpu")
  except RuntimeError as e:
    assert "before JAX's first computation" in str(e)
  else:
    raise AssertionError("expected RuntimeError")


_RUN = """
import functools, jax, numpy as np, jaxequiv
cfg = jaxequiv.ModelConfig(num_layers=1, width=16, num_heads=2, seq_len=8)
p = jaxequiv.init(jax.random.key(3), cfg)
g = jax.jit(jax.grad(functools.partial(jaxequiv.lm_nll, apply_fn=jaxequiv.make_apply(cfg))))(p, jaxequiv.lm_batch(["ab c.", "d."], 8))
print(''.join(f'{int(x):08x}' for x in np.concatenate([np.asarray(l).ravel() for l in jax.tree.leaves(g)]).view(np.uint32)[:4096]))
"""


def test_same_seed_same_bits_across_processes():
  outs = [subprocess.run([sys.executable, "-c", _RUN], capture_output=True, text=True, check=True).stdout for _ in range(2)]
  assert outs[0] == outs[1] and len(outs[0]) > 1000
