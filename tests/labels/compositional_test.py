"""labels.compositional and labels.seeds: the long-tailed compositional class set, the vmapped heads, the script."""

import collections
import importlib.util
import json

import jax
import numpy as np
import pytest

from jaxequiv import labels as labels_lib
from jaxequiv.labels import compositional as comp
from jaxequiv.labels import heads as im
from jaxequiv.labels import seeds as seeds_lib
from jaxequiv.labels import train as train_lib
from jaxequiv.provenance import ROOT
from tests.labels.tiny import CFG as TINY


@pytest.fixture(scope="module")
def small():
  return comp.make_compositional(max_count=12, num_heldout=10, test_per_class=1, image_size=12, seed=0)


def test_the_class_set_has_over_100_distinct_labels_whose_words_and_characters_are_shared():
  names = comp.CLASS_NAMES
  assert len(names) >= 100 and len(set(names)) == len(names)
  labels_lib.label_trie(names)  # valid, prefix-free label sentences
  words = collections.Counter(w for n in names for w in n.rstrip(".").split())
  assert min(words.values()) >= len(names) // 6, words  # every word is in a sixth of the names or more
  trie = labels_lib.label_trie(names)
  total_chars = sum(len(n) for n in names)
  print(f"{len(names)} labels, {total_chars} characters, {trie.num_nodes} trie nodes")
  assert trie.num_nodes < total_chars / 2  # shared prefixes: the trie stores under half the characters


def test_zipf_counts_fall_as_a_power_of_the_rank():
  c = comp.zipf_counts(128, max_count=200, exponent=1.0)
  assert c[0] == 200 and np.all(np.diff(c) <= 0) and c.min() >= 1
  assert c[9] == 20 and c[99] == 2  # round(200 / 10), round(200 / 100)
  assert comp.zipf_counts(4, max_count=7, exponent=0.0).tolist() == [7, 7, 7, 7]
  with pytest.raises(ValueError, match="max_count"):
    comp.zipf_counts(4, max_count=0)


def test_training_counts_are_zipf_and_held_out_classes_never_occur_in_training(small):
  counts = np.bincount(small.train.labels, minlength=len(comp.CLASS_NAMES))
  assert np.array_equal(counts, small.counts)
  assert np.all(counts[small.heldout] == 0) and np.all(np.delete(counts, small.heldout) >= 1)
  assert not np.isin(small.train.labels, small.heldout).any()
  seen, heldout = comp.split_classes(10, seed=0)
  assert np.array_equal(heldout, small.heldout) and np.array_equal(counts[seen], comp.zipf_counts(len(seen),
                                                                                                  max_count=12))
  # Every word of a held-out name occurs in training; the test split has every class once.
  for f in range(4):
    assert set(comp.factor_ids(small.heldout)[:, f]) <= set(comp.factor_ids(small.train.labels)[:, f])
  assert np.array_equal(np.sort(small.test.labels), np.arange(len(comp.CLASS_NAMES)))


def test_drawing_is_determined_by_the_seed_bit_for_bit(small):
  again = comp.make_compositional(max_count=12, num_heldout=10, test_per_class=1, image_size=12, seed=0)
  other = comp.make_compositional(max_count=12, num_heldout=10, test_per_class=1, image_size=12, seed=1)
  for a, b in ((small.train, again.train), (small.test, again.test)):
    assert np.array_equal(a.images.view(np.uint32), b.images.view(np.uint32))
    assert np.array_equal(a.labels, b.labels)
  assert not np.array_equal(small.test.images[np.argsort(small.test.labels)].view(np.uint32),
                            other.test.images[np.argsort(other.test.labels)].view(np.uint32))
  assert small.train.images.dtype == np.float32 and 0.0 <= small.train.images.min() <= small.train.images.max() <= 1.0


def test_textures_and_sizes_change_the_pixels_they_name():
  rng = lambda: np.random.default_rng(0)  # noqa: E731  (the same draws for every class)
  ids = [comp.CLASS_NAMES.index(n) for n in ("large plain red square.", "large striped red square.",
                                              "large checked red square.", "small plain red square.")]
  x = comp.draw(np.asarray(ids), rng(), size=20, noise=0.0)
  red = x[..., 0] > 0.5
  assert red[1].sum() < red[0].sum() and red[2].sum() < red[0].sum() and red[3].sum() < red[0].sum()
  assert not np.array_equal(red[1], red[2])


def test_bad_arguments_raise_one_line_errors_naming_them():
  with pytest.raises(ValueError, match="num_heldout"):
    comp.split_classes(100)
  with pytest.raises(ValueError, match="image_size"):
    comp.draw(np.zeros(1, np.int32), np.random.default_rng(0), size=8)
  with pytest.raises(ValueError, match="rare_max"):
    comp.class_groups(np.ones(3), frequent_min=5, rare_max=5)


@pytest.mark.slow  # ~9 compiles: 33 s of CPU under load
def test_vmapped_seed_zero_trains_like_train_heads_and_seeds_differ(data):
  x, y, names = data.images, data.labels, data.class_names  # the shared shapes set and config: compiles are shared
  got = seeds_lib.train_seeds(x, y, names, TINY, seeds=[0, 1], steps=2, batch_size=8)
  ref = train_lib.train_heads(x, y, names, TINY, steps=2, batch_size=8, seed=0)
  for name in ("onehot", "string"):
    a = jax.tree.leaves(jax.tree.map(lambda p: np.asarray(p[0]), getattr(got, f"{name}_params")))
    b = jax.tree.leaves(getattr(ref, f"{name}_params"))
    err = max(float(np.max(np.abs(u - np.asarray(v)))) for u, v in zip(a, b))
    print(f"{name}: max |vmapped seed 0 - train_heads| = {err:.2e}")
    assert err < 1e-5  # equal up to float32 rounding of batched vs unbatched matmuls
  np.testing.assert_allclose(got.onehot_curve[0], ref.onehot_curve, rtol=1e-5)
  assert not np.array_equal(got.string_curve[0], got.string_curve[1])
  # The rank scores of every label are the string head's label NLLs (teacher forcing).
  logp = seeds_lib.string_logprobs(got, x[:3], names, TINY)
  assert logp.shape == (2, 3, len(names)) and np.isfinite(logp).all()
  params0 = jax.tree.map(lambda p: p[0], got.string_params)
  nll = im.string_nll_per_image(params0, x[:3], im.gather_rows(im.label_rows(names, TINY.decoder.seq_len),
                                                                np.full(3, 5)), TINY)
  err = float(np.max(np.abs(-logp[0, :, 5] - np.asarray(nll))))
  print(f"label {names[5]!r}: max |rank score + string_nll_per_image| = {err:.2e}")
  assert err < 1e-4
  assert seeds_lib.onehot_logprobs(got, x[:3], TINY).shape == (2, 3, len(np.unique(y)))


def _script():
  spec = importlib.util.spec_from_file_location("labels_compositional", ROOT / "scripts" / "labels_compositional.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def test_group_metrics_reads_accuracy_nll_and_words_from_the_scores():
  script = _script()
  classes = np.asarray([0, 1, 143])
  labels = np.asarray([0, 1, 143])
  onehot = np.log(np.asarray([[[0.5, 0.5], [0.2, 0.8], [0.9, 0.1]]]))  # one seed, classes 0 and 1
  string = np.full((1, 3, 144), -50.0)
  string[0, [0, 1, 2], [0, 0, 143]] = 0.0  # right, wrong (says class 0), right
  m = script.group_metrics(onehot, np.asarray([0, 1]), string, labels, classes[:2])
  assert m["onehot"]["accuracy"] == [1.0] and m["string"]["accuracy"] == [0.5]  # argmax ties go to class 0
  np.testing.assert_allclose(m["onehot"]["nll"], [-(np.log(0.5) + np.log(0.8)) / 2])
  assert m["onehot_has_output"] == 1.0 and "accuracy_pmi" not in m["string"]
  prior = np.zeros((1, 144))
  prior[0, 0] = 60.0  # dividing out a prior that favours class 0 moves image 1 to its true class
  held = script.group_metrics(onehot, np.asarray([0, 1]), string, labels, classes[2:], prior)
  assert held["onehot"]["nll"] is None and held["onehot"]["accuracy"] == [0.0] and held["string"]["accuracy"] == [1.0]
  assert held["onehot_has_output"] == 0.0 and held["string"]["accuracy_pmi"] == [1.0]
  pmi = script.group_metrics(onehot, np.asarray([0, 1]), string, labels, classes[:2], prior)["string"]["accuracy_pmi"]
  assert pmi == [0.5]  # image 0 (class 0) now loses to class 1 (score -50 - 0 > 0 - 60); image 1 is right
  assert held["onehot"]["words_correct"] == [0.0]  # class 0 'small plain red circle.' vs 'large checked white cross.'


def test_the_script_writes_a_record_with_provenance_at_a_tiny_size(tmp_path):
  script = _script()
  out = tmp_path / "lc"
  assert script.main(["--seeds", "2", "--steps", "2", "--batch-size", "8", "--max-count", "24", "--frequent-min", "6",
                      "--rare-max", "2", "--heldout", "4", "--test-per-class", "1", "--image-size", "12", "--width",
                      "16", "--heads", "2", "--channels", "4", "--out", str(out)]) == 0
  rec = json.loads(out.with_suffix(".json").read_text())
  assert rec["provenance"]["seeds"] == [0, 1] and "2 steps per head" in rec["model"]
  assert len(rec["headline"]) == 6 and set(rec["data"]["groups"]) == {"frequent", "rare", "heldout"}
  assert rec["data"]["groups"]["heldout"]["classes"] == 4
  assert out.with_suffix(".md").read_text().startswith("# Labels as strings")
  with pytest.raises(SystemExit, match="no frequent"):
    script.main(["--max-count", "4", "--out", str(out)])
