#!/usr/bin/env bash
# Set up .venv and run every check: lint, format, types, docs, and both test suites.
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
echo "== mkdocs build --strict"
mkdocs build --strict --quiet --site-dir "$(mktemp -d)"
echo "== kernel-side tests (anyio plugin: asyncio and trio)"
python -m pytest tests/kernel_side "$@"
if [ -n "$(find tests/server_side -name 'test_*.py' -print -quit)" ]; then
  echo "== server-side tests (pytest-jupyter)"
  python -m pytest -p no:anyio tests/server_side "$@"
fi
