#!/usr/bin/env bash
# whale vs llama.cpp, side by side on the same GGUF files and the same thread count.
#
#   bench/compare.sh [--quick]
#
# Builds nothing: it uses build/whale, build/bench/whale_bandwidth (ninja -C build whale
# whale_bandwidth) and llama.cpp's llama-bench. Missing model files are made with
# `whale synth` (random weights at the real shapes; llama.cpp loads them).
# For every model, ROUNDS rounds; each round runs whale then llama.cpp (interleaved, so slow
# drifts of a shared machine hit both alike) on pp$PP + tg$TG, then once per engine tg$TG at
# depth $DEPTH with -r $ROUNDS (both engines prefill the depth once per invocation, untimed).
# The memory-bandwidth probe runs before and after. Results: bench/results/<stamp>.jsonl,
# table: bench/report.py (printed, and written next to the jsonl as .md).
#
# Environment (defaults in brackets):
#   LLAMA_BENCH [/work/scratch/llama.cpp-npm/build/bin/llama-bench]   MODELS [/work/scratch/models]
#   THREADS [2]  ROUNDS [3]  PP [512; quick 128]  TG [128; quick 32]  DEPTH [4096; quick 256]
#   SPECS: models as SHAPE:TYPE[:LAYERS] ... [r1-distill-qwen-1.5b:Q8_0 r1-distill-qwen-1.5b:Q4_K_M
#          deepseek-v2-lite:Q4_K_M; quick: r1-distill-qwen-1.5b:Q4_K_M]
#   DEPTH_SPECS: the models that also run the depth test [r1-distill-qwen-1.5b:Q4_K_M
#          deepseek-v2-lite:Q4_K_M; quick: all of SPECS]
#   BUDGET: seconds after which the remaining tests are skipped (logged, and listed in the
#          report as missing) [1500; quick 300]. Synthesising a missing model is not counted.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
quick=0
if [[ ${1:-} == --quick ]]; then quick=1; shift; fi
if [[ $# -gt 0 ]]; then echo "usage: bench/compare.sh [--quick]" >&2; exit 2; fi

whale=${WHALE:-$root/build/whale}
bandwidth=${BANDWIDTH:-$root/build/bench/whale_bandwidth}
llama_bench=${LLAMA_BENCH:-/work/scratch/llama.cpp-npm/build/bin/llama-bench}
models=${MODELS:-/work/scratch/models}
threads=${THREADS:-2}
rounds=${ROUNDS:-3}
if ((quick)); then
  pp=${PP:-128}; tg=${TG:-32}; depth=${DEPTH:-256}
  specs=${SPECS:-r1-distill-qwen-1.5b:Q4_K_M}
  depth_specs=${DEPTH_SPECS:-$specs}
  budget=${BUDGET:-300}
else
  pp=${PP:-512}; tg=${TG:-128}; depth=${DEPTH:-4096}
  specs=${SPECS:-r1-distill-qwen-1.5b:Q8_0 r1-distill-qwen-1.5b:Q4_K_M deepseek-v2-lite:Q4_K_M}
  depth_specs=${DEPTH_SPECS:-r1-distill-qwen-1.5b:Q4_K_M deepseek-v2-lite:Q4_K_M}
  budget=${BUDGET:-1500}
fi

for bin in "$whale" "$bandwidth" "$llama_bench"; do
  [[ -x $bin ]] || { echo "compare.sh: missing $bin (build it first)" >&2; exit 1; }
done
mkdir -p "$models" "$root/bench/results"
stamp=$(date -u +%Y%m%dT%H%M%SZ)
out=$root/bench/results/$stamp.jsonl
start=$SECONDS
synth_seconds=0
log() { printf '[%4ds] %s\n' $((SECONDS - start)) "$*" >&2; }
# True while the time budget (not counting synthesis) has room; otherwise logs the skip.
in_budget() {
  if ((SECONDS - start - synth_seconds > budget)); then
    log "over the ${budget}s budget: skipping $*"
    printf '{"engine":"skipped","result":{"what":"%s"}}\n' "$*" >>"$out"
    return 1
  fi
}

# One JSON line per result, wrapped with what produced it.
tag() {  # engine key round
  while IFS= read -r line; do
    [[ $line == \{* ]] && printf '{"engine":"%s","model_key":"%s","round":%s,"threads":%s,"result":%s}\n' "$1" "$2" "$3" "$threads" "$line"
  done >>"$out"
}

model_file() {  # SHAPE:TYPE[:LAYERS] -> path (made if missing)
  local shape type layers f
  IFS=: read -r shape type layers <<<"$1"
  f=$models/$shape-$type${layers:+-L$layers}.gguf
  if [[ ! -f $f ]]; then
    log "synth $f"
    local t0=$SECONDS
    "$whale" synth --shape "$shape" --type "$type" ${layers:+--layers "$layers"} -t "$threads" -o "$f" >&2
    synth_seconds=$((synth_seconds + SECONDS - t0))
  fi
  echo "$f"
}

run_whale() {  # key round file args...
  local key=$1 round=$2 f=$3; shift 3
  log "whale $key $*"
  "$whale" bench -m "$f" -t "$threads" -o json "$@" | tag whale "$key" "$round" || log "whale FAILED (exit $?)"
}
run_llama() {
  local key=$1 round=$2 f=$3; shift 3
  log "llama.cpp $key $*"
  "$llama_bench" -m "$f" -t "$threads" -o jsonl "$@" 2>>"${out%.jsonl}.llama.log" | tag llama.cpp "$key" "$round" ||
    log "llama-bench FAILED (exit $?; see ${out%.jsonl}.llama.log)"
}

{
  printf '{"engine":"meta","result":{"stamp":"%s","quick":%d,"threads":%s,"rounds":%s,"pp":%s,"tg":%s,"depth":%s,' \
    "$stamp" "$quick" "$threads" "$rounds" "$pp" "$tg" "$depth"
  printf '"whale_commit":"%s","llama_bench":"%s","cpu":"%s"}}\n' "$(git -C "$root" rev-parse --short HEAD)" \
    "$llama_bench" "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
} >"$out"

log "bandwidth probe"
"$bandwidth" -t "$threads" -o json | tag bandwidth - 0

for spec in $specs; do
  model_file "$spec" >/dev/null  # in this shell, so the synthesis time is not counted
  f=$(model_file "$spec")
  for ((r = 1; r <= rounds; r++)); do
    in_budget "$spec round $r" || continue
    run_whale "$spec" "$r" "$f" -p "$pp" -n "$tg" -r 1
    run_llama "$spec" "$r" "$f" -p "$pp" -n "$tg" -r 1
  done
  if [[ " $depth_specs " == *" $spec "* ]] && ((depth > 0)) && in_budget "$spec depth $depth"; then
    run_whale "$spec" 0 "$f" -p 0 -n "$tg" -d "$depth" -r "$rounds"
    run_llama "$spec" 0 "$f" -p 0 -n "$tg" -d "$depth" -r "$rounds"
  fi
done

log "bandwidth probe"
"$bandwidth" -t "$threads" -o json | tag bandwidth - 1
log "done: $out ($((SECONDS - start - synth_seconds))s without synthesis)"
python3 "$root/bench/report.py" "$out" | tee "${out%.jsonl}.md"
