"""TFDS paths of the text corpus and the image loader, offline, under ``tfds.testing.mock_data``.

Only this module needs tensorflow-datasets, so only its tests skip without it.
``mock_data`` (policy AUTO -> USE_CODE here: no metadata files needed) mocks
``tfds.data_source`` with random records of the right features, so the real
loading path runs. TensorFlow is not installed: the paths that need it (preparing
data, reading tfrecord) are checked through the errors that name the extra.
"""

import numpy as np
import pytest

from jaxequiv import alphabet, labels
from jaxequiv.labels import images
from jaxequiv.lm import corpus

tfds = pytest.importorskip("tensorflow_datasets")

_SHAKESPEARE = [{"text": b"First Citizen:\nBefore we proceed any further, hear me"},
                {"text": b" speak.\n\nAll:\nSpeak, speak."}]


def _fake_source(self, split, decoders=None, **kwargs):
  del decoders, kwargs
  assert split in ("train", "validation"), split
  return _SHAKESPEARE


class _Recorder:
  """Stands in for ``tfds.data_source``: records its arguments, then raises or calls the real (mocked) one."""

  def __init__(self, real, error=None):
    self.real, self.error, self.calls = real, error, []

  def __call__(self, name, **kwargs):
    self.calls.append((name, kwargs))
    if self.error is not None:
      raise self.error
    return self.real(name, **kwargs)


# --- text: jaxequiv.lm.corpus ---


def test_tfds_data_source_random_mock_is_normalised():
  with tfds.testing.mock_data(num_examples=3, policy=tfds.testing.MockPolicy.USE_CODE):
    lm1b = corpus.tfds_sentences("lm1b", "train")
    shakespeare = corpus.tfds_sentences("tiny_shakespeare", "train")
    capped = corpus.tfds_sentences("lm1b", "train", max_examples=2)
  assert len(lm1b) == 3 and len(capped) == 2 and capped == lm1b[:2]
  assert alphabet.validate_sentences(lm1b) == lm1b
  assert len(shakespeare) == 1  # the 3 texts are joined; mock texts have no periods


def test_tfds_bytes_are_decoded_and_joined_per_dataset():
  with tfds.testing.mock_data(policy=tfds.testing.MockPolicy.USE_CODE, as_data_source_fn=_fake_source):
    shakespeare = corpus.tfds_sentences("tiny_shakespeare", "validation")
    per_example = corpus.tfds_sentences("lm1b", "train")
    via_spec = corpus.load_sentences("tfds:tiny_shakespeare")
  # tiny_shakespeare: one text per split, joined before normalising.
  assert shakespeare == via_spec == ["First Citizen Before we proceed any further hear me speak.", "All Speak speak."]
  # lm1b: each example normalised on its own.
  assert per_example == ["First Citizen Before we proceed any further hear me.", "speak.", "All Speak speak."]


def test_lm1b_is_capped_by_default_and_max_examples_zero_reads_all(monkeypatch):
  monkeypatch.setitem(corpus.DEFAULT_MAX_EXAMPLES, "lm1b", 4)
  with tfds.testing.mock_data(num_examples=9, policy=tfds.testing.MockPolicy.USE_CODE):
    default = corpus.load_sentences("tfds:lm1b")
    everything = corpus.load_sentences("tfds:lm1b", max_examples=0)
    two = corpus.load_sentences("tfds:lm1b", max_examples=2)
  print(f"lm1b under mock: {len(default)} sentences by default (cap 4), {len(everything)} with max_examples=0")
  assert len(default) == 4 and len(everything) == 9 and two == default[:2] == everything[:2]
  with pytest.raises(ValueError, match="max_examples must be >= 0"):
    corpus.tfds_sentences("lm1b", max_examples=-1)


def test_corpus_passes_array_record_config_and_slice_through(monkeypatch):
  with tfds.testing.mock_data(num_examples=3, policy=tfds.testing.MockPolicy.USE_CODE):
    rec = _Recorder(tfds.data_source)
    monkeypatch.setattr(tfds, "data_source", rec)
    corpus.load_sentences("tfds:lm1b:validation[:10%]", data_dir="/some/dir", max_examples=2)
    with pytest.raises(ValueError, match="no such TFDS dataset or builder config"):
      corpus.load_sentences("tfds:lm1b/nosuchconfig")
  (name, kw), _ = rec.calls
  assert name == "lm1b" and kw["split"] == "validation[:10%]" and kw["data_dir"] == "/some/dir"
  assert kw["builder_kwargs"] == {"file_format": "array_record"}


def test_corpus_errors_say_what_is_missing(monkeypatch, tmp_path):
  with pytest.raises(FileNotFoundError, match=r"tfds:tiny_shakespeare split 'train' could not be read.*tfds build"):
    corpus.tfds_sentences("tiny_shakespeare", data_dir=str(tmp_path), download=False)
  with pytest.raises(ValueError, match="no such TFDS dataset"):
    corpus.tfds_sentences("no_such_dataset_here", data_dir=str(tmp_path), download=False)
  monkeypatch.setattr(tfds, "data_source", _Recorder(None, ModuleNotFoundError("No module named 'tensorflow'",
                                                                              name="tensorflow")))
  with pytest.raises(ImportError, match=r"preparing tfds:lm1b needs TensorFlow.*jaxequiv\[tfds-prepare\]"):
    corpus.tfds_sentences("lm1b")


def test_tfds_falls_back_to_load_when_files_are_not_random_access(monkeypatch):
  # Only the branch logic: the real tfds.load path needs TensorFlow, which is not installed.
  calls = []
  monkeypatch.setattr(tfds, "data_source", _Recorder(None, NotImplementedError("tfrecord is not random access")))
  monkeypatch.setattr(tfds, "load", lambda name, **kw: calls.append((name, kw["split"])) or _SHAKESPEARE)
  monkeypatch.setattr(tfds, "as_numpy", iter)
  assert corpus.tfds_sentences("tiny_shakespeare", "test") == [
      "First Citizen Before we proceed any further hear me speak.", "All Speak speak."]
  assert calls == [("tiny_shakespeare", "test")]
  monkeypatch.setattr(tfds, "load", _Recorder(None, ModuleNotFoundError("No module named 'tensorflow'",
                                                                       name="tensorflow")))
  with pytest.raises(ImportError, match=r"prepared as tfrecord, which only TensorFlow reads.*tfds-prepare"):
    corpus.tfds_sentences("tiny_shakespeare", "test")


# --- images: jaxequiv.labels.images through jaxequiv.labels.tfds_images ---


@pytest.mark.parametrize("name,k", [("cifar10", 10), ("cifar100", 100)])
def test_tfds_cifar_under_mock_data(name, k):
  with tfds.testing.mock_data(num_examples=12):
    ds = images.load_images(f"tfds:{name}", "test", num_examples=5, seed=0)
    ds_all = images.load_images(f"tfds:{name}", "train")
  assert ds.images.shape == (5, 32, 32, 3) and ds.images.dtype == np.float32
  assert len(ds_all.labels) == 12
  assert ds.labels.dtype == np.int32 and np.all((0 <= ds.labels) & (ds.labels < k))
  assert len(ds.class_names) == k
  labels.label_trie(ds.class_names)
  if name == "cifar100":
    assert "maple tree." in ds.class_names and "oak tree." in ds.class_names
    assert ds.class_names[1] == "aquarium fish."
  else:
    assert ds.class_names[0] == "airplane."


def test_tfds_imagenette_config_resizes_and_names_every_class():
  with tfds.testing.mock_data(num_examples=4):
    ds = images.load_images("tfds:imagenette/160px-v2", "test", image_size=24)
  assert ds.images.shape == (4, 24, 24, 3)
  assert ds.class_names[0] == "tench." and "English springer." in ds.class_names
  # Every WordNet id tfds uses is mapped: with the wrong parachute id the last name was 'n03888257.'.
  assert ds.class_names[-1] == "parachute." and not any(n.startswith("n0") for n in ds.class_names)


def test_tfds_images_pass_array_record_and_split_slices(monkeypatch):
  with tfds.testing.mock_data(num_examples=6):
    rec = _Recorder(tfds.data_source)
    monkeypatch.setattr(tfds, "data_source", rec)
    train = images.load_images("tfds:cifar10:train[:1000]", "train", data_dir="/d")
    test = images.load_images("tfds:cifar10:train[:1000]", "test", data_dir="/d")
    images.load_images("tfds:imagenette/320px-v2:[:10%]", "test")
    with pytest.raises(ValueError, match="no such TFDS dataset or config"):
      images.load_images("tfds:imagenette/999px", "test")
  assert [(n, kw["split"]) for n, kw in rec.calls] == [
      ("cifar10", "train[:1000]"), ("cifar10", "test"), ("imagenette/320px-v2", "validation[:10%]"),
      ("imagenette/999px", "validation")]
  assert all(kw["builder_kwargs"] == {"file_format": "array_record"} for _, kw in rec.calls)
  assert rec.calls[0][1]["data_dir"] == "/d" and len(train.labels) == len(test.labels) == 6


def test_tfds_imagenet2012_class_names_spell_wordnet_ids_as_words():
  mapping = [f"n{i:08d} word{chr(97 + i % 26)}{i}, synonym" for i in range(1000)]
  with tfds.testing.mock_data(num_examples=3):
    raw = images.load_images("tfds:imagenet2012", "test", image_size=16)
    named = images.load_images("tfds:imagenet2012", "test", image_size=16, class_names=mapping)
    with pytest.raises(ValueError, match="got 10 class names for 1000 classes"):
      images.load_images("tfds:imagenet2012", "test", image_size=16, class_names=mapping[:10])
  assert raw.class_names[0].startswith("n0") and len(raw.class_names) == 1000
  assert named.class_names[:2] == ["worda0.", "wordb1."]
  np.testing.assert_array_equal(raw.labels, named.labels)
  labels.label_trie(named.class_names)


def test_tfds_missing_data_errors_name_the_fix(tmp_path, monkeypatch):
  with pytest.raises(FileNotFoundError, match="manual_dir"):
    images.load_images("tfds:imagenet2012", "train", data_dir=str(tmp_path))
  with pytest.raises(FileNotFoundError, match=r"not prepared in array_record format.*tfds-prepare"):
    images.load_images("tfds:cifar10", "train", data_dir=str(tmp_path))
  monkeypatch.setattr(tfds, "data_source", _Recorder(None, ModuleNotFoundError("No module named 'tensorflow'",
                                                                              name="tensorflow")))
  with pytest.raises(ImportError, match=r"preparing tfds:cifar10 needs TensorFlow.*jaxequiv\[tfds-prepare\]"):
    images.load_images("tfds:cifar10", "train", download=True)
