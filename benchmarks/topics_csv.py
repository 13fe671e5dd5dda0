"""A new user's labelled CSV, offline: the paragraphs of the 13 largest topics of the Python
documentation that ships with CPython (pydoc_data.topics), columns `text` and `topic` (1,068 rows on
Python 3.11). What benchmarks/README.md's "your own labelled texts" runs start from:

    python benchmarks/topics_csv.py artifacts/topics.csv
    kdpipe init --teacher hf:artifacts/teachers/all-MiniLM-L6-v2 --data csv:artifacts/topics.csv
    kdpipe all artifacts/topics.yaml
"""

from __future__ import annotations

import csv
import sys
from collections import Counter
from pathlib import Path

from kdpipe.data.text import pydoc_paragraphs


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "artifacts/topics.csv")
    rows = pydoc_paragraphs()
    top = {t for t, _ in Counter(t for _, t in rows).most_common(13)}
    kept = [(text, topic) for text, topic in rows if topic in top]
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["text", "topic"])
        w.writerows(kept)
    print(f"{out}: {len(kept)} labelled paragraphs in {len(top)} topics")


if __name__ == "__main__":
    main()
