#!/usr/bin/env python3
"""Deterministic mixed-language text for the tokenizer benchmark (written outside the repo).

  make_corpus.py fixtures OUT [--mb 8] [--seed 1]
      every distinct `text` of shared/fixtures/tokenizers/*/encode.jsonl and every message
      content of shared/fixtures/templates/*.jsonl (~9 KB in all: 20 categories, 12 scripts,
      code, numbers, emoji, special tokens), shuffled with a fixed seed and repeated until
      OUT holds --mb MB. Very repetitive: word caches hit almost always.
  make_corpus.py locale OUT [--mb 8] [--seed 1]
      the translations in this machine's /usr/share/locale/*/LC_MESSAGES/*.mo (Debian's
      packages: ~100 languages of real UI text), files in seeded order until --mb MB. Far less
      repetitive; depends on which packages are installed (run.sh prints its sha256).
"""
import argparse
import glob
import gettext
import json
import os
import random

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = os.environ.get("WHALE_SHARED", os.path.join(HERE, "..", "..", "..", "shared"))


def valid(s):
    try:
        s.encode("utf-8")
        return True
    except UnicodeEncodeError:  # lone surrogates from JSON escapes
        return False


def fixture_texts():
    texts = set()
    for f in glob.glob(os.path.join(SHARED, "fixtures/tokenizers/*/encode.jsonl")):
        texts |= {json.loads(line)["text"] for line in open(f, encoding="utf-8")}
    for f in glob.glob(os.path.join(SHARED, "fixtures/templates/*.jsonl")):
        for line in open(f, encoding="utf-8"):
            for m in json.loads(line)["messages"]:
                for key in ("content", "reasoning_content"):
                    if isinstance(m.get(key), str):
                        texts.add(m[key])
    return sorted(t for t in texts if t and valid(t))


def locale_texts(rng):
    files = sorted(glob.glob("/usr/share/locale/*/LC_MESSAGES/*.mo"))
    rng.shuffle(files)
    for f in files:
        try:
            with open(f, "rb") as fp:
                catalog = gettext.GNUTranslations(fp)._catalog
        except Exception:
            continue
        msgs = [v for k, v in sorted(catalog.items(), key=str) if k and isinstance(v, str) and valid(v)]
        yield "\n".join(msgs)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("source", choices=["fixtures", "locale"])
    ap.add_argument("out")
    ap.add_argument("--mb", type=float, default=8)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    rng = random.Random(a.seed)
    target = int(a.mb * 1e6)
    parts, size = [], 0
    if a.source == "fixtures":
        texts = fixture_texts()
        while size < target:
            rng.shuffle(texts)
            for t in texts:
                parts.append(t)
                size += len(t.encode()) + 2
    else:
        for t in locale_texts(rng):
            parts.append(t)
            size += len(t.encode()) + 2
            if size >= target:
                break
    data = "\n\n".join(parts).encode()[:target]
    data = data.decode("utf-8", errors="ignore").encode()  # do not end inside a character
    with open(a.out, "wb") as f:
        f.write(data)


if __name__ == "__main__":
    main()
