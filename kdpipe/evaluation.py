"""One metric code path for torch models and onnxruntime sessions: logits in, metric out.

The task's Metric turns each batch into (numerator, denominator) sums, so every runtime, batch size
and process count adds up the same way.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

Predict = Callable[[np.ndarray], np.ndarray]


def torch_predictor(model: torch.nn.Module, device: str = "cpu") -> Predict:
    model.eval()

    def predict(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return model(torch.from_numpy(x).to(device)).float().cpu().numpy()

    return predict


def onnx_predictor(session, feeds: Callable | None = None) -> Predict:
    """feeds(input_names, x) -> the session's inputs; by default x is the one input."""
    names = [i.name for i in session.get_inputs()]

    def predict(x: np.ndarray) -> np.ndarray:
        inputs = feeds(names, x) if feeds else {names[0]: x}
        return np.asarray(session.run(None, inputs)[0], dtype=np.float32)

    return predict


def logits(predict: Predict, x: np.ndarray, batch_size: int = 64) -> np.ndarray:
    return np.concatenate([predict(x[i : i + batch_size]) for i in range(0, len(x), batch_size)])


def evaluate(predict: Predict, split, metric, batch_size: int = 64) -> float:
    num = den = 0.0
    for i in range(0, len(split.x), batch_size):
        n, d = metric.partial(predict(split.x[i : i + batch_size]), split.y[i : i + batch_size])
        num, den = num + n, den + d
    return metric.finish(num, den)
