"""The README's example runs as written, and its test command is the one CI runs."""

import contextlib
import io
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).parent.parent
README = (ROOT / "README.md").read_text()


EXAMPLES = [b for b in re.findall(r"```python\n(.*?)```", README, re.S) if "jaxequiv.lm_nll" in b]


def test_readme_has_the_linen_recipe_and_links_the_others():
  assert len(EXAMPLES) == 1 and "flax.linen" in EXAMPLES[0]
  assert "docs/own_model.md" in README  # the NNX and Equinox recipes (tests/docs_test.py runs them)


def test_readme_is_a_front_door():
  assert len(README.splitlines()) <= 200  # the verify table, the commands and the measured table, rendered


def test_readme_example_runs_and_gradients_are_bitwise_equal():
  example = EXAMPLES[0]
  assert len(example.strip().splitlines()) <= 20
  out = io.StringIO()
  with contextlib.redirect_stdout(out):
    exec(compile(example, "README.md", "exec"), {})  # pylint: disable=exec-used
  assert "mismatched_elements=0," in out.getvalue() and ", elements=0," not in out.getvalue()


def test_ci_runs_the_readme_test_command():
  commands = re.findall(r"```bash\n(.*?)```", README, re.S)
  test_cmd = next(c for c in commands if "pytest" in c).strip().split("&& ")[-1]
  ci = (ROOT / ".ci" / "run").read_text()
  assert test_cmd == 'pytest -m "not slow"' and test_cmd in ci


def test_the_timed_commands_are_the_readme_s_commands():
  """results/readme_commands.json (the README's times) ran exactly the README's current commands, in order."""
  import importlib.util  # pylint: disable=import-outside-toplevel
  import json  # pylint: disable=import-outside-toplevel
  spec = importlib.util.spec_from_file_location("readme_commands", ROOT / "scripts" / "readme_commands.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  recorded = json.loads((ROOT / "results" / "readme_commands.json").read_text())["data"]["commands"]
  assert [r["command"] for r in recorded] == module.commands(README)
  assert module.commands(README)  # the README has commands to time
