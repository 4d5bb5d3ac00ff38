"""MkDocs hooks: figures from results/ and the notebooks as pages, without copying files into docs/.

* ``results/*.png`` are added to the site as ``results/NAME.png``, so a page links ``results/NAME.png`` (a page in
  ``docs/`` writes ``![...](results/NAME.png)``) and the strict build checks the link.
* ``notebooks/*.ipynb`` become pages ``notebooks/NAME.md``: markdown cells as they are, code cells as Python blocks,
  outputs (text, tables, PNG figures) below them. The repository keeps the notebooks stripped, so by default the pages
  show code only. With ``JAXEQUIV_DOCS_EXECUTE=1`` each notebook is first executed (nbclient, in ``notebooks/``) into
  ``build/docs_notebooks/`` (git-ignored), reused while the notebook's bytes are unchanged; the pages then show
  the outputs. ``bash scripts/build_docs.sh`` does that for the published site.
"""

from __future__ import annotations

import hashlib
import os
import pathlib

from mkdocs.structure.files import File, Files

ROOT = pathlib.Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
EXECUTED = ROOT / "build" / "docs_notebooks"
EXECUTE_ENV = "JAXEQUIV_DOCS_EXECUTE"
NOT_EXECUTED = ("!!! note \"Outputs not shown\"\n    This build did not execute the notebook (the repository keeps "
                "notebooks stripped). Build with `JAXEQUIV_DOCS_EXECUTE=1` (`bash scripts/build_docs.sh`) to see its "
                "outputs.\n\n")


def _executed(path: pathlib.Path):
  """The notebook executed on this machine's default backend, cached by the SHA-256 of its bytes."""
  import nbformat  # pylint: disable=import-outside-toplevel
  from nbclient import NotebookClient  # pylint: disable=import-outside-toplevel
  digest = hashlib.sha256(path.read_bytes()).hexdigest()
  out = EXECUTED / path.name
  if out.exists():
    nb = nbformat.read(out, as_version=4)
    if nb.metadata.get("jaxequiv_source_sha256") == digest:
      return nb
  nb = nbformat.read(path, as_version=4)
  NotebookClient(nb, timeout=1200, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
  nb.metadata["jaxequiv_source_sha256"] = digest
  out.parent.mkdir(parents=True, exist_ok=True)
  nbformat.write(nb, out)
  return nb


def _output_markdown(output) -> str:
  kind = output.get("output_type")
  if kind == "stream":
    return f"```text\n{output['text'].rstrip()}\n```\n"
  if kind == "error":
    return "```text\n" + "\n".join(output.get("traceback", [])) + "\n```\n"
  data = output.get("data", {})
  if "image/png" in data:
    return f'<img alt="figure" src="data:image/png;base64,{data["image/png"].strip()}">\n'
  if "text/html" in data:
    return f'<div class="nb-output">{data["text/html"]}</div>\n'
  if "text/markdown" in data:
    return data["text/markdown"] + "\n"
  if "text/plain" in data:
    return f"```text\n{data['text/plain'].rstrip()}\n```\n"
  return ""


def notebook_markdown(nb, executed: bool) -> str:
  """One notebook as a Markdown page (the Colab badge cell first, as in the notebook)."""
  parts = []
  for i, cell in enumerate(nb.cells):
    if cell.cell_type == "markdown":
      parts.append(cell.source + "\n")
      if i == 0 and not executed:
        parts.append(NOT_EXECUTED)
    elif cell.cell_type == "code":
      parts.append(f"```python\n{cell.source}\n```\n")
      parts.extend(_output_markdown(o) for o in cell.get("outputs", []))
  return "\n".join(parts)


def on_files(files: Files, config) -> Files:
  for png in sorted((ROOT / "results").glob("*.png")):
    files.append(File(f"results/{png.name}", str(ROOT), config["site_dir"], config["use_directory_urls"]))
  execute = os.environ.get(EXECUTE_ENV, "") not in ("", "0")
  import nbformat  # pylint: disable=import-outside-toplevel
  for path in sorted(NOTEBOOKS.glob("*.ipynb")):
    nb = _executed(path) if execute else nbformat.read(path, as_version=4)
    files.append(File.generated(config, f"notebooks/{path.stem}.md", content=notebook_markdown(nb, execute)))
  return files
