#!/usr/bin/env bash
# Set up (scripts/setup.sh --test) and run every check: ruff (lint + format), mypy, pytest.
# Extra arguments go to pytest, e.g. scripts/test.sh -k geometry
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bash scripts/setup.sh --test
venv=${SMOOTHSEGNET_VENV:-$root/.venv}
echo "== ruff"
"$venv/bin/ruff" check SmoothSegNetLib SmoothSegNet Testing bench scripts
"$venv/bin/ruff" format --check SmoothSegNetLib SmoothSegNet Testing bench scripts
echo "== mypy"
"$venv/bin/mypy"
echo "== pytest"
"$venv/bin/python" -m pytest "$@"
