"""The package's layout: no import cycles, and imports run downward only.

Layers come from the wing registry (``jaxequiv.wings.layers()``): core (0) < the first wings, ``lm`` and ``labels``
(1) < the essay's later wings, ``taxonomy`` and ``roles``, which build on labels-as-strings (2) < ``cli`` (3). A module
imports its own wing or a lower layer, never a wing on its own level (``lm`` and ``labels`` do not import each other)
and never upward.
"""

import ast
import pathlib
import subprocess
import sys

import pytest

from jaxequiv import wings

ROOT = pathlib.Path(__file__).parent.parent / "jaxequiv"
LAYERS = wings.layers()


def _modules() -> dict[str, pathlib.Path]:
  out = {}
  for path in sorted(ROOT.rglob("*.py")):
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
  return out


def _imports(name: str, path: pathlib.Path, known) -> set[str]:
  """jaxequiv modules that ``name`` imports (``from a import b`` counts b when b is a module); TYPE_CHECKING blocks skipped."""
  tree = ast.parse(path.read_text())
  skip = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
          for n in ast.walk(node)}
  out = set()
  for node in ast.walk(tree):
    if id(node) in skip:
      continue
    if isinstance(node, ast.Import):
      out |= {a.name for a in node.names if a.name in known}
    elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("jaxequiv"):
      subs = {f"{node.module}.{a.name}" for a in node.names} & known
      out |= subs or ({node.module} & known)
  out.discard(name)
  return out


def _layer(module: str) -> str:
  if module == "jaxequiv.__main__":
    return "cli"
  parts = module.split(".")
  return parts[1] if len(parts) > 2 or (len(parts) == 2 and parts[1] in LAYERS) else "core"


GRAPH = {m: _imports(m, p, set(_modules())) for m, p in _modules().items()}


def test_no_import_cycles():
  state, stack = {}, []

  def visit(m):
    state[m] = "open"
    stack.append(m)
    for n in sorted(GRAPH[m]):
      if state.get(n) == "open":
        pytest.fail("import cycle: " + " -> ".join(stack[stack.index(n):] + [n]))
      if n not in state:
        visit(n)
    stack.pop()
    state[m] = "done"

  for m in sorted(GRAPH):
    if m not in state:
      visit(m)


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_imports_run_downward(module):
  here = _layer(module)
  for dep in GRAPH[module]:
    there = _layer(dep)
    if module == "jaxequiv" or there == here:
      continue
    assert LAYERS[there] < LAYERS[here], f"{module} ({here}) imports {dep} ({there}): imports must run downward"


def test_the_checker_sees_a_planted_upward_import():
  planted = _imports("jaxequiv.losses", ROOT / "losses.py", set(GRAPH)) | {"jaxequiv.lm.train"}
  assert any(LAYERS[_layer(d)] > LAYERS[_layer("jaxequiv.losses")] for d in planted)
  assert LAYERS[_layer("jaxequiv.labels.trie")] == LAYERS[_layer("jaxequiv.lm.train")]  # sideways: refused too


def test_every_module_imports_and_losses_do_not_import_flax():
  code = ("import importlib, sys; mods = sys.argv[1:]; import jaxequiv.losses; assert 'flax' not in sys.modules, 'flax';"
          " [importlib.import_module(m) for m in mods]; print(len(mods))")
  mods = [m for m in sorted(GRAPH) if not m.endswith("__main__")]
  out = subprocess.run([sys.executable, "-c", code, *mods], capture_output=True, text=True, check=False)
  assert out.returncode == 0, out.stderr[-2000:]
  assert out.stdout.strip() == str(len(mods))
