#!/usr/bin/env bash
# Create (or reuse) .venv with Python >= 3.11 and install the project editable with the given
# extras. Sourced by serve.sh and test.sh; needs nothing but a Python 3.11+ on PATH.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
extras="${1:-dev}"
python_bin="${PYTHON:-}"
if [ -z "$python_bin" ]; then
  for candidate in python3.13 python3.12 python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1 &&
      "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      python_bin="$candidate"
      break
    fi
  done
fi
if [ -z "$python_bin" ]; then
  echo "async-kernel needs Python >= 3.11 on PATH (or PYTHON=/path/to/python)." >&2
  exit 1
fi
if [ ! -x "$root/.venv/bin/python" ]; then
  "$python_bin" -m venv "$root/.venv"
fi
"$root/.venv/bin/python" -m pip install --quiet --upgrade pip
"$root/.venv/bin/python" -m pip install --quiet -e "$root[$extras]"
# The JupyterLab extension, as `jupyter labextension develop` links it: the editable install
# built it into server_extension/labextension/ (build_backend/async_kernel_build.py); a wheel
# install puts the same files in share/jupyter/labextensions/ itself.
if [ -f "$root/server_extension/labextension/package.json" ]; then
  labextensions="$root/.venv/share/jupyter/labextensions"
  mkdir -p "$labextensions"
  ln -sfn "$root/server_extension/labextension" "$labextensions/async-kernel"
fi
