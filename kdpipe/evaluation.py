"""One metric code path for torch models and onnxruntime sessions: logits in, metric out."""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

Predict = Callable[[np.ndarray], np.ndarray]
METRIC = "accuracy"


def torch_predictor(model: torch.nn.Module, device: str = "cpu") -> Predict:
    model.eval()

    def predict(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return model(torch.from_numpy(x).to(device)).float().cpu().numpy()

    return predict


def onnx_predictor(session) -> Predict:
    name = session.get_inputs()[0].name

    def predict(x: np.ndarray) -> np.ndarray:
        return np.asarray(session.run(None, {name: x})[0], dtype=np.float32)

    return predict


def logits(predict: Predict, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
    return np.concatenate([predict(x[i : i + batch_size]) for i in range(0, len(x), batch_size)])


def accuracy(out: np.ndarray, y: np.ndarray) -> float:
    """Percent of samples whose arg-max class is the label."""
    return float((out.argmax(axis=1) == y).mean() * 100.0)


def evaluate(predict: Predict, split, batch_size: int = 256) -> float:
    return accuracy(logits(predict, split.x, batch_size), split.y)
