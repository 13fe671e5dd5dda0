"""onnxruntime sessions: provider choice, thread count, and detection of a silent CPU fallback."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import metadata

from kdpipe.errors import KdpipeError

PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}


def ort():
    """Import onnxruntime, refusing the broken case of the CPU and GPU builds installed together."""
    dists = []
    for name in ("onnxruntime", "onnxruntime-gpu"):
        try:
            metadata.version(name)
            dists.append(name)
        except metadata.PackageNotFoundError:
            pass
    if len(dists) > 1:
        raise KdpipeError(
            "both onnxruntime and onnxruntime-gpu are installed; they overwrite each other's files. "
            "Keep one: pip uninstall -y onnxruntime onnxruntime-gpu && pip install 'kdpipe[cpu]' (or 'kdpipe[gpu]')"
        )
    try:
        import onnxruntime
    except ImportError:
        raise KdpipeError("onnxruntime is not installed: pip install 'kdpipe[cpu]' (or 'kdpipe[gpu]' for CUDA)") from None
    return onnxruntime


@dataclass
class SessionInfo:
    requested: str  # cpu | cuda
    provider: str | None  # what really runs the graph's first partition, None when no session
    available: bool
    fallback: bool = False
    reason: str = ""


def provider_status(provider: str) -> SessionInfo:
    """Can this onnxruntime build run `provider` at all? (no session is made)"""
    rt = ort()
    wanted = PROVIDERS[provider]
    if wanted in rt.get_available_providers():
        return SessionInfo(provider, None, True)
    if provider == "cuda":
        build = "onnxruntime-gpu" if _installed("onnxruntime-gpu") else "onnxruntime (the CPU build)"
        reason = (
            f"not available: {build} offers {', '.join(rt.get_available_providers())}; "
            "install kdpipe[gpu] on a machine with CUDA and cuDNN libraries"
        )
    else:
        reason = f"not available in this onnxruntime build ({', '.join(rt.get_available_providers())})"
    return SessionInfo(provider, None, False, reason=reason)


def make_session(path, provider: str = "cpu", threads: int = 0):
    """Returns (session or None, SessionInfo). A CUDA session that fell back to CPU is flagged."""
    rt = ort()
    info = provider_status(provider)
    if not info.available:
        return None, info
    opts = rt.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
    opts.log_severity_level = 3
    chain = [PROVIDERS[provider]] + ([PROVIDERS["cpu"]] if provider != "cpu" else [])
    try:
        sess = rt.InferenceSession(str(path), sess_options=opts, providers=chain)
    except Exception as e:
        if provider == "cpu":
            raise
        return None, SessionInfo(provider, None, False, reason=f"session failed: {' '.join(str(e).split())[:200]}")
    actual = sess.get_providers()[0]
    info.provider = actual
    if actual != PROVIDERS[provider]:
        info.fallback = True
        info.reason = f"fell back to {actual} (the {PROVIDERS[provider]} did not load; CUDA/cuDNN libraries missing?)"
    return sess, info


def _installed(name: str) -> bool:
    try:
        metadata.version(name)
        return True
    except metadata.PackageNotFoundError:
        return False
