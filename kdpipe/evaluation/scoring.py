"""One metric code path for torch models and onnxruntime sessions: logits in, metric out.

The task's Metric turns each batch into (numerator, denominator) sums, so every runtime, batch size
and process count adds up the same way.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from kdpipe.data.splits import length_order
from kdpipe.labels import IGNORE
from kdpipe.runtime.sessions import input_names

Predict = Callable[[np.ndarray], np.ndarray]


def torch_predictor(model: torch.nn.Module, device: str = "cpu") -> Predict:
    model.eval()

    def predict(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return model(torch.from_numpy(x).to(device)).float().cpu().numpy()

    return predict


def onnx_predictor(session, feeds: Callable | None = None) -> Predict:
    """feeds(input_names, x) -> the session's inputs; by default x is the one input."""
    names = input_names(session)

    def predict(x: np.ndarray) -> np.ndarray:
        inputs = feeds(names, x) if feeds else {names[0]: x}
        return np.asarray(session.run(None, inputs)[0], dtype=np.float32)

    return predict


def logits(predict: Predict, x: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """predict over x in batches. Padded texts go shortest first (a model that cuts trailing padding,
    kdpipe.models.hf.HFModule, then computes little of it); the rows come back in x's order."""
    order = length_order(x)
    order = np.arange(len(x)) if order is None else order
    out = np.concatenate([predict(x[order[i : i + batch_size]]) for i in range(0, len(x), batch_size)])
    out[order] = out.copy()
    return out


def evaluate_samples(predict: Predict, split, metric, batch_size: int = 64):
    """The metric over a split in batches, and each sample's share of it (evidence.Samples)."""
    from kdpipe.evaluation.evidence import Samples, per_sample

    nums, dens, kept = [], [], []
    for i in range(0, len(split.x), batch_size):
        out = predict(split.x[i : i + batch_size])
        n, d = per_sample(metric, out, split.y[i : i + batch_size])
        nums.append(n)
        dens.append(d)
        kept.append(metric.collect(out))
    samples = Samples(np.concatenate(nums), np.concatenate(dens), np.concatenate(kept))
    return metric.finish(float(samples.num.sum()), float(samples.den.sum())), samples


def evaluate(predict: Predict, split, metric, batch_size: int = 64) -> float:
    return evaluate_samples(predict, split, metric, batch_size)[0]


def score(predict: Predict, splits, metric, reference: np.ndarray | None = None, batch_size: int = 64) -> dict:
    """The metric on the validation and test splits with their 95% intervals, plus on test: agreement
    (%) of the top-1 predictions with the teacher's (`reference`, from `collected`), and the metric's
    extras. `_samples` keeps each sample's share (for paired comparisons: kdpipe.evaluation.evidence)."""
    from kdpipe.evaluation.evidence import interval

    val, val_samples = evaluate_samples(predict, splits.val, metric, batch_size)
    test, test_samples = evaluate_samples(predict, splits.test, metric, batch_size)
    out = {"name": metric.name, "val": round(val, 4), "test": round(test, 4),
           "val_ci": interval(metric, val_samples), "test_ci": interval(metric, test_samples)}
    kept = test_samples.kept
    if reference is not None and reference.shape == kept.shape and kept.dtype.kind in "iu":
        y = splits.test.y
        real = y != IGNORE if y.shape == kept.shape else np.ones(kept.shape, bool)  # masked LM: masked positions
        out["teacher_agreement"] = round(float((kept == reference)[real].mean() * 100.0), 2)
    if metric.extras is not None:
        out.update(metric.extras(kept, splits.test.y))
    other = getattr(splits, "other", None)  # data.other_source: texts from another source
    if other is not None:
        out["other_source"] = round(evaluate(predict, other, metric, batch_size), 4)
    out["_collected"] = kept  # taken off by variant_row; the distill stage keeps the teacher's
    out["_samples"] = {"val": val_samples, "test": test_samples}
    return out
