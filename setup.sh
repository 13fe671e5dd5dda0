#!/usr/bin/env bash
# Creates .venv/ and installs kdpipe into it (editable) with the CPU build of onnxruntime and the
# test tools. Safe to rerun. PYTHON picks the interpreter; TORCH picks the torch requirement.
set -euo pipefail
cd "$(dirname "$0")"
python=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$python" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# torch first and pinned: 2.13.0 is the CPU build this project is tested with; an open range can
# pull a multi-GB CUDA build instead. On a GPU machine: TORCH="torch" ./setup.sh, then
# `pip install -e '.[gpu]'` after removing onnxruntime (the two builds must not be installed together).
.venv/bin/python -m pip install -q "${TORCH:-torch==2.13.0}"
.venv/bin/python -m pip install -q -e ".[cpu,dev,genai]"
echo "setup.sh: kdpipe installed in $(pwd)/.venv" >&2
