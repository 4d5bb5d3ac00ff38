"""The README's example runs as written, and its test command is the one CI runs."""

import contextlib
import io
import pathlib
import re

ROOT = pathlib.Path(__file__).parent.parent
README = (ROOT / "README.md").read_text()


def test_readme_example_runs_and_gradients_are_bitwise_equal():
  blocks = re.findall(r"```python\n(.*?)```", README, re.S)
  example = next(b for b in blocks if "jaxequiv.lm_nll" in b)
  assert len(example.strip().splitlines()) <= 14
  out = io.StringIO()
  with contextlib.redirect_stdout(out):
    exec(compile(example, "README.md", "exec"), {})  # pylint: disable=exec-used
  assert "mismatched_elements=0," in out.getvalue() and ", elements=0," not in out.getvalue()


def test_ci_runs_the_readme_test_command():
  commands = re.findall(r"```bash\n(.*?)```", README, re.S)
  test_cmd = next(c for c in commands if "pytest" in c).strip().split("&& ")[-1]
  ci = (ROOT / ".ci" / "run").read_text()
  assert test_cmd == 'pytest -m "not slow"' and test_cmd in ci
