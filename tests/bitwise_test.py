"""jaxequiv.bitwise compares raw bits: the cases assert_array_equal gets wrong, and the ones it never sees."""

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from jaxequiv import bitwise


def test_negative_zero_differs_from_positive_zero():
  a, b = np.array([0.0, 1.0], np.float32), np.array([-0.0, 1.0], np.float32)
  np.testing.assert_array_equal(a, b)  # what the usual assertion says
  rep = bitwise.compare_bits(a, b)
  assert not rep.equal and rep.mismatched_elements == 1
  with pytest.raises(AssertionError, match="1 of 2 elements differ"):
    bitwise.assert_bitwise_equal(a, b)


def test_nan_payloads_are_distinguished_and_equal_nans_match():
  quiet = np.array([0x7FC00000], np.uint32).view(np.float32)
  payload = np.array([0x7FC00001], np.uint32).view(np.float32)
  np.testing.assert_array_equal(quiet, payload)  # NaN == NaN to numpy's assertion
  assert not bitwise.compare_bits(quiet, payload).equal
  assert bitwise.compare_bits(quiet, quiet.copy()).equal  # while NaN != NaN to ==


def test_tree_structure_shape_and_dtype_differences_are_failures():
  assert bitwise.compare_bits({"a": np.zeros(2)}, {"b": np.zeros(2)}).mismatched_paths == ("<tree structure differs>",)
  assert not bitwise.compare_bits([np.zeros(2)], [np.zeros(2), np.zeros(2)]).equal
  assert not bitwise.compare_bits({"a": np.zeros(2)}, {"a": np.zeros(3)}).equal
  rep = bitwise.compare_bits({"a": np.zeros(2, np.float32)}, {"a": np.zeros(2, np.int32)})
  assert not rep.equal and rep.mismatched_paths == ("['a']",)


def test_bfloat16_leaves_are_compared_as_uint16():
  a = jnp.array([1.0, -0.0, 3.5], jnp.bfloat16)
  assert bitwise.bits(a).dtype == np.uint16
  b = a.at[1].set(0.0)
  assert bitwise.compare_bits(a, b).mismatched_elements == 1
  one_ulp = np.array([0x3F80, 0x3F81], np.uint16).view(ml_dtypes.bfloat16)
  assert bitwise.max_ulp_distance(one_ulp[:1], one_ulp[1:]) == 1


def test_bool_and_integer_leaves():
  assert bitwise.compare_bits({"m": np.array([True, False])}, {"m": np.array([True, False])}).equal
  assert not bitwise.compare_bits({"m": np.array([True, False])}, {"m": np.array([True, True])}).equal
  assert not bitwise.compare_bits(np.array([1, 2], np.int32), np.array([1, 3], np.int32)).equal


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(width=32, allow_nan=True), min_size=1, max_size=16))
def test_a_float_array_equals_itself_and_one_flipped_bit_is_found(values):
  a = np.array(values, np.float32)
  assert bitwise.compare_bits(a, a.copy()).equal
  flipped = a.copy().view(np.uint32)
  flipped[len(values) // 2] ^= np.uint32(1)
  rep = bitwise.compare_bits(a, flipped.view(np.float32))
  assert rep.mismatched_elements == 1


def test_ulp_distance_across_zero_and_relative_error():
  a = np.array([1.0, 2.0], np.float32)
  b = np.nextafter(a, np.float32(3))
  assert bitwise.max_ulp_distance(a, b) == 1
  assert bitwise.max_ulp_distance(np.array([0.0], np.float32), np.array([-0.0], np.float32)) == 0
  assert bitwise.max_relative_error({"x": a}, {"x": a * 1.5}) == pytest.approx(0.5)


def test_complex_leaves_are_compared_as_their_parts_bits():
  a = np.array([complex(0.0, 3.0), complex(1.0, -2.0)])
  b = np.array([complex(-0.0, 3.0), complex(1.0, -2.0)])  # -0.0 real part: equal to ==, not in bits
  assert bitwise.bits(a).shape == (2, 2) and bitwise.bits(a).dtype == np.uint64
  assert bitwise.compare_bits(a, a.copy()).equal
  rep = bitwise.compare_bits({"z": a}, {"z": b})
  assert (rep.elements, rep.mismatched_elements, rep.mismatched_paths) == (2, 1, ("['z']",))
  assert not bitwise.compare_bits(a.astype(np.complex64), a).equal  # dtype differs
  step = np.nextafter(np.float32(-2.0), np.float32(0.0))
  assert bitwise.max_ulp_distance(a.astype(np.complex64), np.array([3j, 1 + step * 1j], np.complex64)) == 1


def test_typed_prng_keys_are_compared_by_their_key_data():
  k0, k1 = jax.random.key(0), jax.random.key(1)
  assert bitwise.compare_bits({"k": k0}, {"k": jax.random.key(0)}).equal
  rep = bitwise.compare_bits({"k": k0, "w": np.zeros(2)}, {"k": k1, "w": np.zeros(2)})
  assert not rep.equal and rep.mismatched_paths == ("['k']",)
  assert not bitwise.compare_bits(k0, jax.random.key(0, impl="rbg")).equal  # another key type


@pytest.mark.parametrize("measure", [bitwise.max_relative_error, bitwise.max_ulp_distance])
def test_error_measures_refuse_trees_of_different_structures(measure):
  a = {"a": np.ones(2, np.float32), "b": np.ones(2, np.float32)}
  with pytest.raises(ValueError, match=r"differ in structure \(2 vs 1 leaves, first at leaf 1: \['b'\] vs \(none\)\)"):
    measure(a, {"a": 2 * np.ones(2, np.float32)})  # zip would compare ['a'] only (and say 0 for the ULPs if equal)
  with pytest.raises(ValueError, match=r"leaf \['a'\]"):
    measure({"a": np.ones(2, np.float32)}, {"a": np.ones(1, np.float32)})  # would broadcast
  assert measure(a, {"a": np.ones(2, np.float32), "b": np.ones(2, np.float32)}) == 0
