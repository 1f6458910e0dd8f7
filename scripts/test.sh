#!/usr/bin/env bash
# The test command: installs dependencies, builds and runs the whole suite in a release build,
# then the core tests (formats, quants, ops, models) and the text parsers (tokenizer, Jinja,
# reasoning) under ASan + UBSan.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
jobs=$(nproc)

bash scripts/build.sh
ctest --test-dir build -j "$jobs" --output-on-failure --timeout 600

cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS_DEBUG="-O1 -g" -DWHALE_SANITIZE=ON >/dev/null
ninja -C build-asan test_formats test_quants test_ops test_models test_tokenizer test_jinja test_reasoning
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir build-asan -j "$jobs" --output-on-failure --timeout 900 -E 'NOT_BUILT|^Cli\.'
echo "all tests passed"
