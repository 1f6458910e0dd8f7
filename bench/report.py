#!/usr/bin/env python3
"""Markdown table from bench/compare.sh results (one or more .jsonl files).

Per model and test: whale and llama.cpp median tokens/s over all samples of all rounds, the
ratio, and for tg tests the weight bytes one token reads (from `whale bench`, the same file for
both engines) × t/s = achieved GB/s, against the median read bandwidth of whale_bandwidth.
"""
import json
import statistics
import sys
from collections import defaultdict


def test_name(r):
    n_p, n_g = r.get("n_prompt", 0), r.get("n_gen", 0)
    d = r.get("depth", r.get("n_depth", 0)) or 0
    name = f"pp{n_p}" if n_p > 0 else f"tg{n_g}"
    return name + (f" @ d{d}" if d else "")


def main(paths):
    samples = defaultdict(list)  # (model, test, engine) -> t/s samples
    bytes_per_token = {}  # (model, test) -> weight bytes a token reads
    bw = defaultdict(list)  # probe test -> GB/s samples
    meta, order, skipped = {}, [], []
    for path in paths:
        with open(path) as f:
            for line in f:
                line = line.strip()
                if not line:
                    continue
                rec = json.loads(line)
                eng, r = rec["engine"], rec["result"]
                if eng == "meta":
                    meta = r
                    continue
                if eng == "skipped":
                    skipped.append(r["what"])
                    continue
                if eng == "bandwidth":
                    bw[r["test"]] += r["samples_gbps"]
                    continue
                key = (rec["model_key"], test_name(r))
                if key not in order:
                    order.append(key)
                samples[key + (eng,)] += r["samples_ts"]
                if eng == "whale" and "weight_bytes_per_token" in r:
                    bytes_per_token[key] = r["weight_bytes_per_token"]
    read_bw = statistics.median(bw["read"]) if bw["read"] else None

    out = []
    if meta:
        out.append(f"Run {meta.get('stamp')} on {meta.get('cpu')}, {meta.get('threads')} threads, "
                   f"whale {meta.get('whale_commit')}, {meta.get('rounds')} rounds"
                   + (" (--quick)" if meta.get("quick") else "") + ".")
    if bw:
        out.append("Memory bandwidth (whale_bandwidth, median GB/s): "
                   + ", ".join(f"{k} {statistics.median(v):.1f}" for k, v in bw.items()) + ".")
    out.append("")
    out.append("| model | test | whale t/s | llama.cpp t/s | whale / llama.cpp | whale GB/s | % of read bandwidth | samples (w / l) |")
    out.append("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for key in order:
        w, l = samples.get(key + ("whale",), []), samples.get(key + ("llama.cpp",), [])
        wm = statistics.median(w) if w else None
        lm = statistics.median(l) if l else None
        ratio = f"{wm / lm:.2f}x" if wm and lm else "-"
        gbps = pct = "-"
        if wm and key in bytes_per_token:
            g = bytes_per_token[key] * wm / 1e9
            gbps = f"{g:.1f}"
            if read_bw:
                pct = f"{100 * g / read_bw:.0f}%"
        fmt = lambda x: f"{x:.2f}" if x else "-"
        out.append(f"| {key[0]} | {key[1]} | {fmt(wm)} | {fmt(lm)} | {ratio} | {gbps} | {pct} | {len(w)} / {len(l)} |")
    if skipped:
        out.append("")
        out.append("Skipped (over the time budget): " + "; ".join(skipped) + ".")
    print("\n".join(out))


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: bench/report.py RESULTS.jsonl ...")
    main(sys.argv[1:])
