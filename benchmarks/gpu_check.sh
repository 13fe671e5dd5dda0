#!/usr/bin/env bash
# GPU proof: the default pipeline trained on the GPU (bf16) and benchmarked on onnxruntime's CPU and
# CUDA providers, plus the tests that need CUDA. Prints the report table and where each node ran.
#
# On a machine with a GPU and kdpipe installed with the gpu extra:  bash benchmarks/gpu_check.sh
# On this workplace's GPU machine (no registry there), carry onnxruntime-gpu as
# ../shared/device/README.md shows (PYTHONPATH=/tmp/ortgpu), and kdpipe's needs the image lacks as
# wheels in .whl/ (pydantic, pydantic-core, annotated-types, typing-inspection, torch-pruning,
# mlxtend), installed with --target /tmp/site; this script puts both on PYTHONPATH when present.
set -euo pipefail
cd "$(dirname "$0")/.."
for d in /tmp/site /tmp/ortgpu; do [ -d "$d" ] && export PYTHONPATH="$d:${PYTHONPATH:-}"; done
export PYTHONPATH="$(pwd):${PYTHONPATH:-}" PYTHONUNBUFFERED=1
out=${OUT:-artifacts}/gpu-check
python3 - <<'PY'
import torch  # loads the CUDA libraries the onnxruntime CUDA provider links against
import onnxruntime as ort
print("torch", torch.__version__, "cuda", torch.version.cuda, "gpu", torch.cuda.get_device_name(0))
print("onnxruntime", ort.__version__, ort.get_available_providers())
PY
python3 -m kdpipe all configs/default.yaml -q --force \
  --set device=cuda --set precision=bf16 --set "benchmark.providers=[cpu,cuda]" --set "output_dir=$out"
sed -n '/## Where the nodes ran/,/## Stages/p' "$out/report/report.md"
python3 -m pytest -q -p no:cacheprovider tests/runtime tests/training -k "cuda" -rs
