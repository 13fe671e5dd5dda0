"""Provider choice and fallback detection; these run on the CPU, whatever build is installed."""

import numpy as np
import pytest
import torch

from kdpipe.models.builtin import MLP
from kdpipe.runtime import sessions
from kdpipe.runtime.onnx_convert import export_onnx
from kdpipe.runtime.timing import measure

pytestmark = pytest.mark.fast  # runs no pipeline


@pytest.fixture
def model_path(tmp_path):
    path = tmp_path / "m.onnx"
    export_onnx(MLP((4,), 3, hidden=(5,)), (4,), path, 17)
    return path


def test_cpu_session(model_path):
    sess, info = sessions.make_session(model_path, "cpu", threads=1)
    assert info.provider == "CPUExecutionProvider" and not info.fallback
    assert sess.run(None, {"input": np.zeros((2, 4), np.float32)})[0].shape == (2, 3)


def test_cuda_missing_is_reported_not_faked(model_path, monkeypatch):
    monkeypatch.setattr(sessions.ort(), "get_available_providers", lambda: ["CPUExecutionProvider"])
    sess, info = sessions.make_session(model_path, "cuda")
    assert sess is None and not info.available and "not available" in info.reason and "kdpipe[gpu]" in info.reason


def test_silent_fallback_to_cpu_is_detected(model_path, monkeypatch):
    rt = sessions.ort()
    real = rt.InferenceSession
    monkeypatch.setattr(rt, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    # What onnxruntime-gpu does without CUDA libraries: a session on the CPU provider only, no error.
    monkeypatch.setattr(
        rt,
        "InferenceSession",
        lambda path, sess_options, providers: real(path, sess_options, providers=["CPUExecutionProvider"]),
    )
    sess, info = sessions.make_session(model_path, "cuda")
    assert info.fallback and info.provider == "CPUExecutionProvider" and "fell back" in info.reason


def test_measure_reports_percentiles_in_order():
    r = measure(lambda: sum(range(1000)), warmup=2, min_seconds=0.01, min_runs=5, batch=4)
    assert r["runs"] >= 5 and r["p50_ms"] <= r["p90_ms"] <= r["p99_ms"] and r["throughput_per_s"] > 0


def _drifting_load():
    """Two calls of the same cost on a machine whose load doubles its cost after 0.3 s."""
    import time

    start = time.perf_counter()

    def call():
        time.sleep(0.002 * (2 if time.perf_counter() - start > 0.3 else 1))

    return call


def test_rounds_put_a_changing_load_on_every_model_alike():
    from kdpipe.runtime.timing import measure_rounds

    def ratio(rounds):
        call = _drifting_load()
        r = measure_rounds({"a": (call, 1), "b": (call, 1)}, warmup=0, min_seconds=0.3, min_runs=1, rounds=rounds)
        return r["b"]["mean_ms"] / r["a"]["mean_ms"]

    assert ratio(1) > 1.5  # one after another: b ran under the load, a did not
    assert 0.8 < ratio(6) < 1.25  # in 6 rounds: each ran 3 of them under it
    r = measure_rounds({"a": (lambda: None, 1)}, warmup=0, min_seconds=0.0, min_runs=9, rounds=3)
    assert r["a"]["runs"] == 9 and r["a"]["rounds"] == 3


def test_io_binding_path_gives_the_same_outputs(model_path):
    sess, _ = sessions.make_session(model_path, "cpu")
    x = np.random.default_rng(0).random((3, 4)).astype(np.float32)
    call = sessions.timed_call(sess, {"input": x}, "cpu", bind=True)  # the CUDA code path, run on the CPU device
    call()
    assert np.allclose(call.binding.copy_outputs_to_cpu()[0], sess.run(None, {"input": x})[0])


def test_node_placement_counts_what_ran_where(model_path):
    placement = sessions.node_placement(model_path, "cpu", {"input": np.zeros((2, 4), np.float32)})
    assert set(placement["nodes_by_provider"]) == {"CPU"} and placement["memcpy_nodes"] == 0
    assert sum(placement["ops_by_provider"]["CPU"].values()) == placement["nodes_by_provider"]["CPU"]


cuda_torch = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@cuda_torch
def test_cuda_session_really_runs_on_cuda(model_path):
    if "CUDAExecutionProvider" not in sessions.ort().get_available_providers():
        pytest.skip("onnxruntime has no CUDA provider (install kdpipe[gpu])")
    sess, info = sessions.make_session(model_path, "cuda")
    assert info.provider == "CUDAExecutionProvider" and not info.fallback
    call = sessions.timed_call(sess, {"input": np.ones((2, 4), np.float32)}, "cuda")
    call()
    assert call.binding.copy_outputs_to_cpu()[0].shape == (2, 3)


def test_warm_up_stops_once_it_has_taken_a_rounds_share_of_the_time():
    import time

    from kdpipe.runtime.timing import measure_rounds

    counts = {"fast": 0, "slow": 0}

    def counted(key, seconds):
        def call():
            counts[key] += 1
            time.sleep(seconds)
        return call

    calls = {"fast": (counted("fast", 0.0), 1), "slow": (counted("slow", 0.03), 1)}
    r = measure_rounds(calls, warmup=10, min_seconds=0.05, min_runs=2, rounds=2)  # a round's share: 0.025 s
    untimed = {k: counts[k] - r[k]["runs"] for k in counts}
    assert untimed == {"fast": 10 + 2, "slow": 1 + 2}  # warm-up, then one untimed call a round
