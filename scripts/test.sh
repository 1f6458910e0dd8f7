#!/usr/bin/env bash
# The test command: installs dependencies, builds and runs the whole suite in a release build,
# then the core tests (formats, quants, kernels, attention, ops, models, scheduler), the text
# parsers (tokenizer, Jinja, reasoning), the server's protocol parser and training under ASan +
# UBSan. The server end-to-end suite (node + the openai client + Chromium) runs in the release stage.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
jobs=$(nproc)
stage() { echo "test.sh: $1 at ${SECONDS}s"; }  # stage times, for keeping CI under its budget

stage "release build"
bash scripts/build.sh
stage "release tests"
ctest --test-dir build -j "$jobs" --output-on-failure --timeout 600

stage "sanitizer build"
cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS_DEBUG="-O1 -g" -DWHALE_SANITIZE=ON \
  -DWHALE_TESTS_BUILD_CLI=OFF >/dev/null
ninja -C build-asan test_formats test_quants test_ops test_models test_tokenizer test_jinja test_reasoning \
  test_kernels test_attention test_batch_invariance test_scheduler test_threadpool test_server_protocol test_train_ops test_train_grad test_train_loop
stage "sanitizer tests"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir build-asan -j "$jobs" --output-on-failure --timeout 900 -E 'NOT_BUILT|^Cli\.|^TrainCli\.|^TrainGradCli\.|^server_e2e$'
stage "done"
echo "all tests passed"
