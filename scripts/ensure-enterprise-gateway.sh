#!/usr/bin/env bash
# Make sure Jupyter Enterprise Gateway is installed for the gateway tests (tests/gateway) and
# print the path of the Python that runs it. Enterprise Gateway 3.3 pins jupyter_server<2,
# jupyter_client<7 and pyzmq<25, which cannot share the project's environment, so it gets a
# venv of its own, .venv/enterprise-gateway, made from PyPI with the same Python. The kernels
# it starts still run with the project's Python (their kernelspecs name it).
#
#   ENTERPRISE_GATEWAY_PYTHON="$(bash scripts/ensure-enterprise-gateway.sh)"
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv/enterprise-gateway"
python="$venv/bin/python"
spec="jupyter-enterprise-gateway==3.3.0"

if [ -x "$python" ] && "$python" -c "import enterprise_gateway" >/dev/null 2>&1; then
  echo "$python"
  exit 0
fi
base="$root/.venv/bin/python"
[ -x "$base" ] || base="$(command -v python3.11 || command -v python3)"
echo "Installing $spec into $venv (PyPI)..." >&2
rm -rf "$venv"
"$base" -m venv "$venv" >&2
"$python" -m pip install --quiet --disable-pip-version-check "$spec" >&2
"$python" -c "import enterprise_gateway" >&2
echo "$python"
