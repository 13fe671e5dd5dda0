"""`kdpipe evaluate`: a bundle scored on a labelled file the pipeline never saw, the way the report
scores a run: the metric with its 95% interval; for classifiers each class's precision, recall and
count and the confusion matrix; perplexity for causal LMs. With `--vs` a second bundle is scored on
the same samples and the two are compared with the paired 95% interval (is the new bundle better than
the one in production, on my file?); an embedding bundle is measured by how closely it agrees with
the other. Needs the bundle folders only, not the run folder."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kdpipe.bundle.folder import class_scores, load_bundle, text_outputs
from kdpipe.bundle.predict import takes_text
from kdpipe.errors import DataError
from kdpipe.evaluation.evidence import Samples, interval, paired_drop, per_sample
from kdpipe.metrics import ACCURACY, COSINE, PERPLEXITY, Metric

SCHEMES = {".csv": "csv", ".jsonl": "jsonl", ".npz": "npz", ".txt": "text"}


@dataclass
class Bundle:
    folder: Path
    session: object
    info: dict

    @classmethod
    def load(cls, folder) -> Bundle:
        sess, info = load_bundle(Path(folder))
        return cls(Path(folder), sess, info)


def source_of(data: str) -> str:
    """A data source as the pipeline names it (csv:PATH, folder:PATH, ...); a bare path by its ending."""
    if ":" in data.split("/")[0] and not Path(data).exists():
        return data
    p = Path(data)
    if p.is_dir():
        return f"folder:{p}"
    if p.suffix.lower() not in SCHEMES:
        raise DataError(f"evaluate: {data}: name the kind of data (csv:, jsonl:, npz:, folder:, text:) or give a file "
                        f"ending in {', '.join(SCHEMES)}")
    return f"{SCHEMES[p.suffix.lower()]}:{p}"


def evaluate(bundle: str, data: str, vs: str | None = None, text_column: str | None = None,
             label_column: str | None = None) -> dict:
    """The result `kdpipe evaluate` prints (and --json writes)."""
    mine = Bundle.load(bundle)
    other = Bundle.load(vs) if vs else None
    if other is not None:
        _same_kind(mine, other)
    source, task = source_of(data), mine.info["task"]
    try:
        if task == "classification":
            return _classifiers(mine, other, source, text_column, label_column)
        if task == "causal-lm":
            return _language_models(mine, other, source, text_column)
        if task == "embedding":
            return _embedders(mine, other, source, text_column)
    except DataError as e:  # the loaders name the config's keys; here they are flags
        raise DataError(str(e).replace("set data.label_column", "give --label-column")
                        .replace("set data.text_column", "give --text-column")) from None
    raise DataError(f"evaluate: {bundle} is a {task} bundle; evaluate scores classifiers, causal LMs and embedders "
                    "(a masked-LM bundle: its report's masked-token accuracy)")


def _same_kind(a: Bundle, b: Bundle) -> None:
    if a.info["task"] != b.info["task"] or takes_text(a.info) != takes_text(b.info):
        raise DataError(f"evaluate --vs: {b.folder} is a {b.info['task']} bundle of "
                        f"{'texts' if takes_text(b.info) else 'arrays'}, {a.folder} one of "
                        f"{'texts' if takes_text(a.info) else 'arrays'} ({a.info['task']}): nothing to compare")
    if a.info.get("labels") != b.info.get("labels"):
        raise DataError(f"evaluate --vs: the two bundles have other labels ({a.info.get('labels')} and "
                        f"{b.info.get('labels')})")


def _classifiers(mine: Bundle, other: Bundle | None, source: str, text_column, label_column) -> dict:
    labels = mine.info["labels"]
    if takes_text(mine.info):
        from kdpipe.data.registry import load_labelled_texts

        texts, raw = load_labelled_texts(source, text_column or mine.info.get("text_column", "text"),
                                         label_column or mine.info.get("label_column", "label"))
        unknown = sorted(set(raw) - set(labels))
        if unknown:
            raise DataError(f"{source}: labels {unknown[:5]} are not this bundle's labels ({', '.join(labels)})")
        y = np.asarray([labels.index(v) for v in raw])

        def outputs(b: Bundle):
            return text_outputs(b.folder, b.session, b.info, texts)
    else:
        x, y = _labelled_arrays(mine.info, source, label_column)

        def outputs(b: Bundle):
            return class_scores(b.session, b.info, x)

    results = [_scored(b, outputs(b), y, ACCURACY) for b in [mine] + ([other] if other else [])]
    for r in results:
        r.update(_per_class(r.pop("_predictions"), y, labels))
    return _result(source, len(y), ACCURACY, results, other)


def _labelled_arrays(info: dict, source: str, label_column: str | None) -> tuple[np.ndarray, np.ndarray]:
    """Inputs in the units the bundle takes raw (its preprocessing applies), and labels as the bundle's indices."""
    from kdpipe.config.schema import DataConfig
    from kdpipe.data.registry import load_arrays

    pre = info["preprocessing"]
    shape = pre["input_shape"]
    image = len(shape) == 3
    dc = DataConfig(source=source, label_column=label_column or info.get("label_column", "label"),
                    image_size=list(shape[1:]) if image else None, channels=shape[0] if image else 1)
    raw = load_arrays(dc)
    x, y = raw.x, _bundle_indices(raw.labels, raw.y, info["labels"], source)
    names, have = pre.get("feature_names"), raw.extra.get("feature_names")
    if names and have and have != names:  # the same columns in the training order
        missing = [n for n in names if n not in have]
        if missing:
            raise DataError(f"{source}: no feature columns {missing[:5]} (the bundle takes {', '.join(names)})")
        x = x[:, [have.index(n) for n in names]]
    return x, y


def _bundle_indices(names: list[str], y: np.ndarray, labels: list[str], source: str) -> np.ndarray:
    """The data's labels as indices of the bundle's: by name (class folders, label columns), or, for
    class ids whose names the bundle does not use (an npz's 0..k of a bundle with named classes), as
    the ids themselves."""
    unknown = sorted(set(names[i] for i in np.unique(y)) - set(labels))
    if not unknown:
        return np.asarray([labels.index(names[i]) for i in y])
    if all(n.isdigit() for n in names) and int(max(names, key=int)) < len(labels):
        return np.asarray([int(names[i]) for i in y])
    raise DataError(f"{source}: labels {unknown[:5]} are not this bundle's labels ({', '.join(labels)})")


def _scored(b: Bundle, out: np.ndarray, y: np.ndarray, metric: Metric) -> dict:
    num, den = per_sample(metric, out, y)
    samples = Samples(num, den, metric.collect(out))
    return {"bundle": str(b.folder), "variant": b.info.get("variant"), "samples": samples,
            "value": round(metric.finish(float(num.sum()), float(den.sum())), 4), "ci": interval(metric, samples),
            "_predictions": out.argmax(-1) if metric is ACCURACY else None}


def _per_class(pred: np.ndarray, y: np.ndarray, labels: list[str]) -> dict:
    """Precision, recall and count of each class present, and the confusion matrix (rows: true)."""
    k = len(labels)
    matrix = np.zeros((k, k), np.int64)
    np.add.at(matrix, (y, pred), 1)
    classes = []
    for i, name in enumerate(labels):
        count, predicted = int(matrix[i].sum()), int(matrix[:, i].sum())
        if count or predicted:
            classes.append({"label": name, "count": count,
                            "precision": round(100.0 * matrix[i, i] / predicted, 2) if predicted else None,
                            "recall": round(100.0 * matrix[i, i] / count, 2) if count else None})
    return {"per_class": classes, "confusion": {"labels": labels, "matrix": matrix.tolist()}}


def _language_models(mine: Bundle, other: Bundle | None, source: str, text_column) -> dict:
    from kdpipe.data.registry import load_texts

    texts = load_texts(source, text_column or mine.info.get("text_column", "text"))
    results = [_perplexity(b, texts) for b in [mine] + ([other] if other else [])]
    return _result(source, len(texts), PERPLEXITY, results, other)


def _perplexity(b: Bundle, texts: list[str]) -> dict:
    """Each text's next-token log-likelihood, in windows of the bundle's positions (a long text in
    consecutive windows); the perplexity over all the tokens, its interval over the texts."""
    from kdpipe.bundle.generate import Generator
    from kdpipe.bundle.tokenizer import BundleTokenizer

    tok, width = BundleTokenizer(b.folder, b.info), b.info["max_sequence_length"]
    gen = Generator(b.session, width)
    num, den = np.zeros(len(texts)), np.zeros(len(texts))
    for i, text in enumerate(texts):
        ids = tok.ids(text, special=False, truncate=False)
        for start in range(0, len(ids) - 1, width):
            window = np.asarray([ids[start:start + width]])
            if window.shape[1] > 1:
                n, d = PERPLEXITY.partial(gen.run(window)[0].astype(np.float64), window)
                num[i], den[i] = num[i] + n, den[i] + d
    keep = den > 0
    if not keep.any():
        raise DataError("evaluate: no text has two tokens: nothing to predict")
    samples = Samples(num[keep], den[keep], np.zeros(int(keep.sum())))
    return {"bundle": str(b.folder), "variant": b.info.get("variant"), "samples": samples,
            "value": round(PERPLEXITY.finish(float(num.sum()), float(den.sum())), 4),
            "ci": interval(PERPLEXITY, samples), "tokens": int(den.sum())}


def _embedders(mine: Bundle, other: Bundle | None, source: str, text_column) -> dict:
    if other is None:
        raise DataError(f"evaluate: {mine.folder} is an embedding bundle: there are no labels to score it against; "
                        "give --vs OTHER_BUNDLE to measure how closely it agrees with another (e.g. the teacher's)")
    from kdpipe.data.registry import load_texts

    texts = load_texts(source, text_column or mine.info.get("text_column", "text"))
    reference = text_outputs(other.folder, other.session, other.info, texts)
    scored = _scored(mine, text_outputs(mine.folder, mine.session, mine.info, texts), reference, COSINE)
    scored.pop("_predictions")
    scored["agrees_with"] = str(other.folder)
    return _result(source, len(texts), COSINE, [scored], None,
                   name=f"cosine similarity to {other.info.get('variant') or other.folder}")


def _result(source: str, n: int, metric: Metric, results: list[dict], other: Bundle | None,
            name: str | None = None) -> dict:
    out = {"data": source, "samples": n,
           "metric": {"name": name or metric.name, "unit": metric.unit, "higher_is_better": metric.higher_is_better},
           "bundles": [{k: v for k, v in r.items() if k != "samples"} for r in results]}
    if other is not None:
        out["versus"] = _versus(metric, results[0], results[1])
    return out


def _versus(metric: Metric, mine: dict, theirs: dict) -> dict:
    """The first bundle against the second on the same samples: how much better, with the paired 95%
    interval, and the verdict that interval allows."""
    d = paired_drop(metric, theirs["samples"], mine["samples"])  # positive: the first is worse
    better, (lo, hi) = -d["drop"] + 0.0, (-d["ci"][1] + 0.0, -d["ci"][0] + 0.0)  # (+ 0.0: no "-0.00")
    units = " points" if metric.unit == "%" else ""
    n = len(mine["samples"])
    if lo > 0:
        verdict = f"{mine['bundle']} is better: {better:+.2f}{units} (95% {lo:+.2f} to {hi:+.2f})"
    elif hi < 0:
        verdict = f"{mine['bundle']} is worse: {better:+.2f}{units} (95% {lo:+.2f} to {hi:+.2f})"
    else:
        verdict = (f"the two cannot be told apart on {n:,} samples: {better:+.2f}{units} (95% {lo:+.2f} to "
                   f"{hi:+.2f})")
    out = {"better_by": round(better, 4), "ci": [round(lo, 4), round(hi, 4)], "verdict": verdict}
    if metric is ACCURACY:
        out["same_answers"] = round(100.0 * float(np.mean(mine["samples"].kept == theirs["samples"].kept)), 2)
    return out


def render(result: dict) -> str:
    """The terminal text of a result."""
    m, lines = result["metric"], []
    unit = m["unit"]
    lines.append(f"{result['data']}: {result['samples']:,} samples; {m['name']}"
                 f" ({'higher' if m['higher_is_better'] else 'lower'} is better)")
    for b in result["bundles"]:
        tokens = f", {b['tokens']:,} tokens" if "tokens" in b else ""
        lines.append(f"  {b['bundle']} ({b['variant']}): {b['value']:.2f}{unit} "
                     f"(95% {b['ci'][0]:.2f} to {b['ci'][1]:.2f}){tokens}")
    if "versus" in result:
        v = result["versus"]
        lines.append(f"  {v['verdict']}" + (f"; the same answer on {v['same_answers']:.2f}% of samples"
                                             if "same_answers" in v else ""))
    first = result["bundles"][0]
    if "per_class" in first:
        lines.append(f"  per class ({first['bundle']}):  precision  recall  count")
        width = max(len(c["label"]) for c in first["per_class"])
        for c in first["per_class"]:
            p = "-" if c["precision"] is None else f"{c['precision']:.2f}"
            r = "-" if c["recall"] is None else f"{c['recall']:.2f}"
            lines.append(f"    {c['label']:<{width}}  {p:>9}  {r:>6}  {c['count']:>5}")
        conf = first["confusion"]
        shown = [i for i, row in enumerate(conf["matrix"]) if sum(row) or sum(r[i] for r in conf["matrix"])]
        if len(shown) <= 12:
            lines.append("  confusion matrix (rows: true label, columns: predicted):")
            cells = max(len(str(conf["matrix"][i][j])) for i in shown for j in shown)
            w = max(width, cells)
            lines.append("    " + " " * width + "  " + " ".join(f"{conf['labels'][j][:w]:>{w}}" for j in shown))
            for i in shown:
                lines.append(f"    {conf['labels'][i]:<{width}}  "
                             + " ".join(f"{conf['matrix'][i][j]:>{w}}" for j in shown))
    return "\n".join(lines) + "\n"
