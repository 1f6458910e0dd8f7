#!/usr/bin/env python3
"""Helpers of run.sh.

  report.py ids WHALE LLAMA JS     compare three comma-separated id files; prints one JSON line
  report.py table RESULTS.jsonl    the Markdown tables of RESULTS.md
"""
import json
import statistics
import sys


def read_ids(path):
    s = open(path).read().strip()
    return [int(x) for x in s.split(",")] if s else []


def compare(paths):
    whale, llama, js = (read_ids(p) for p in paths)

    def diff(a, b):  # index of the first difference, or None
        i = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
        return None if a == b else i

    print(json.dumps({"whale": len(whale), "llama": len(llama), "js": len(js),
                      "whale_vs_js": diff(whale, js), "llama_vs_js": diff(llama, js)}))


def table(path):
    rows = {}
    for line in open(path):
        d = json.loads(line)
        rows.setdefault((d["corpus"], d["tokenizer"]), {})[d["impl"]] = d
    corpus = None
    for (c, tok), r in rows.items():
        if c != corpus:
            corpus = c
            mb = r["whale"]["bytes"] / 1e6
            print(f"\n### corpus `{c}` ({r['whale']['bytes']:,} bytes)\n")
            print("| tokenizer | whale MB/s (cold / warm) | llama.cpp MB/s (API / llama-tokenize) "
                  "| JS MB/s (cold / warm) | whale / llama.cpp | tokens whale / llama.cpp / JS | ids |")
            print("|---|---|---|---|---|---|---|")
        w, l, lt, js, ids = (r[k] for k in ("whale", "llama.cpp", "llama-tokenize", "js", "ids"))
        mb = w["bytes"] / 1e6
        lt_mb_s = mb / (statistics.median(lt["full_s"]) - statistics.median(lt["tiny_s"]))
        same = ids["whale_vs_js"] is None and ids["llama_vs_js"] is None
        note = "all identical" if same else (
            f"whale≠JS at {ids['whale_vs_js']}" if ids["whale_vs_js"] is not None else "whale = JS") + (
            f"; llama.cpp≠JS at {ids['llama_vs_js']}" if ids["llama_vs_js"] is not None else "")
        print(f"| {tok} | **{w['cold_mb_s']:.2f}** / {w['warm_mb_s']:.2f} | **{l['cold_mb_s']:.2f}** / {lt_mb_s:.2f} "
              f"| {js['cold_mb_s']:.2f} / {js['warm_mb_s']:.2f} | **{w['cold_mb_s'] / l['cold_mb_s']:.2f}x** "
              f"| {w['tokens']:,} / {l['tokens']:,} / {js['tokens']:,} | {note} |")


if __name__ == "__main__":
    if sys.argv[1] == "ids":
        compare(sys.argv[2:5])
    else:
        table(sys.argv[2])
