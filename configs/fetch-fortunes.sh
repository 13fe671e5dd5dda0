#!/usr/bin/env bash
# Text from another source than the training text, for data.other_source: the English sentences of
# Debian's `fortunes` package (quotations, humour, literature, science, work ... from the BSD fortune
# files, about 2.7 MB), one JSON line each, in artifacts/corpora/fortunes.jsonl. Needs apt-get (any
# Debian or Ubuntu; the package is downloaded, not installed).
set -euo pipefail
cd "$(dirname "$0")/.."
dest=artifacts/corpora/fortunes.jsonl
if [ -f "$dest" ]; then echo "$dest is there"; exit 0; fi
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && apt-get download fortunes >/dev/null 2>&1) || {
  echo "fetch-fortunes: apt-get download fortunes failed (not a Debian/Ubuntu system, or no package index: apt-get update)" >&2; exit 1; }
dpkg-deb -x "$tmp"/fortunes_*.deb "$tmp/x"
mkdir -p "$(dirname "$dest")"
"${PYTHON:-.venv/bin/python}" - "$tmp/x/usr/share/games/fortunes" "$dest" <<'PY'
import json, pathlib, re, sys
src, dest = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
skip = {"ascii-art", "art"}  # pictures made of characters, not sentences
seen, out = set(), []
for f in sorted(p for p in src.iterdir() if p.is_file() and not p.suffix and p.name not in skip):
    for entry in f.read_text(encoding="utf-8", errors="replace").split("\n%\n"):
        lines = [l for l in entry.splitlines() if not re.match(r"\s*--", l)]  # drop attributions
        text = " ".join(" ".join(lines).split())
        for s in re.split(r"(?<=[.!?])\s+(?=[A-Z])", text):
            if 6 <= len(s.split()) <= 60 and re.search(r"[a-z]", s) and s not in seen:
                seen.add(s)
                out.append(s)
tmp = dest.with_suffix(".partial")
tmp.write_text("".join(json.dumps({"text": s}) + "\n" for s in out), encoding="utf-8")
tmp.rename(dest)  # whole or not at all
print(f"{dest}: {len(out)} sentences")
PY
