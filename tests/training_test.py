"""Tests for jaxequiv.training: the one train step and optimizer the LM and the image heads share."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxequiv
from jaxequiv import training
from jaxequiv.bitwise import assert_bitwise_equal, compare_bits
from jaxequiv.labels import train as labels_train
from jaxequiv.lm import train as tr

PARAMS = {"w": jnp.linspace(-1.0, 1.0, 12).reshape(3, 4), "b": jnp.zeros(4)}


def _loss(params, batch):
  x, y = batch
  return jnp.mean((x @ params["w"] + params["b"] - y) ** 2)


def _batch(k):
  rng = np.random.default_rng(k)
  return rng.normal(size=(8, 3)).astype(np.float32), rng.normal(size=(8, 4)).astype(np.float32)


def test_jitted_step_donates_the_state_and_the_lm_loop_step_does_too():
  opt = training.make_optimizer(training.OptimizerConfig(steps=5, warmup_steps=0))
  step = training.jit_train_step(training.make_train_step(_loss, opt))
  state = training.init_train_state(jax.tree.map(jnp.array, PARAMS), opt)
  new, metrics = step(state, _batch(0))
  assert int(new.step) == 1 and set(metrics) == {"loss", "grad_norm"}
  assert all(x.is_deleted() for x in jax.tree.leaves(state.params))  # donated: updated in place
  keep = training.jit_train_step(training.make_train_step(_loss, opt), donate=False)
  again, _ = keep(new, _batch(1))
  assert not any(x.is_deleted() for x in jax.tree.leaves(new.params))
  # The LM loop's compiled step donates as well.
  mcfg = jaxequiv.ModelConfig(num_layers=1, width=16, num_heads=2, seq_len=8)
  tcfg = tr.TrainConfig(steps=4, batch_size=2, warmup_steps=1)
  s = tr.init_state(jax.random.key(0), mcfg, tcfg)
  tr._jitted_train_step(mcfg, tcfg)(s, jaxequiv.lm_batch(["Hi.", "Ok go."], 8))
  assert all(x.is_deleted() for x in jax.tree.leaves(s.params))


def test_donated_and_undonated_steps_agree_bitwise():
  opt = training.make_optimizer(training.OptimizerConfig(steps=5, warmup_steps=1, clip_norm=0.5))
  fn = training.make_train_step(_loss, opt)
  a = b = training.init_train_state(PARAMS, opt)
  plain, donated = jax.jit(fn), training.jit_train_step(fn)
  for k in range(3):
    a, ma = plain(a, _batch(k))
    b, mb = donated(jax.tree.map(jnp.copy, b), _batch(k))
    assert_bitwise_equal((a, ma), (b, mb))


def test_heads_constant_optimizer_is_adam_bit_for_bit():
  """The image heads moved from optax.adam(lr) to the shared AdamW chain: same updates, to the bit."""
  shared, adam = training.make_optimizer(labels_train.optimizer_config(3e-3)), optax.adam(3e-3)
  fs, fa = (jax.jit(training.make_train_step(_loss, o)) for o in (shared, adam))
  s, a = training.init_train_state(PARAMS, shared), training.init_train_state(PARAMS, adam)
  for k in range(5):
    s, _ = fs(s, _batch(k))
    a, _ = fa(a, _batch(k))
  report = compare_bits(s.params, a.params)
  print(report)
  assert report.equal
  assert not compare_bits(s.params, PARAMS).equal  # and they moved


@pytest.mark.parametrize("field, value, message", [
    ("learning_rate", float("nan"), "learning_rate must be a finite number"),
    ("clip_norm", -1.0, r"clip_norm must be >= 0"),
    ("b1", 1.5, r"b1 must be in \[0, 1\)"),
    ("b2", -0.1, r"b2 must be in \[0, 1\)"),
    ("end_lr_fraction", 2.0, r"end_lr_fraction must be in \[0, 1\]"),
    ("eps", 0.0, "eps must be > 0"),
    ("steps", 0, r"steps must be (an int )?>= 1"),
])
def test_bad_optimizer_settings_are_one_line_errors_in_both_configs(field, value, message):
  for cls in (training.OptimizerConfig, tr.TrainConfig):
    with pytest.raises(ValueError, match=message) as e:
      cls(**{field: value})
    assert "\n" not in str(e.value)
  training.OptimizerConfig(clip_norm=None)  # None and 0 mean no clipping
  tr.TrainConfig(clip_norm=0)


def test_check_finite_names_the_first_bad_step():
  training.check_finite(1, [{"loss": 1.0, "grad_norm": 2.0}])  # finite: nothing raised
  with pytest.raises(training.NonFiniteLossError, match=r"^grad_norm became inf at step 11; training stopped$"):
    training.check_finite(10, [{"loss": 1.0, "grad_norm": 1.0}, {"loss": 1.0, "grad_norm": np.inf},
                               {"loss": np.nan, "grad_norm": 1.0}])


def _stack(batches):
  return jax.tree.map(lambda *xs: np.stack(xs), *batches)


def test_k_steps_per_call_give_the_bits_of_k_single_dispatches():
  """One ``lax.scan`` of K steps == K jitted single steps, state and metrics, raw bits (AdamW + clipping + warm-up)."""
  opt = training.make_optimizer(training.OptimizerConfig(steps=8, warmup_steps=2, clip_norm=0.5))
  fn = training.make_train_step(_loss, opt)
  single, scanned = training.jit_train_step(fn), training.jit_train_step(fn, steps_per_call=4)
  a = training.init_train_state(jax.tree.map(jnp.copy, PARAMS), opt)
  b = training.init_train_state(jax.tree.map(jnp.copy, PARAMS), opt)
  per_step = []
  for k in range(8):
    a, m = single(a, _batch(k))
    per_step.append(m)
  metrics = []
  for k in (0, 4):
    b, m = scanned(b, _stack([_batch(k + i) for i in range(4)]))
    metrics.append(m)
  print(compare_bits(a, b))
  assert int(b.step) == 8 and metrics[0]["loss"].shape == (4,)
  assert_bitwise_equal(a, b)
  assert_bitwise_equal(_stack(per_step), jax.tree.map(lambda *xs: np.concatenate(xs), *metrics))
  assert not compare_bits(a.params, PARAMS).equal  # and they moved


def test_full_batch_scan_takes_no_batch_and_has_aux_returns_the_extra_outputs():
  x, y = _batch(0)
  loss = lambda p, _: (_loss(p, (x, y)), {"b0": p["b"][0]})
  opt = optax.sgd(0.1)
  step = training.make_train_step(loss, opt, has_aux=True)
  run = training.jit_train_step(step, steps_per_call=3)
  state, m = run(training.init_train_state(jax.tree.map(jnp.copy, PARAMS), opt), None)
  ref = training.init_train_state(jax.tree.map(jnp.copy, PARAMS), opt)
  aux = []
  for _ in range(3):
    ref, r = jax.jit(step)(ref, None)
    aux.append(r["aux"]["b0"])
  assert int(state.step) == 3 and m["aux"]["b0"].shape == (3,) and float(m["aux"]["b0"][0]) == 0.0
  assert_bitwise_equal((ref, np.stack(aux)), (state, m["aux"]["b0"]))


def test_vmapped_runs_share_counters_and_match_vmap_of_whole_runs_bitwise():
  opt = optax.adam(1e-2)
  fn = training.make_train_step(_loss, opt)
  params_S = jax.tree.map(lambda p: jnp.stack([p, p + 0.5]), PARAMS)
  batches_KxS = _stack([_stack([_batch(10 * s + k) for s in range(2)]) for k in range(3)])
  state = training.init_train_state(jax.tree.map(jnp.copy, params_S), opt)  # a copy: the state is donated
  run = training.jit_train_step(training.vmap_train_step(fn, state), steps_per_call=3)
  got, m = run(state, batches_KxS)

  @jax.jit
  @jax.vmap
  def whole_run(params, batches_K):  # the pre-driver style: jax.vmap of init + scan
    return jax.lax.scan(fn, training.init_train_state(params, opt), batches_K)

  want, wm = whole_run(params_S, jax.tree.map(lambda a: np.swapaxes(a, 0, 1), batches_KxS))
  assert got.step.shape == () and m["loss"].shape == (3, 2)
  assert_bitwise_equal(got.params, want.params)
  assert_bitwise_equal(m["loss"], wm["loss"].T)


@pytest.mark.parametrize("k, batch, message", [
    (0, None, r"^steps_per_call must be an int >= 1, got 0$"),
    (True, None, r"^steps_per_call must be an int >= 1, got True$"),
    (3, (np.zeros((3, 8, 3)), np.zeros((2, 8, 4))), r"batch\[1\] has shape \(2, 8, 4\)"),
])
def test_bad_steps_per_call_is_a_one_line_error(k, batch, message):
  opt = optax.sgd(0.1)
  with pytest.raises(ValueError, match=message) as e:
    training.jit_train_step(training.make_train_step(_loss, opt), steps_per_call=k)(
        training.init_train_state(jax.tree.map(jnp.copy, PARAMS), opt), batch)
  assert "\n" not in str(e.value)
