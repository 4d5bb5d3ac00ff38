"""``python -m jaxequiv ...``: the same as the ``jaxequiv`` console script (``jaxequiv.cli``)."""

import sys

from jaxequiv.cli import main

if __name__ == "__main__":
  sys.exit(main())
