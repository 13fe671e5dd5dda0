#!/usr/bin/env bash
# General English text to distil on, offline: Princeton WordNet 3.0 from Debian's `wordnet-base`
# package (6.5 MB download; downloaded, not installed). Two JSON-lines files in artifacts/corpora/:
#   wordnet-examples.jsonl  the usage examples quoted in the glosses ("they stipulated to release all
#                           the prisoners"): about 29,600 sentences of everyday English, 5-60 words
#   wordnet-glosses.jsonl   the definitions themselves ("a dwelling that serves as living quarters
#                           for one or more families"): about 110,000 phrases
# Needs apt-get (any Debian or Ubuntu with a package index).
set -euo pipefail
cd "$(dirname "$0")/.."
dir=artifacts/corpora
if [ -f "$dir/wordnet-examples.jsonl" ] && [ -f "$dir/wordnet-glosses.jsonl" ]; then echo "$dir/wordnet-*.jsonl are there"; exit 0; fi
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && apt-get download wordnet-base >/dev/null 2>&1) || {
  echo "fetch-wordnet: apt-get download wordnet-base failed (not a Debian/Ubuntu system, or no package index: apt-get update)" >&2; exit 1; }
dpkg-deb -x "$tmp"/wordnet-base_*.deb "$tmp/x"
mkdir -p "$dir"
"${PYTHON:-.venv/bin/python}" - "$tmp/x/usr/share/wordnet" "$dir" <<'PY'
import json, pathlib, re, sys
src, dest = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
examples, glosses = {}, {}  # dicts: unique, in file order
for pos in ("noun", "verb", "adj", "adv"):
    for line in (src / f"data.{pos}").read_text(encoding="utf-8", errors="replace").splitlines():
        if line.startswith("  ") or " | " not in line:  # the licence header
            continue
        gloss = line.split(" | ", 1)[1]
        for q in re.findall(r'"([^"]+)"', gloss):
            q = " ".join(q.split())
            if 5 <= len(q.split()) <= 60:
                examples[q] = None
        d = " ".join(re.sub(r'"[^"]*"', "", gloss).split()).strip(" ;")
        if 4 <= len(d.split()) <= 60:
            glosses[d] = None
for name, texts in (("wordnet-examples", examples), ("wordnet-glosses", glosses)):
    part = dest / f"{name}.partial"
    part.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts), encoding="utf-8")
    part.rename(dest / f"{name}.jsonl")  # whole or not at all
    print(f"{dest / name}.jsonl: {len(texts)} texts")
PY
