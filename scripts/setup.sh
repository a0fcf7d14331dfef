#!/usr/bin/env bash
# Set up SmoothSegNet in a virtual environment (.venv at the repository root, or $SMOOTHSEGNET_VENV).
#   scripts/setup.sh           the engine and its command line, with PyTorch (CPU build) for training and export
#                              and scikit-learn for fitting the liver scan's score model
#   scripts/setup.sh --test    also the test tools and the Debian tools the tests use
#                              (dicom3tools, orthanc, orthanc-dicomweb, dcmtk, fonts-dejavu-core and the Qt
#                              libraries PySide6 needs; needs root or sudo)
# A torch-free, CPU-only engine is just 'pip install .' (docs/onnx-runtime.md).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv=${SMOOTHSEGNET_VENV:-$root/.venv}
with_test=0
[ "${1:-}" = "--test" ] && with_test=1

python=${PYTHON:-python3}
if [ ! -x "$venv/bin/python" ]; then
  "$python" -m venv "$venv"
fi
# No wheel cache: the environment is about 3 GB, a cached copy of its wheels would double that on disk.
pip=("$venv/bin/python" -m pip --disable-pip-version-check --no-cache-dir -q)
# The CPU build of torch first: a bare "torch" requirement would pull a multi-GB CUDA build.
if ! "$venv/bin/python" -c "import torch" >/dev/null 2>&1; then
  "${pip[@]}" install "torch==${SMOOTHSEGNET_TORCH_VERSION:-2.13.0}"
fi
if [ $with_test = 1 ]; then
  "${pip[@]}" install -e "$root[test]"
  need=()
  command -v dciodvfy >/dev/null || need+=(dicom3tools)
  { command -v Orthanc >/dev/null || [ -x /usr/sbin/Orthanc ]; } || need+=(orthanc)
  [ -e /usr/share/orthanc/plugins/libOrthancDicomWeb.so ] || need+=(orthanc-dicomweb)
  command -v dcmsend >/dev/null || need+=(dcmtk)
  # The panel test (Testing/test_slicer_panel_pyside.py): PySide6's Qt libraries and a font to draw text with.
  [ -e /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || need+=(fonts-dejavu-core)
  "$venv/bin/python" -c "import PySide6.QtWidgets" >/dev/null 2>&1 ||
    need+=(libegl1 libgl1 libfontconfig1 libxkbcommon0 libdbus-1-3 libglib2.0-0)
  if [ ${#need[@]} -gt 0 ]; then
    sudo=""
    [ "$(id -u)" = 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  fi
else
  "${pip[@]}" install -e "$root[torch,fit]"
fi
echo "SmoothSegNet is set up in $venv (run: $venv/bin/smoothsegnet --help)"
