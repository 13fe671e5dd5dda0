#!/usr/bin/env bash
# In-domain prose to distil on, offline: the Python documentation's own reStructuredText sources,
# from Debian's `python3.X-doc` package (12.6 MB download for 3.11; downloaded, not installed): the
# tutorial, library reference, HOWTOs, FAQ and What's New, cut into paragraphs of prose (12-200 words;
# code, tables and directives left out, inline markup stripped). One JSON-lines file:
#   artifacts/corpora/python-docs.jsonl   about 21,000 paragraphs, 4.7 MB of text
# Held out by construction: the pages the pydoc topics are generated from (the language reference,
# built-in types, functions, exceptions, constants, string formatting, pdb) are skipped, the C API
# too, and a paragraph that shares 8 words in a row with any pydoc topic is dropped, so the corpus
# never holds a builtin:pydoc-* validation or test text. Unlabelled: data.extra_texts, for KD.
# Needs apt-get (any Debian or Ubuntu with a package index).
set -euo pipefail
cd "$(dirname "$0")/.."
dir=artifacts/corpora
out="$dir/python-docs.jsonl"
if [ -f "$out" ]; then echo "$out is there"; exit 0; fi
py="${PYTHON:-.venv/bin/python}"
ver=$("$py" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
# the doc package of this Python's version (its pydoc topics are the ones held out), else the system's
pkg="python$ver-doc"
apt-cache show "$pkg" >/dev/null 2>&1 || pkg=$(apt-cache depends python3-doc 2>/dev/null | sed -n 's/.*Depends: \(python3\.[0-9]*-doc\).*/\1/p' | head -1)
(cd "$tmp" && [ -n "$pkg" ] && apt-get download "$pkg" >/dev/null 2>&1) || {
  echo "fetch-python-docs: apt-get download python$ver-doc failed (not a Debian/Ubuntu system, or no package index: apt-get update)" >&2; exit 1; }
deb=$(ls "$tmp"/python3.*-doc_*.deb)
dpkg-deb -x "$deb" "$tmp/x"
src=$(ls -d "$tmp"/x/usr/share/doc/python3*/html/_sources | head -1)
mkdir -p "$dir"
"$py" - "$src" "$dir" <<'PY'
import json, pathlib, re, sys
src, dest = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
# pages the pydoc topics (builtin:pydoc-*) are generated from: never in this corpus
SKIP_DIRS = {"reference", "c-api", "distutils", "includes"}
SKIP_PAGES = {"library/stdtypes", "library/pdb", "library/string", "library/functions", "library/exceptions",
              "library/constants", "library/datamodel"}
ROLE = re.compile(r":[\w:+-]+:`(?:([^`<]*?)\s*<[^`>]*>|~?!?([^`]*))`")
def clean(par):
    s = ROLE.sub(lambda m: m.group(1) or m.group(2), par)  # :role:`text <target>` -> text, :role:`~a.b` -> a.b
    s = re.sub(r"`([^`<]+?)\s*<[^`>]+>`_+", r"\1", s)
    s = re.sub(r"``([^`]+)``", r"\1", s)
    s = re.sub(r"`([^`]+)`_*", r"\1", s)
    s = re.sub(r"\*\*([^*]+)\*\*|\*([^*\s][^*]*)\*", lambda m: m.group(1) or m.group(2), s)
    s = re.sub(r"\|(\w+)\|", r"\1", s)
    s = re.sub(r"^\s*(?:[-*+]|\#\.|\d+\.)\s+", "", s)
    return " ".join(s.split()).replace("::", ":")
def prose(s):
    words = s.split()
    if not 12 <= len(words) <= 200 or ">>>" in s or s.startswith((".. ", ":", "=", "+", "|")):
        return False
    alpha = sum(w.strip(".,;:()'\"").isalpha() for w in words) / len(words)
    return alpha > 0.7 and len(re.findall(r"[{}=<>\[\]_\\]", s)) < len(words) / 4 and s[-1] in ".:)"
shingles = set()
import pydoc_data.topics
for t in pydoc_data.topics.topics.values():
    w = re.findall(r"\w+", t.lower())
    shingles.update(" ".join(w[i:i + 8]) for i in range(len(w) - 7))
texts, leaked = {}, 0
for f in sorted(src.rglob("*.rst.txt")):
    rel = f.relative_to(src).as_posix().removesuffix(".rst.txt")
    if rel.split("/")[0] in SKIP_DIRS or rel in SKIP_PAGES:
        continue
    prev_literal, prev_indent, in_directive = False, 0, None
    for block in re.split(r"\n\s*\n", f.read_text(encoding="utf-8", errors="replace")):
        lines = [l for l in block.splitlines() if l.strip()]
        if not lines:
            continue
        indent = len(lines[0]) - len(lines[0].lstrip())
        literal = prev_literal and indent > prev_indent
        code_dir = in_directive is not None and indent > in_directive
        head = lines[0].strip()
        if not literal:
            prev_literal, prev_indent = block.rstrip().endswith("::"), indent
        if head.startswith(".. "):
            in_directive = indent if re.match(r"\.\. (code-block|sourcecode|doctest|testcode|testoutput|productionlist|highlight|literalinclude|toctree|index|raw|csv-table|table|list-table|image|figure)", head) else None
            continue
        if code_dir:
            continue
        in_directive = None  # not inside the code directive (code_dir above): it has ended
        if literal or any(re.fullmatch(r"[=\-~^\"'*#+]{3,}", l.strip()) for l in lines):
            continue
        s = clean(" ".join(lines))
        if not prose(s):
            continue
        w = re.findall(r"\w+", s.lower())
        if any(" ".join(w[i:i + 8]) in shingles for i in range(len(w) - 7)):
            leaked += 1
            continue
        texts[s] = None
part = dest / "python-docs.partial"
part.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts), encoding="utf-8")
part.rename(dest / "python-docs.jsonl")
print(f"{dest}/python-docs.jsonl: {len(texts)} paragraphs ({leaked} left out: they share 8 words in a row with pydoc's topics)")
PY
