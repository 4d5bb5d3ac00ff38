"""Griffe extension: the docstrings' reStructuredText maths as arithmatex maths, for the API pages.

The docstrings write maths as optax does, ``.. math:: ...`` blocks (continuation lines indented below the directive)
and ``:math:`...``` roles, which read well in ``help()``. For the site, each block becomes ``$$ ... $$`` and each role
``$...$``; ``pymdownx.arithmatex`` (generic mode) and MathJax render them. The modules are not changed.
"""

from __future__ import annotations

import re

import griffe

ROLE = re.compile(r":math:`([^`]+)`")
BLOCK = re.compile(r"^(?P<indent>[ \t]*)\.\. math::[ \t]*(?P<first>.*)(?P<rest>(?:\n(?P=indent)[ \t]+\S.*)*)", re.M)


def _block(m: re.Match) -> str:
  indent = m["indent"]
  lines = [line.strip() for line in [m["first"], *m["rest"].splitlines()] if line.strip()]
  if indent:  # inside a list item, where Markdown cannot nest a display block: display-style inline maths
    return indent + "$\\displaystyle " + " ".join(lines) + "$"
  return "$$\n" + "\n".join(lines) + "\n$$"


def rst_math_to_arithmatex(text: str) -> str:
  """``.. math::`` blocks -> ``$$``-fenced blocks, ``:math:`x``` -> ``$x$`` (a role's line breaks become spaces).

  A block indented inside a list item becomes ``$\\displaystyle ...$`` on one line.

  Examples:
    >>> rst_math_to_arithmatex("mass :math:`M(n) =\\n  p(k)`.")
    'mass $M(n) = p(k)$.'
    >>> print(rst_math_to_arithmatex("so\\n\\n.. math:: a = b\\n   + c"))
    so
    <BLANKLINE>
    $$
    a = b
    + c
    $$
    >>> print(rst_math_to_arithmatex("* item:\\n\\n  .. math:: a\\n     = b\\n\\n  more"))
    * item:
    <BLANKLINE>
      $\\displaystyle a = b$
    <BLANKLINE>
      more
  """
  text = BLOCK.sub(_block, text)
  return ROLE.sub(lambda m: "$" + re.sub(r"\s*\n\s*", " ", m[1].strip()) + "$", text)


class RstMath(griffe.Extension):
  """Rewrites every object's docstring before mkdocstrings parses it."""

  def on_instance(self, *, obj: griffe.Object, **kwargs) -> None:  # pylint: disable=unused-argument
    if obj.docstring is not None:
      obj.docstring.value = rst_math_to_arithmatex(obj.docstring.value)
