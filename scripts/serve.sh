#!/usr/bin/env bash
# Set up .venv, install the async kernelspecs and enable the server extension in it, then run a
# Jupyter server and print its URL and a curl line for the REST endpoint. Ctrl-C stops it.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/setup-env.sh server-run
export PATH="$root/.venv/bin:$PATH"
async-kernel install --sys-prefix
async-kernel install --sys-prefix --backend trio
jupyter server extension enable --sys-prefix async_kernel_server >/dev/null
port="${PORT:-8888}"
token="${JUPYTER_TOKEN:-$(python -c 'import secrets; print(secrets.token_hex(24))')}"
base="http://127.0.0.1:${port}/"
cat <<MSG

async-kernel Jupyter server
  URL:      ${base}?token=${token}
  kernels:  $(jupyter kernelspec list | grep -E '^\s+async' | awk '{print $1}' | paste -sd' ')
  Start a kernel and read its callers over REST:
    curl -s -X POST -H "Authorization: token ${token}" -d '{"name": "async"}' ${base}api/kernels
    curl -s -H "Authorization: token ${token}" ${base}api/async-kernel/kernels

MSG
exec jupyter server --no-browser --ip=127.0.0.1 --port="$port" --port-retries=0 \
  --IdentityProvider.token="$token"
