#!/usr/bin/env bash
# Set up .venv, install the async kernelspecs, enable the server extension and link the JupyterLab
# extension in it, then run JupyterLab and print its URL and a curl line for the REST endpoint.
# Arguments go to `jupyter lab` (e.g. `--ServerApp.root_dir=DIR`). Ctrl-C stops it.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/setup-env.sh lab
export PATH="$root/.venv/bin:$PATH"
async-kernel install --sys-prefix
async-kernel install --sys-prefix --backend trio
# What `pip install .` puts in etc/jupyter (an editable install skips data files): the config
# that enables the server extension in this environment.
config_d="$root/.venv/etc/jupyter/jupyter_server_config.d"
mkdir -p "$config_d"
cp "$root/jupyter-config/jupyter_server_config.d/async_kernel_server.json" "$config_d/"
jupyter server extension list 2>&1 | grep -A1 async_kernel_server | sed 's/^/  /'
jupyter labextension list 2>&1 | grep 'async-kernel' | sed 's/^ */  JupyterLab extension: /' || {
  echo "The JupyterLab extension async-kernel is not installed (see labextension/README.md)." >&2
  exit 1
}
port="${PORT:-8888}"
token="${JUPYTER_TOKEN:-$(python -c 'import secrets; print(secrets.token_hex(24))')}"
base="http://127.0.0.1:${port}/"
cat <<MSG

async-kernel in JupyterLab
  URL:      ${base}lab?token=${token}
  In a notebook on an async kernel, the status bar shows its callers; click it (or run
  "Kernel Callers" from the command palette or the View menu) for the panel.
  kernels:  $(jupyter kernelspec list | grep -E '^\s+async' | awk '{print $1}' | paste -sd' ')
  Start a kernel and read its callers over REST:
    curl -s -X POST -H "Authorization: token ${token}" -d '{"name": "async"}' ${base}api/kernels
    curl -s -H "Authorization: token ${token}" ${base}api/async-kernel/kernels

MSG
extra=()
if [ "$(id -u)" = "0" ]; then extra+=(--allow-root); fi
exec jupyter lab --no-browser --ip=127.0.0.1 --port="$port" --port-retries=0 \
  --IdentityProvider.token="$token" --KernelSpecManager.ensure_native_kernel=False "${extra[@]}" "$@"
