"""The docs site's own code: docstring maths for MathJax (docs/rst_math.py), notebook pages (docs/hooks.py), the nav."""

import ast
import base64
import contextlib
import importlib.util
import io
import pathlib
import re

import nbformat
import pytest
import yaml

ROOT = pathlib.Path(__file__).parent.parent


def _load(name: str):
  spec = importlib.util.spec_from_file_location(f"docs_{name}", ROOT / "docs" / f"{name}.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def _docstrings():
  for path in sorted((ROOT / "jaxequiv").rglob("*.py")):
    for node in ast.walk(ast.parse(path.read_text())):
      if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
        doc = ast.get_docstring(node)
        if doc:
          yield f"{path.relative_to(ROOT)}:{getattr(node, 'name', 'module')}", doc


def test_every_docstring_s_rst_maths_becomes_arithmatex_maths():
  rst_math = _load("rst_math")
  converted = 0
  for where, doc in _docstrings():
    out = rst_math.rst_math_to_arithmatex(doc)
    assert ".. math::" not in out and ":math:" not in out, where
    converted += doc.count(".. math::") + doc.count(":math:")
    assert (out.count("$") - doc.count("$")) % 2 == 0, f"{where}: unbalanced $ after conversion"
  assert converted >= 13, converted  # the issue counted 13 blocks and roles; more have been written since


def test_a_notebook_page_shows_code_text_and_figures():
  hooks = _load("hooks")
  png = base64.b64encode(b"\x89PNG fake").decode()
  nb = nbformat.v4.new_notebook(cells=[
      nbformat.v4.new_markdown_cell("[![Open In Colab](badge)](link)"),
      nbformat.v4.new_code_cell("print(1 + 1)", outputs=[nbformat.v4.new_output("stream", name="stdout", text="2\n")]),
      nbformat.v4.new_code_cell("plot()", outputs=[nbformat.v4.new_output("display_data", data={"image/png": png})]),
  ])
  page = hooks.notebook_markdown(nb, executed=True)
  assert "```python\nprint(1 + 1)\n```" in page and "```text\n2\n```" in page
  assert f"data:image/png;base64,{png}" in page and "Outputs not shown" not in page
  stripped = hooks.notebook_markdown(nbformat.v4.new_notebook(cells=nb.cells[:1]), executed=False)
  assert "Outputs not shown" in stripped


def test_every_page_is_in_the_nav_and_every_notebook_has_a_page():
  def pages(nav):
    if isinstance(nav, str):
      return [nav]
    items = nav.values() if isinstance(nav, dict) else nav
    return [p for item in items for p in pages(item)]
  config = yaml.load((ROOT / "mkdocs.yml").read_text(), Loader=yaml.BaseLoader)  # BaseLoader: skips !ENV tags
  nav = pages(config["nav"])
  written = sorted(p.relative_to(ROOT / "docs").as_posix() for p in (ROOT / "docs").rglob("*.md"))
  assert sorted(p for p in nav if not p.startswith("notebooks/")) == written
  assert sorted(p for p in nav if p.startswith("notebooks/")) == [
      f"notebooks/{p.stem}.md" for p in sorted((ROOT / "notebooks").glob("*.ipynb"))]
  for page in written:  # figures are results/NAME.png, added to the site by the hook
    for figure in re.findall(r"\]\((results/[^)]+)\)", (ROOT / "docs" / page).read_text()):
      assert (ROOT / figure).exists(), f"docs/{page} shows {figure}, which does not exist"


OWN_MODEL = [b for b in re.findall(r"```python\n(.*?)```", (ROOT / "docs" / "own_model.md").read_text(), re.S)
             if "jaxequiv.lm_nll" in b]
README_EXAMPLES = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)


def test_own_model_page_has_the_linen_nnx_and_equinox_recipes():
  assert [("flax.linen" in b, "flax.nnx" in b, "equinox" in b) for b in OWN_MODEL] == [
      (True, False, False), (False, True, False), (False, False, True)]


@pytest.mark.parametrize("index", range(3), ids=["linen", "nnx", "equinox"])
def test_own_model_recipe_runs_and_gradients_are_bitwise_equal(index):
  recipe = OWN_MODEL[index]
  if recipe in README_EXAMPLES:
    pytest.skip("the same text is in README.md, where tests/readme_test.py runs it")
  out = io.StringIO()
  with contextlib.redirect_stdout(out):
    exec(compile(recipe, "docs/own_model.md", "exec"), {})  # pylint: disable=exec-used
  assert "mismatched_elements=0," in out.getvalue() and ", elements=0," not in out.getvalue()


def test_the_core_api_page_documents_every_core_module():
  modules = {f"jaxequiv.{p.stem}" for p in (ROOT / "jaxequiv").glob("*.py") if not p.stem.startswith("__")}
  documented = set(re.findall(r"^::: *([\w.]+)", (ROOT / "docs" / "api" / "core.md").read_text(), re.M))
  assert sorted(modules - documented) == [], "add these modules to docs/api/core.md"
