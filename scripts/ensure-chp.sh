#!/usr/bin/env bash
# Make sure configurable-http-proxy (JupyterHub's default proxy, an npm package) is there for
# the JupyterHub tests (tests/jupyterhub) and print the path of its executable. Installs
# configurable-http-proxy@4 from the npm registry into .venv/node when it is not there yet;
# needs Node.js and npm (Debian: apt-get install nodejs npm). Nothing is installed globally.
#
#   CONFIGURABLE_HTTP_PROXY="$(bash scripts/ensure-chp.sh)"
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
prefix="$root/.venv/node"
chp="$prefix/node_modules/.bin/configurable-http-proxy"
spec="configurable-http-proxy@4"

if [ -x "$chp" ] && "$chp" --version >/dev/null 2>&1; then
  echo "$chp"
  exit 0
fi
for tool in node npm; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    cat >&2 <<MSG
No $tool found: the JupyterHub tests (tests/jupyterhub) run JupyterHub's proxy,
configurable-http-proxy, which is a Node.js program installed from npm.
Install Node.js and npm with:   sudo apt-get update && sudo apt-get install -y nodejs npm
then run this script again:     bash scripts/ensure-chp.sh
MSG
    exit 1
  fi
done
echo "Installing $spec into $prefix (npm)..." >&2
mkdir -p "$prefix"
npm install --prefix "$prefix" --no-audit --no-fund --loglevel=error "$spec" >&2
if ! [ -x "$chp" ] || ! "$chp" --version >/dev/null 2>&1; then
  echo "npm installed $spec, but $chp does not run." >&2
  exit 1
fi
echo "$chp"
