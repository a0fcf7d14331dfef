#!/usr/bin/env bash
# Download, here, the wheels that training needs on the lent GPU machine and that its image lacks.
#
#   bash scripts/device_wheels.sh            # into .whl/ (ignored by git; name it in the device call's carry)
#
# The GPU machine (the workplace's `device` tool; /work/.library/device/KINDS.md) has Python 3.12 with PyTorch,
# NumPy, SciPy, scikit-image, safetensors and attrs, but not MONAI (the networks and losses) nor jsonschema (the
# model cards), and it cannot reach a package registry. SimpleITK is not needed there: without it, training resamples
# with SciPy by ITK's rules (SmoothSegNetLib/resample.py). The versions are the ones installed in this checkout's
# venv, so the GPU trains with the same code as the CPU. About 2 MB in all, against the 64 MiB a device call carries.
#
# Environment: PYTHON (default .venv/bin/python: where the versions are read), WHEELS (default .whl),
# DEVICE_PYTHON_VERSION (default 3.12).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
WHEELS=${WHEELS:-.whl}
PYVER=${DEVICE_PYTHON_VERSION:-3.12}
PACKAGES=(monai jsonschema jsonschema-specifications referencing rpds-py)

if [ ! -x "$PYTHON" ]; then
    echo "error: $PYTHON not found: run 'bash scripts/setup.sh' first (the versions are read from its venv)" >&2
    exit 2
fi
pins=()
for name in "${PACKAGES[@]}"; do
    version=$("$PYTHON" -c "import importlib.metadata as m, sys; print(m.version(sys.argv[1]))" "$name" 2>/dev/null) || {
        echo "error: $name is not installed in $PYTHON's environment: run 'bash scripts/setup.sh --test'" >&2
        exit 2
    }
    pins+=("$name==$version")
done
mkdir -p "$WHEELS"
rm -f "$WHEELS"/*.whl
platforms=()
for tag in manylinux_2_28_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64; do
    platforms+=(--platform "$tag")
done
"$PYTHON" -m pip download -q --no-deps --only-binary=:all: --python-version "$PYVER" --implementation cp \
    "${platforms[@]}" -d "$WHEELS" "${pins[@]}"
echo "wheels for Python $PYVER in $WHEELS/ ($(du -sh "$WHEELS" | cut -f1)):"
ls "$WHEELS"
