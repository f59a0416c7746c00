#!/usr/bin/env bash
# Set up .venv and run every check: lint, format, types, the JupyterLab extension's unit tests,
# docs, and the five test suites (kernel side, server side, browser, JupyterHub, gateways) in
# one pytest session. Extra arguments go to pytest: `-k NAME` selects across the suites, so it
# passes when NAME matches tests of any one of them (and fails, with pytest's exit code 5, when
# it matches none).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/setup-env.sh dev
export PATH="$root/.venv/bin:$PATH"
# Kernels and servers started by the tests must not read the developer's own Jupyter config.
export JUPYTER_PLATFORM_DIRS=1
export NO_MKDOCS_2_WARNING=1

echo "== ruff"
ruff check .
ruff format --check .
echo "== mypy"
bash scripts/typecheck.sh
# Node for jest and the hub's proxy: the machine's, else from PyPI (scripts/ensure-node.sh).
node_bin="$(bash scripts/ensure-node.sh)"
if [ -n "$node_bin" ]; then export PATH="$node_bin:$PATH"; fi
echo "== labextension: TypeScript unit tests (jest)"
# node_modules is there: the set-up's editable install built the extension (npm ci).
(cd labextension && npm test --silent)
echo "== mkdocs build --strict"
mkdocs build --strict --quiet --site-dir "$(mktemp -d)"
echo "== tests: kernel side, server side, browser (JupyterLab in Debian's Chromium), JupyterHub, gateways"
CHROMIUM="$(bash scripts/ensure-chromium.sh)"
export CHROMIUM
# tests/jupyterhub runs a real JupyterHub, whose proxy (configurable-http-proxy) comes from npm
# into .venv/node.
CONFIGURABLE_HTTP_PROXY="$(bash scripts/ensure-chp.sh)"
export CONFIGURABLE_HTTP_PROXY
# tests/gateway runs jupyter-kernel-gateway (the test extra) and Enterprise Gateway, whose pins
# need a venv of its own (.venv/enterprise-gateway, from PyPI).
ENTERPRISE_GATEWAY_PYTHON="$(bash scripts/ensure-enterprise-gateway.sh)"
export ENTERPRISE_GATEWAY_PYTHON
# The same run as plain `pytest` from the root: pyproject.toml lists the five suites, each
# folder's conftest.py configures its own. Extra arguments select within all of them.
python -m pytest "$@"
