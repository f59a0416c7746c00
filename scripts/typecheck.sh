#!/usr/bin/env bash
# mypy over the three import packages and the build backend. The server-side folders are mapped to prefixed import
# names by setuptools' package-dir, which mypy cannot follow through the editable-install hook,
# so a throwaway tree of symlinks gives mypy the import names.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tree="$(mktemp -d)"
trap 'rm -rf "$tree"' EXIT
ln -s "$root/async_kernel" "$tree/async_kernel"
ln -s "$root/provisioner" "$tree/async_kernel_provisioner"
ln -s "$root/server_extension" "$tree/async_kernel_server"
ln -s "$root/build_backend/async_kernel_build.py" "$tree/async_kernel_build.py"
cd "$tree"
"$root/.venv/bin/mypy" --config-file "$root/pyproject.toml" \
  -p async_kernel -p async_kernel_provisioner -p async_kernel_server -m async_kernel_build
