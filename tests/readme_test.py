"""The README's example runs as written, and its test command is the one CI runs."""

import contextlib
import io
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).parent.parent
README = (ROOT / "README.md").read_text()


EXAMPLES = [b for b in re.findall(r"```python\n(.*?)```", README, re.S) if "jaxequiv.lm_nll" in b]


def test_readme_has_the_linen_nnx_and_equinox_recipes():
  assert len(EXAMPLES) == 3
  assert "flax.linen" in EXAMPLES[0] and "flax.nnx" in EXAMPLES[1] and "equinox" in EXAMPLES[2]


@pytest.mark.parametrize("index", range(3), ids=["linen", "nnx", "equinox"])
def test_readme_example_runs_and_gradients_are_bitwise_equal(index):
  example = EXAMPLES[index]
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
