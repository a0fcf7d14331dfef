"""``python -m SmoothSegNetLib`` is the same as the ``smoothsegnet`` command."""

from __future__ import annotations

import sys

from SmoothSegNetLib.cli import main

if __name__ == "__main__":
    sys.exit(main())
