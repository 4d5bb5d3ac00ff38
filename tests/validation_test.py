"""Bad batches: a one-line error naming the culprit outside jit, checkify under jit, never a silently wrong loss."""

import functools

import jax
import numpy as np
import pytest
from jax.experimental import checkify

import jaxequiv
from jaxequiv import validation

T = 8
CFG = jaxequiv.ModelConfig(num_layers=1, width=16, num_heads=2, seq_len=T)
APPLY = jaxequiv.make_apply(CFG)
_params = functools.cache(lambda: jaxequiv.init(jax.random.key(0), CFG))  # on first use, not at import
# One sentence per row whatever lm_batch's packing default: rows built one at a time.
LM = jaxequiv.LMBatch(*(np.concatenate(x) for x in zip(jaxequiv.lm_batch(["Hi."], T), jaxequiv.lm_batch(["Ok yes."], T))))
CLF = jaxequiv.unpacked(jaxequiv.prefix_examples(["Hi.", "Ok yes."]), T)


def _set(a, index, value):
  a = np.array(a)
  a[index] = value
  return a


BAD_LM = {
    "target -1": (lambda b: b._replace(targets=_set(b.targets, (0, 1), -1)), r"targets\[0, 1\] = -1 where mask is True"),
    "target 64": (lambda b: b._replace(targets=_set(b.targets, (1, 2), 64)), r"targets\[1, 2\] = 64"),
    "input 66": (lambda b: b._replace(inputs=_set(b.inputs, (1, 0), 66)), r"inputs\[1, 0\] = 66, outside \[0, 66\)"),
    "empty": (lambda b: b._replace(mask=np.zeros_like(b.mask)), r"empty LMBatch"),
}
BAD_CLF = {
    "label -1": (lambda b: b._replace(labels=_set(b.labels, 3, -1)), r"example 3 has label -1, outside \[0, 64\)"),
    "label 64": (lambda b: b._replace(labels=_set(b.labels, 0, 64)), r"example 0 has label 64"),
    "row -1": (lambda b: b._replace(rows=_set(b.rows, 2, -1)), r"example 2 has row -1, outside \[0, 10\]"),
    "row R+1": (lambda b: b._replace(rows=_set(b.rows, 4, 11)), r"example 4 has row 11"),
    "position -1": (lambda b: b._replace(positions=_set(b.positions, 5, -1)), r"example 5 has position -1"),
    "shared slot": (lambda b: b._replace(rows=_set(b.rows, 1, b.rows[0]), positions=_set(b.positions, 1, b.positions[0])),
                    r"examples 0 and 1 share the slot \(row 0, position 0\)"),
    "token 70": (lambda b: b._replace(tokens=_set(b.tokens, (0, 3), 70)), r"tokens\[0, 3\] = 70"),
    "all padding": (lambda b: b._replace(rows=np.full_like(b.rows, b.tokens.shape[0])), r"empty ClassificationBatch"),
}


@pytest.mark.parametrize("case", sorted(BAD_LM))
def test_lm_loss_names_the_bad_value_outside_jit(case):
  make, pattern = BAD_LM[case]
  with pytest.raises(ValueError, match=pattern):
    jaxequiv.lm_nll(_params(), make(LM), APPLY)
  with pytest.raises(ValueError, match=pattern):
    jaxequiv.validate_batch(make(LM))


@pytest.mark.parametrize("case", sorted(BAD_CLF))
def test_classification_loss_names_the_bad_example_outside_jit(case):
  make, pattern = BAD_CLF[case]
  with pytest.raises(ValueError, match=pattern):
    jaxequiv.classification_xent(_params(), make(CLF), APPLY)
  with pytest.raises(ValueError, match=pattern):
    jaxequiv.validate_batch(make(CLF))


def test_good_batches_pass_and_wrong_types_are_named():
  jaxequiv.validate_batch(LM)
  jaxequiv.validate_batch(CLF)
  with pytest.raises(TypeError, match="expected LMBatch or ClassificationBatch, got tuple"):
    jaxequiv.validate_batch(tuple(LM))


def test_under_jit_values_are_not_checked_which_is_why_checkify_exists():
  """The documented gap: under jit label -1 silently scores as class 63. batch_checks closes it."""
  bad = BAD_CLF["label -1"][0](CLF)
  jitted = jax.jit(functools.partial(jaxequiv.classification_xent, apply_fn=APPLY))
  assert np.isfinite(float(jitted(_params(), bad)))  # no error: the values are tracers
  with pytest.raises(TypeError, match="under jax.jit use batch_checks"):
    jax.jit(validation.validate_batch)(bad)


def _checked(loss):
  def f(p, b):
    validation.batch_checks(b)
    return loss(p, b, APPLY)
  return jax.jit(checkify.checkify(f))


@pytest.mark.parametrize("case", sorted(BAD_CLF))
def test_checkify_catches_every_bad_classification_batch_under_jit(case):
  f = _checked(jaxequiv.classification_xent)
  err, _ = f(_params(), CLF)
  assert err.get() is None
  err, _ = f(_params(), BAD_CLF[case][0](CLF))
  assert err.get() is not None, case
  print(case, "->", err.get().splitlines()[0])
  with pytest.raises(Exception, match="example|token|empty"):
    err.throw()


@pytest.mark.parametrize("case", sorted(BAD_LM))
def test_checkify_catches_every_bad_lm_batch_under_jit(case):
  f = _checked(jaxequiv.lm_nll)
  assert f(_params(), LM)[0].get() is None
  err, _ = f(_params(), BAD_LM[case][0](LM))
  assert err.get() is not None, case


def test_checkify_composes_with_grad():
  f = jax.jit(checkify.checkify(jax.grad(lambda p, b: (validation.batch_checks(b),
                                                       jaxequiv.classification_xent(p, b, APPLY))[1])))
  err, g = f(_params(), CLF)
  assert err.get() is None and jax.tree.leaves(g)
  err, _ = f(_params(), BAD_CLF["row -1"][0](CLF))
  assert "row -1" in err.get()
