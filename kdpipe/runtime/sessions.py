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
        raise KdpipeError(
            "onnxruntime is not installed: pip install 'kdpipe[cpu]' (or 'kdpipe[gpu]' for CUDA)"
        ) from None
    return onnxruntime


class InputName(str):
    """An ONNX input's name that also carries its shape (ints for fixed axes, names or None for dynamic
    ones), so a task can fill inputs whose fixed sizes only the graph knows: a language model's empty
    past key/values, [batch, heads, 0, head size]."""
    shape: tuple = ()


def input_names(source) -> list[InputName]:
    """The inputs of an onnxruntime session, or of an ONNX file, by name, each with its shape."""
    if hasattr(source, "get_inputs"):
        specs = [(i.name, tuple(i.shape)) for i in source.get_inputs()]
    else:
        import onnx

        graph = onnx.load(str(source), load_external_data=False).graph
        specs = [(i.name, tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or None)
                                for d in i.type.tensor_type.shape.dim)) for i in graph.input]
    out = []
    for name, shape in specs:
        n = InputName(name)
        n.shape = shape
        out.append(n)
    return out


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


def timed_call(sess, feeds: dict, provider: str, bind: bool | None = None):
    """The call the benchmark times. On CUDA, inputs and outputs stay on the device through IO
    binding, so host-device copies are not counted as model latency; onnxruntime synchronises the
    CUDA stream at the end of each run, and synchronize_outputs makes sure of it."""
    if not (provider != "cpu" if bind is None else bind):
        return lambda: sess.run(None, feeds)
    rt = ort()
    binding = sess.io_binding()
    for name, x in feeds.items():
        binding.bind_ortvalue_input(name, rt.OrtValue.ortvalue_from_numpy(x, provider, 0))
    for out in sess.get_outputs():
        binding.bind_output(out.name, provider)

    def call():
        sess.run_with_iobinding(binding)
        binding.synchronize_outputs()

    call.binding = binding  # outputs stay on the device: binding.copy_outputs_to_cpu() to read them
    return call


def node_placement(path, provider: str, feeds: dict, threads: int = 0) -> dict:
    """Which execution provider really ran each node, from one profiled run: CUDA sessions can
    leave unsupported ops (many int8 ones) on the CPU, with Memcpy nodes between them."""
    import json
    import os
    import tempfile
    from collections import Counter

    rt = ort()
    opts = rt.SessionOptions()
    opts.enable_profiling = True
    opts.log_severity_level = 3
    if threads:
        opts.intra_op_num_threads = threads
    with tempfile.TemporaryDirectory() as tmp:
        opts.profile_file_prefix = os.path.join(tmp, "placement")
        chain = [PROVIDERS[provider]] + ([PROVIDERS["cpu"]] if provider != "cpu" else [])
        sess = rt.InferenceSession(str(path), sess_options=opts, providers=chain)
        sess.run(None, feeds)
        with open(sess.end_profiling()) as f:
            events = json.load(f)
    ops: dict[str, Counter] = {}
    for e in events:
        args = e.get("args", {})
        if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time") and "provider" in args:
            ops.setdefault(args["provider"].replace("ExecutionProvider", ""), Counter())[args.get("op_name", "?")] += 1
    return {
        "nodes_by_provider": {p: sum(c.values()) for p, c in ops.items()},
        "ops_by_provider": {p: dict(c) for p, c in ops.items()},
        "memcpy_nodes": sum(n for c in ops.values() for op, n in c.items() if op.startswith("Memcpy")),
    }
