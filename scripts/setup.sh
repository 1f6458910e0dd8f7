#!/usr/bin/env bash
# Installs what building and testing whale needs on a fresh Debian machine (idempotent).
set -euo pipefail
packages=(cmake ninja-build g++ ccache libgtest-dev libfmt-dev nlohmann-json3-dev libcli11-dev libpcre2-dev libutf8proc-dev pkg-config
          libcpp-httplib-dev gnuplot-nox chromium)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}" >&2
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# The server's end-to-end tests drive it with the official openai npm client and Chromium
# (playwright-core); node comes with the machine (or Debian's nodejs + npm when it is missing).
if ! command -v npm >/dev/null; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq nodejs npm >/dev/null
fi
server_tests="$(cd "$(dirname "$0")/.." && pwd)/tests/server"
if [ ! -d "$server_tests/node_modules/openai" ] || [ ! -d "$server_tests/node_modules/playwright-core" ]; then
  echo "setup: npm ci (tests/server)" >&2
  npm ci --prefix "$server_tests" --no-audit --no-fund >/dev/null
fi
