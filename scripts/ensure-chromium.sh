#!/usr/bin/env bash
# Make sure Debian's Chromium is there for the browser tests and print its path. Installs the
# `chromium` package with apt-get when no Chromium is found and this runs as root; otherwise
# says what to install and fails. Playwright never downloads a browser here.
set -euo pipefail
find_chromium() {
  if [ -n "${CHROMIUM:-}" ]; then
    if [ -x "$CHROMIUM" ]; then
      echo "$CHROMIUM"
      return 0
    fi
    echo "CHROMIUM=$CHROMIUM is not an executable file." >&2
    return 1
  fi
  for name in chromium chromium-browser; do
    if command -v "$name" 2>/dev/null; then
      return 0
    fi
  done
  return 1
}
if find_chromium; then
  exit 0
fi
if [ -n "${CHROMIUM:-}" ]; then
  exit 1
fi
if [ "$(id -u)" != "0" ]; then
  cat >&2 <<'MSG'
No Chromium found: the browser tests (tests/browser) run JupyterLab in Debian's Chromium.
Install it with:   sudo apt-get update && sudo apt-get install -y chromium
or point CHROMIUM at a Chromium binary:   CHROMIUM=/path/to/chromium bash scripts/test.sh
MSG
  exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "No Chromium found and no apt-get to install it; set CHROMIUM=/path/to/chromium." >&2
  exit 1
fi
echo "Installing Debian's chromium for the browser tests (apt-get)..." >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update >&2
apt-get install -y chromium >&2
if ! find_chromium; then
  echo "apt-get installed chromium, but no chromium binary is on PATH." >&2
  exit 1
fi
