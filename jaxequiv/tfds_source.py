"""Reading TFDS data without TensorFlow: array_record data sources, and errors that name the extra to install.

Shared by the LM wing's corpora and the labels wing's images. Reading prepared
``array_record`` files needs only ``tensorflow-datasets``; preparing them the
first time (``download=True``) needs TensorFlow.
"""

from __future__ import annotations

from typing import Any

TFDS_EXTRA = "pip install 'jaxequiv[tfds]'"
TFDS_PREPARE_EXTRA = "pip install 'jaxequiv[tfds-prepare]'"


def needs_tensorflow(e: BaseException) -> bool:
  """Whether ``e`` is an ImportError for TensorFlow (which reading array_record data does not need)."""
  name = getattr(e, "name", None) or ""
  return isinstance(e, ImportError) and (name == "tensorflow" or name.startswith("tensorflow.")
                                         or "No module named 'tensorflow'" in str(e))


def array_record_source(tfds: Any, name: str, split: str, data_dir: str | None, download: bool) -> Any:
  """``tfds.data_source`` in array_record format (random access, no TensorFlow).

  An ImportError for TensorFlow (raised when the data must first be prepared)
  becomes one that names ``TFDS_PREPARE_EXTRA``; every other error propagates
  for the caller to explain.
  """
  try:
    return tfds.data_source(name, split=split, data_dir=data_dir, download=download,
                            builder_kwargs={"file_format": "array_record"})
  except ImportError as e:
    if not needs_tensorflow(e):
      raise
    raise ImportError(f"preparing tfds:{name} needs TensorFlow (reading prepared array_record files does not):"
                      f" {TFDS_PREPARE_EXTRA}, or run `tfds build {name} --file_format=array_record` where"
                      " TensorFlow is installed and pass its data_dir") from e
