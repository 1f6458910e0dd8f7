#!/usr/bin/env bash
# Tokenizer throughput on one core (taskset), side by side in one run: whale, llama.cpp (same
# vocabulary through `whale convert-vocab`), and the reference JS library. See RESULTS.md.
#
#   LLAMA=/path/to/llama.cpp  a llama.cpp checkout built with `ninja -C build llama-tokenize`
#   JSTOK=/path/to/jstok      a folder where `npm install @huggingface/tokenizers@0.2.0` was run
#   bench/tokenizer/run.sh    (from anywhere; whale must be built in build/)
#
# Env: WORK (scratch folder, default /tmp/whale-tokbench), CORPORA ("fixtures locale"), MB (5),
# REPS (5; JS_REPS 3: the JS library is ~30x slower), CPU (0: the core runs are pinned to).
# Writes WORK/results.jsonl and prints the tables; the ids of whale, llama-tokenize and JS are
# compared whole.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
HERE=$ROOT/bench/tokenizer
FIX=${FIX:-$ROOT/../shared/fixtures/tokenizers}
WORK=${WORK:-/tmp/whale-tokbench}
: "${LLAMA:?set LLAMA to a built llama.cpp checkout}" "${JSTOK:?set JSTOK to a folder with @huggingface/tokenizers installed}"
CORPORA=${CORPORA:-fixtures locale} MB=${MB:-5} REPS=${REPS:-5} JS_REPS=${JS_REPS:-3} CPU=${CPU:-0}
PIN="nice -n -10 taskset -c $CPU"  # ahead of background builds
mkdir -p "$WORK"
WHALE=$WORK/whale
cp "$ROOT/build/whale" "$WHALE"  # a rebuild in build/ mid-run must not change what is measured
: > "$WORK/results.jsonl"
printf 'x' > "$WORK/tiny.txt"

c++ -O2 -std=c++17 "$HERE/llama_bench.cpp" -I"$LLAMA/include" -I"$LLAMA/ggml/include" \
    -L"$LLAMA/build/bin" -lllama -Wl,-rpath,"$LLAMA/build/bin" -o "$WORK/llama_bench"

record() {  # record CORPUS TOKENIZER IMPL JSON_LINE
  python3 -c 'import json,sys; d=json.loads(sys.argv[4]); d.update(corpus=sys.argv[1], tokenizer=sys.argv[2], impl=sys.argv[3]); print(json.dumps(d))' \
    "$@" >> "$WORK/results.jsonl"
}
wall() { /usr/bin/time -f %e -o "$WORK/wall" "$@" > /dev/null && cat "$WORK/wall"; }

for corpus in $CORPORA; do
  text=$WORK/$corpus.txt
  python3 "$HERE/make_corpus.py" "$corpus" "$text" --mb "$MB"
  echo "corpus $corpus: $(wc -c < "$text") bytes, sha256 $(sha256sum "$text" | cut -c1-16)"
  for tok in deepseek-v3 qwen llama3; do
    gguf=$WORK/$tok.gguf
    "$WHALE" convert-vocab -m "$FIX/$tok" -o "$gguf" > /dev/null
    echo "  $tok"
    record "$corpus" "$tok" whale "$($PIN "$WHALE" bench-tokenizer -m "$FIX/$tok" -f "$text" -r "$REPS")"
    record "$corpus" "$tok" llama.cpp "$($PIN "$WORK/llama_bench" "$gguf" "$text" "$REPS")"
    # llama-tokenize end to end, and the same on a 1-byte file (load and start-up), 3 times each.
    ltok=("$LLAMA/build/bin/llama-tokenize" -m "$gguf" --ids --no-bos --no-escape --log-disable)
    full=() tiny=()
    for r in 1 2 3; do
      full+=("$(wall $PIN "${ltok[@]}" -f "$text")") tiny+=("$(wall $PIN "${ltok[@]}" -f "$WORK/tiny.txt")")
    done
    record "$corpus" "$tok" llama-tokenize "{\"full_s\": [$(IFS=,; echo "${full[*]}")], \"tiny_s\": [$(IFS=,; echo "${tiny[*]}")]}"
    record "$corpus" "$tok" js "$(cd "$JSTOK" && $PIN node "$HERE/bench.mjs" "$FIX/$tok" "$text" "$JS_REPS" "$WORK/ids.js")"
    # The ids themselves, whole: whale tokenize, llama-tokenize and the last JS encode.
    "$WHALE" tokenize -m "$FIX/$tok" --no-special < "$text" > "$WORK/ids.whale"
    "${ltok[@]}" -f "$text" | tr -d '[] ' > "$WORK/ids.llama"
    record "$corpus" "$tok" ids "$(python3 "$HERE/report.py" ids "$WORK/ids.whale" "$WORK/ids.llama" "$WORK/ids.js")"
  done
done
python3 "$HERE/report.py" table "$WORK/results.jsonl"
