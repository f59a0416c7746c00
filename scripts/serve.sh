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
# What `pip install .` puts in etc/jupyter (an editable install skips data files): the config
# that enables the server extension in this environment.
config_d="$root/.venv/etc/jupyter/jupyter_server_config.d"
mkdir -p "$config_d"
cp "$root/jupyter-config/jupyter_server_config.d/async_kernel_server.json" "$config_d/"
jupyter server extension list 2>&1 | grep -A1 async_kernel_server | sed 's/^/  /'
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
extra=()
if [ "$(id -u)" = "0" ]; then extra+=(--allow-root); fi
exec jupyter server --no-browser --ip=127.0.0.1 --port="$port" --port-retries=0 \
  --IdentityProvider.token="$token" --KernelSpecManager.ensure_native_kernel=False "${extra[@]}"
