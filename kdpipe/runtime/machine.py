"""The machine a figure was measured on: CPU model and the SIMD features that decide which int8
kernels onnxruntime can use (AVX2 only vs AVX-512 VNNI changes int8's speed), cores, GPU."""

from __future__ import annotations

import os
import platform

import torch


def default_threads() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def cpu_model_and_flags() -> tuple[str, set[str]]:
    model, flags = platform.processor(), set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    model = value.strip()
                elif key.strip() == "flags":
                    flags = set(value.split())
                    break
    except OSError:
        pass
    return model, flags


def cpu_has_bf16() -> bool:
    """Whether this CPU computes bf16 matrix products natively (AVX512-BF16 or AMX): there bf16
    autocast makes a MiniLM training step about 0.6-0.7x as long as fp32's (benchmarks/adam_step.py);
    elsewhere it is emulated, and slower."""
    return bool(cpu_model_and_flags()[1] & {"avx512_bf16", "amx_bf16"})


def machine_info() -> dict:
    """CPU model and the SIMD features that decide which int8 kernels onnxruntime can use (and
    whether bf16 training is native)."""
    model, flags = cpu_model_and_flags()
    simd = [f for f in ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8", "avx512_bf16", "amx_bf16")
            if f in flags]
    info = {"cpu": model, "cores": default_threads(), "simd": simd, "system": platform.platform()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
        info["cuda_runtime"] = torch.version.cuda
        info["gpu_driver"] = _nvidia_driver()
    return info


def _nvidia_driver() -> str | None:
    import subprocess

    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=10)
        return out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else None
    except (OSError, subprocess.SubprocessError):
        return None
