"""The wing registry (``jaxequiv.wings``) matches the packages, the API docs, the notebooks and ``verify``."""

import ast
import pathlib
import re

import pytest
import yaml

from jaxequiv import wings

REPO = pathlib.Path(__file__).parent.parent
NAMES = [w.name for w in wings.WINGS]


def _unregistered(root: pathlib.Path) -> list[str]:
  """Packages under ``root`` (folders with ``__init__.py``) that are neither ``cli`` nor a registered wing."""
  packages = {p.parent.name for p in root.glob("*/__init__.py")}
  return sorted(packages - {wings.CLI_PACKAGE, *NAMES})


def _nav_pages(nav) -> list[str]:
  if isinstance(nav, str):
    return [nav]
  if isinstance(nav, dict):
    return [p for v in nav.values() for p in _nav_pages(v)]
  return [p for item in nav for p in _nav_pages(item)]


def _documented(page: pathlib.Path) -> list[str]:
  return re.findall(r"^::: *([\w.]+)", page.read_text(), re.M)


def test_every_wing_package_has_a_registry_entry():
  assert _unregistered(REPO / "jaxequiv") == [], "a wing package without an entry in jaxequiv/wings.py"
  missing = [w.name for w in wings.WINGS if not (REPO / "jaxequiv" / w.name / "__init__.py").exists()]
  assert missing == [], f"registered wings without a package: {missing}"


def test_the_registry_check_sees_a_planted_wing(tmp_path):
  for name in ("lm", "cli", "newwing"):
    (tmp_path / name).mkdir()
    (tmp_path / name / "__init__.py").write_text("")
  assert _unregistered(tmp_path) == ["newwing"]


def test_wings_sit_between_core_and_the_cli():
  assert len(set(NAMES)) == len(NAMES) and all(re.fullmatch(r"[a-z_]+", n) for n in NAMES)
  assert all(wings.CORE_LAYER < w.layer < wings.CLI_LAYER for w in wings.WINGS)


def test_api_nav_is_core_the_wings_and_the_cli():
  nav = _nav_pages(yaml.safe_load((REPO / "mkdocs.yml").read_text())["nav"])
  api = [p for p in nav if p.startswith("api/")]
  assert api == [wings.CORE_DOCS, *(w.docs for w in wings.WINGS), wings.CLI_DOCS]


@pytest.mark.parametrize("wing", wings.WINGS, ids=NAMES)
def test_wing_api_page_documents_its_package(wing):
  page = REPO / "docs" / wing.docs
  documented = _documented(page)
  assert documented, f"{page} documents nothing (add '::: {wing.package}')"
  assert all(d == wing.package or d.startswith(wing.package + ".") for d in documented), documented
  if wing.package not in documented:  # module by module: then every module of the package
    modules = sorted(f"{wing.package}.{p.stem}" for p in (REPO / "jaxequiv" / wing.name).glob("*.py")
                     if p.stem != "__init__")
    assert sorted(set(documented)) == modules, f"{page} must list every module of {wing.package}"


def test_notebooks_each_belong_to_core_or_one_wing():
  listed = [*wings.CORE_NOTEBOOKS, *(n for w in wings.WINGS for n in w.notebooks)]
  assert sorted(listed) == sorted(str(p.relative_to(REPO)) for p in (REPO / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("module", wings.checks_modules())
def test_checks_modules_define_run_checks(module):
  path = REPO / (module.replace(".", "/") + ".py")
  assert module.startswith("jaxequiv.") and path.exists(), path
  assert "run_checks" in {n.name for n in ast.parse(path.read_text()).body if isinstance(n, ast.FunctionDef)}


def test_verify_runs_the_registry_s_checks():
  from jaxequiv.cli import verify  # pylint: disable=import-outside-toplevel
  assert verify.WING_CHECKS == wings.checks_modules()
