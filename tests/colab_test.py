"""The Colab path: the notebooks install jaxequiv from one URL, and notebook 01 runs from the built wheel alone.

The install URL's one source is ``[project.urls] Homepage`` in pyproject.toml: every notebook's install cell is
``%pip install -q "jaxequiv @ git+<Homepage>"`` and its Colab badge opens ``<Homepage>/blob/main/notebooks/<file>``.
"""

import os
import pathlib
import re
import subprocess
import sys
import sysconfig
import time
import tomllib

import nbformat
import pytest

ROOT = pathlib.Path(__file__).parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
HOMEPAGE = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["urls"]["Homepage"]
INSTALL_LINE = f'%pip install -q "jaxequiv @ git+{HOMEPAGE}"'
PIP = re.compile(r"^\s*[%!]\s*pip install.*$", re.M)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_installs_from_the_one_url_and_says_it_has_not_run_on_a_gpu(path):
  nb = nbformat.read(path, as_version=4)
  installs = [m.group().strip() for c in nb.cells if c.cell_type == "code" for m in PIP.finditer(c.source)]
  assert installs == [INSTALL_LINE], f"{path.name}: install lines {installs}, want [{INSTALL_LINE!r}]"
  badge = HOMEPAGE.replace("https://github.com/", "https://colab.research.google.com/github/")
  assert f"{badge}/blob/main/notebooks/{path.name}" in nb.cells[0].source
  assert "not been run on a GPU" in nb.cells[0].source, f"{path.name}: the first cell must say it"


def _run(cmd, **kwargs) -> str:
  proc = subprocess.run(cmd, capture_output=True, text=True, check=False, **kwargs)
  assert proc.returncode == 0, f"{cmd[:4]}... exit {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
  return proc.stdout


EXECUTE = """
import sys, nbformat
from nbclient import NotebookClient
nb = nbformat.read(sys.argv[1], as_version=4)
nb.cells.append(nbformat.v4.new_code_cell("import jaxequiv; print('JAXEQUIV_FILE=' + jaxequiv.__file__)"))
NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": sys.argv[2]}}).execute()
errors = [o for c in nb.cells for o in c.get("outputs", []) if o.output_type == "error"]
assert not errors, errors
print(nb.cells[-1].outputs[0].text)
"""


@pytest.mark.slow
def test_notebook_01_runs_from_the_built_wheel_without_the_checkout(tmp_path):
  start = time.perf_counter()
  _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path / "dist"), str(ROOT)])
  (wheel,) = (tmp_path / "dist").glob("jaxequiv-*.whl")
  venv = tmp_path / "venv"
  _run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
  python = venv / "bin" / "python"
  site = pathlib.Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).strip())
  # The dependencies (jax, flax, nbclient, ...) come from this environment's site-packages, added as a plain path:
  # its .pth files, the checkout's editable finder among them, are not run, so jaxequiv can only come from the wheel.
  (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
  _run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", str(wheel)])
  work = tmp_path / "work"  # a cwd outside the checkout, with a copy of the notebook only
  work.mkdir()
  notebook = work / NOTEBOOKS[0].name
  notebook.write_bytes(NOTEBOOKS[0].read_bytes())
  env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
  env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"  # a kernel spec that runs `python` finds the venv's
  where = _run([str(python), "-c", "import jaxequiv; print(jaxequiv.__file__)"], cwd=work, env=env).strip()
  assert where.startswith(str(site)), f"jaxequiv imported from {where}, not the wheel in {site}"
  out = _run([str(python), "-c", EXECUTE, str(notebook), str(work)], cwd=work, env=env)
  (kernel_file,) = re.findall(r"JAXEQUIV_FILE=(\S+)", out)
  assert kernel_file.startswith(str(site)), f"the notebook's kernel imported jaxequiv from {kernel_file}"
  print(f"wheel {wheel.name}; notebook 01 ran from {kernel_file} in {time.perf_counter() - start:.0f} s")
