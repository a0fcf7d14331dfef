#!/usr/bin/env bash
# Set up (scripts/setup.sh --test) and run every check: ruff (lint + format), mypy, pytest.
# Extra arguments go to pytest, e.g. scripts/test.sh -k geometry
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bash scripts/setup.sh --test
venv=${SMOOTHSEGNET_VENV:-$root/.venv}
paths=()
for p in SmoothSegNetLib SmoothSegNet Testing bench scripts; do [ -e "$p" ] && paths+=("$p"); done
echo "== ruff"
"$venv/bin/ruff" check "${paths[@]}"
"$venv/bin/ruff" format --check "${paths[@]}"
echo "== mypy"
"$venv/bin/mypy"
echo "== pytest"
# Free space where the environment and the tests write (a full disk once failed CI with no other sign)
df -h "$root" "${TMPDIR:-/tmp}" || true
"$venv/bin/python" -m pytest "$@"
