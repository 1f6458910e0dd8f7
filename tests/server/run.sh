#!/bin/sh
# ctest entry for the server end-to-end tests (node:test + the official openai client + headless
# Chromium). Exits 77 (ctest: skipped) when the npm packages are not installed:
#   npm ci --prefix tests/server
set -e
here=$(cd "$(dirname "$0")" && pwd)
if [ ! -d "$here/node_modules/openai" ] || [ ! -d "$here/node_modules/playwright-core" ]; then
  echo "skipped: tests/server/node_modules missing (run: npm ci --prefix tests/server)"
  exit 77
fi
cd "$here"
# The server runs the exact matmul path here: these tests compare token streams (concurrent vs
# sequential, a stream under attack vs alone, a continuation known to close </think>), and only
# the exact path gives the same tokens whatever the batch. The default 8-bit-activation path for
# quantized weights rounds the one-token and many-token kernels differently (test_models_fast
# covers its accuracy).
export WHALE_MATMUL="${WHALE_MATMUL:-exact}"
# One file at a time: each starts its own server, and the machine may be small.
exec node --test --test-concurrency=1 chat.test.mjs hostile.test.mjs webui.test.mjs
