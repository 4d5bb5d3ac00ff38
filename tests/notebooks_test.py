"""Executes every notebook in notebooks/ on the current backend (CPU in CI); checks they are stripped."""

import pathlib
import re

import nbformat
import pytest

NOTEBOOKS = sorted((pathlib.Path(__file__).parent.parent / "notebooks").glob("*.ipynb"))


def test_there_are_notebooks():
  assert any(p.name.startswith("01_") for p in NOTEBOOKS)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_stripped_and_has_a_colab_badge(path):
  nb = nbformat.read(path, as_version=4)
  assert "colab-badge.svg" in nb.cells[0].source and path.name in nb.cells[0].source
  for cell in nb.cells:
    if cell.cell_type == "code":
      assert cell.outputs == [] and cell.execution_count is None, f"{path.name}: outputs not stripped"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_executes(path):
  from nbclient import NotebookClient  # pylint: disable=import-outside-toplevel
  nb = nbformat.read(path, as_version=4)
  NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
  errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
  assert not errors


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_sets_determinism_flags_before_jax_and_opens_on_a_gpu(path):
  nb = nbformat.read(path, as_version=4)
  code = [c.source for c in nb.cells if c.cell_type == "code"]
  flags = next(i for i, s in enumerate(code) if "determinism.set_xla_flags()" in s or "determinism.ensure_xla_flags()" in s)
  imports_jax = re.compile(r"^\s*(import jax\b|from jax(\.\w+)* import)", re.M)
  first_jax = next(i for i, s in enumerate(code) if imports_jax.search(s))
  assert flags < first_jax, f"{path.name}: cell {first_jax} imports JAX before the determinism flags are set"
  assert nb.metadata.get("accelerator") == "GPU", f"{path.name}: Colab should open on a GPU runtime"
  assert not any("BIG = False" in s or "BIG = True" in s for s in code), "settings switch on by backend, not by hand"
