#!/usr/bin/env bash
# The published docs site, with the notebooks' outputs: executes each notebook on this machine's default backend into
# build/docs_notebooks/ (git-ignored; reused while a notebook is unchanged), then builds the site strictly from them.
# The repository keeps the notebooks stripped; CI's plain `mkdocs build --strict` renders them without outputs.
#   bash scripts/build_docs.sh [--site-dir DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
JAXEQUIV_DOCS_EXECUTE=1 mkdocs build --strict "$@"
