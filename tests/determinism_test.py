import functools
import os
import subprocess
import sys
import warnings

import jax
import numpy as np
import pytest

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


def test_set_xla_flags_refuses_after_jax_started_without_them(monkeypatch):
  jax.numpy.zeros(1).block_until_ready()
  # Nothing left to do on a backend that has (or needs) no flags: re-running a notebook's first cell is fine.
  monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
  monkeypatch.setenv("XLA_FLAGS", "--xla_gpu_deterministic_ops=true")
  assert determinism.set_xla_flags() == []
  monkeypatch.setenv("XLA_FLAGS", "")
  with pytest.raises(RuntimeError, match="before JAX's first computation"):
    determinism.set_xla_flags()
  monkeypatch.undo()
  assert jax.default_backend() != "cpu" or determinism.set_xla_flags() == []


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


# --- warn once where JAX already runs on a GPU without the flags (the backend is faked) ---


@pytest.fixture
def fresh_warnings(monkeypatch):
  monkeypatch.setattr(determinism, "_WARNED", set())
  monkeypatch.setattr(determinism, "_backends_initialised", lambda: True)


def test_warn_if_unset_warns_once_on_a_gpu_without_flags(fresh_warnings, monkeypatch):
  monkeypatch.setenv("XLA_FLAGS", "--xla_some_other_flag=1")
  with pytest.warns(determinism.DeterminismWarning, match=r"JAX started on gpu without the determinism flags") as w:
    assert determinism.warn_if_unset("gpu")
  message = str(w[0].message)
  print(message)
  assert "set_xla_flags()" in message and "--xla_gpu_deterministic_ops=true" in message
  with warnings.catch_warnings():
    warnings.simplefilter("error")  # a second warning would raise
    assert not determinism.warn_if_unset("gpu")


@pytest.mark.parametrize("backend,flags", [
    ("gpu", "--xla_gpu_deterministic_ops=true"),
    ("cuda", "--a=1 --xla_gpu_exclude_nondeterministic_ops=true"),
    ("cpu", ""),
    ("tpu", ""),
])
def test_warn_if_unset_is_silent_when_flags_are_set_or_not_needed(fresh_warnings, monkeypatch, backend, flags):
  monkeypatch.setenv("XLA_FLAGS", flags)
  with warnings.catch_warnings():
    warnings.simplefilter("error")
    assert not determinism.warn_if_unset(backend)


def test_warn_if_unset_asks_jax_only_once_it_has_started(monkeypatch):
  monkeypatch.setattr(determinism, "_WARNED", set())
  monkeypatch.setattr(determinism, "_backends_initialised", lambda: False)
  assert not determinism.warn_if_unset()  # not started: the flags can still be set, nothing to warn about
  monkeypatch.setattr(determinism, "_backends_initialised", lambda: True)
  monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
  monkeypatch.setenv("XLA_FLAGS", "")
  with pytest.warns(determinism.DeterminismWarning):
    assert determinism.warn_if_unset()


def test_ensure_xla_flags_sets_before_start_and_warns_after(monkeypatch):
  calls = []
  monkeypatch.setattr(determinism, "set_xla_flags", lambda: calls.append("set") or ["--f"])
  monkeypatch.setattr(determinism, "warn_if_unset", lambda: calls.append("warn") or True)
  monkeypatch.setattr(determinism, "_backends_initialised", lambda: False)
  assert determinism.ensure_xla_flags() == ["--f"]
  monkeypatch.setattr(determinism, "_backends_initialised", lambda: True)
  assert determinism.ensure_xla_flags() == []
  assert calls == ["set", "warn"]


_CLI_FLAGS = """
import os, sys
from jaxequiv import cli, determinism
from jaxequiv.cli import train
seen = []
determinism.set_xla_flags = lambda backend=None: seen.append(determinism._backends_initialised()) or []
sys.exit(cli.main(["train"] + sys.argv[1:]) * 10 + len(seen) + 100 * any(seen))
"""


@pytest.mark.parametrize("extra,want", [([], 21), (["--no-determinism-flags"], 20)])
def test_train_cli_sets_flags_before_jax_starts(tmp_path, extra, want):
  # Flags are set once, JAX not yet started, before the data is read; the empty --data file then exits 2.
  empty = tmp_path / "empty.txt"
  empty.write_text("")
  proc = subprocess.run([sys.executable, "-c", _CLI_FLAGS, "--data", str(empty), "--out", str(tmp_path / "r"), *extra],
                        capture_output=True, text=True)
  print(proc.stderr)
  assert proc.returncode == want, proc.stderr
  assert "gave no sentences" in proc.stderr and "Traceback" not in proc.stderr
