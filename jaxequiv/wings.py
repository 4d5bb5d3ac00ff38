"""The wings: one registry entry per wing package. Data only; it imports no wing (core never imports a wing).

The package has a core (``jaxequiv/*.py``, layer 0), wings (``jaxequiv/<name>/``,
layer >= 1) and the command line (``jaxequiv/cli/``, above every wing). A module
imports its own package or lower layers only. Each ``Wing`` names what the rest
of the project reads about it:

* ``tests/layout_test.py`` takes the layers from ``layers()``;
* ``python -m jaxequiv verify`` runs each wing's ``checks`` module (``checks_modules()``);
* ``tests/wings_test.py`` checks that every wing package has an entry, that its
  API page exists, is in ``mkdocs.yml``'s nav and documents the package, and
  that its notebooks exist.

So a new wing is its package, one ``Wing`` here and its API page.

Examples:
  >>> from jaxequiv import wings
  >>> [w.name for w in wings.WINGS]
  ['lm', 'labels', 'taxonomy', 'roles']
  >>> wings.layers()
  {'core': 0, 'lm': 1, 'labels': 1, 'taxonomy': 2, 'roles': 2, 'cli': 3}
  >>> wings.checks_modules()
  ('jaxequiv.taxonomy.checks', 'jaxequiv.roles.checks')
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Wing:
  """One wing of the package.

  Attributes:
    name: the package ``jaxequiv.<name>`` (a folder ``jaxequiv/<name>/``).
    layer: >= 1; the wing imports core and wings of lower layers only (same-layer wings not at all).
    docs: its API page, relative to ``docs/`` (listed in ``mkdocs.yml``'s nav).
    notebooks: its notebooks, relative to the repository root.
    checks: a module with ``run_checks() -> [(passed, line)]`` that ``python -m jaxequiv verify``
      runs after the core checks, or None.
  """

  name: str
  layer: int
  docs: str
  notebooks: tuple[str, ...] = ()
  checks: str | None = None

  @property
  def package(self) -> str:
    return f"jaxequiv.{self.name}"


CORE_LAYER = 0
CORE_DOCS = "api/core.md"
CORE_NOTEBOOKS = ("notebooks/01_same_model_twice.ipynb",)

WINGS: tuple[Wing, ...] = (
    Wing("lm", 1, "api/lm.md", ("notebooks/02_train_both_ways.ipynb",)),
    Wing("labels", 1, "api/labels.md", ("notebooks/03_labels_as_strings.ipynb",)),
    Wing("taxonomy", 2, "api/taxonomy.md", ("notebooks/04_taxonomy.ipynb",), checks="jaxequiv.taxonomy.checks"),
    Wing("roles", 2, "api/roles.md", ("notebooks/05_roles.ipynb",), checks="jaxequiv.roles.checks"),
)

CLI_PACKAGE = "cli"
CLI_LAYER = 1 + max(w.layer for w in WINGS)
CLI_DOCS = "api/cli.md"


def layers() -> dict[str, int]:
  """Layer of ``"core"``, of each wing, and of ``"cli"`` (above every wing)."""
  return {"core": CORE_LAYER, **{w.name: w.layer for w in WINGS}, CLI_PACKAGE: CLI_LAYER}


def checks_modules() -> tuple[str, ...]:
  """The wings' ``checks`` modules, in registry order (what ``python -m jaxequiv verify`` runs)."""
  return tuple(w.checks for w in WINGS if w.checks is not None)
