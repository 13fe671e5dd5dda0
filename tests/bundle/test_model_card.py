"""kdpipe.bundle.model_card: the bundle's README.md says what each step bought, which inputs the model
expects, how to run it (the snippet runs as written), and its licence."""

import json
import os

import numpy as np
import pytest

from kdpipe.bundle.model_card import input_conventions


def test_the_cards_step_table_is_the_line_of_models_the_bundle_came_from(tiny_run):
    card = (tiny_run / "export" / "bundle" / "README.md").read_text()
    info = json.loads((tiny_run / "export" / "bundle" / "kdpipe.json").read_text())
    report = json.loads((tiny_run / "report" / "report.json").read_text())
    rows = {(r["variant"] + "-fp32" if r["format"] == "onnx-fp32" else r["variant"]): r
            for r in report["rows"] if r["format"] != "torch"}
    assert "## What each step bought" in card
    table = card.split("## What each step bought")[1].split("## Results")[0]
    first = table.splitlines()[
        table.splitlines().index(next(x for x in table.splitlines() if x.startswith("|---"))) + 1
    ]
    assert first.startswith("| teacher-fp32 → ")
    step_to = first.split("→")[1].split("|")[0].strip()
    a, b = rows["teacher-fp32"], rows[step_to]
    assert f"{a['size_bytes'] / b['size_bytes']:.2f}x" in first
    assert f"{round(b['metric']['value'] - a['metric']['value'], 2) + 0.0:+.2f}" in first
    assert info["variant"] in table  # the line ends at the bundle


def test_the_cards_snippet_runs_as_written_and_gives_predicts_answers(tiny_run, monkeypatch):
    bundle = tiny_run / "export" / "bundle"
    card = (bundle / "README.md").read_text()
    code = card.split("```python\n")[1].split("```")[0]
    monkeypatch.chdir(bundle)
    scope = {}
    exec(code, scope)  # noqa: S102 - our own generated snippet
    from sklearn.datasets import load_digits

    from kdpipe.bundle.folder import load_bundle, predict

    raw = load_digits().images[:20].reshape(20, 1, 8, 8).astype(np.float32)
    got = scope["predict"](raw)
    sess, info = load_bundle(bundle)
    classes, probs = predict(sess, info, raw)
    assert [g[0] for g in got] == [info["labels"][int(c)] for c in classes]
    assert [g[1] for g in got] == pytest.approx([float(p) for p in probs], abs=1e-5)


def test_inputs_say_the_datas_contrast_so_inverted_images_are_caught():
    info = {"preprocessing": {"input_shape": [1, 16, 16], "scale": 1 / 255, "mean": 0.1, "std": 0.3,
                              "formula": "(x * scale - mean) / std"}, "labels": ["a", "b"]}
    light_on_dark = np.zeros((50, 1, 16, 16))
    light_on_dark[:, :, 5:11, 7:9] = 255  # a bright stroke in the middle
    lines = input_conventions(info, light_on_dark)
    assert lines[0].startswith("Images of 16x16 pixels, 1 channel (greyscale)") and "0 to 255" in lines[0]
    assert lines[1].startswith("Light on a dark background") and "(255 - pixel)" in lines[1]
    assert input_conventions(info, 255 - light_on_dark)[1].startswith("Dark on a light background")
    assert "2 class scores" in lines[-1]
    features = {"preprocessing": {"input_shape": [4], "scale": 1.0, "mean": 0.0, "std": 1.0, "formula": "f",
                                  "feature_names": ["a", "b", "c", "d"]}}
    assert input_conventions(features)[0].startswith("4 features a sample, in this order: a, b, c, d")


def test_the_licence_is_in_the_front_matter_when_set_and_said_missing_when_not(tiny_run):
    card = (tiny_run / "export" / "bundle" / "README.md").read_text()
    assert "license:" not in card.split("---")[1] and "Not stated (set export.license)" in card
    from kdpipe.bundle.model_card import ModelCard, Row, render

    base = dict(title="t", task="classification", variant="student-fp32", precision="fp32", metric_name="accuracy",
                metric_unit="%", higher_is_better=True, made=[], rows=[Row("this", 90.0, 1000, 0.1)], test_samples=10,
                data_source="csv:x.csv", machine={}, runtimes={}, files=["model.onnx"], sources="the teacher and the "
                                                                                                "data")
    assert render(ModelCard(**base, license="apache-2.0")).startswith("---\nlicense: apache-2.0\n")
    assert os.path.isfile(os.path.join(os.path.dirname(__file__), "..", "..", "LICENSE"))


@pytest.mark.parametrize("variant, says, never", [
    ("student-fp32", ["Student:", "Exported to ONNX fp32"], ["Pruned", "quantized"]),
    ("pruned-int8-dynamic", ["Student:", "Pruned (", "Exported to ONNX and quantized: dynamic"], ["no distillation"]),
    ("teacher-int8-dynamic", ["the teacher itself, quantized: no distillation"], ["Student:", "Pruned"]),
])
def test_how_it_was_made_lists_only_the_steps_the_shipped_variant_went_through(tiny_run, variant, says, never):
    """The card tells the bundle's own line: an unpruned student is not said to be pruned, and a
    quantized teacher was not distilled."""
    from types import SimpleNamespace

    from kdpipe.bundle.card_facts import Shipped, _how_made
    from kdpipe.config.load import load_config
    from kdpipe.variants import bundle_label

    stages = json.loads((tiny_run / "manifest.json").read_text())["stages"]
    out = {s: stages[s]["outputs"] for s in stages}
    candidates = out["export"]["variants"] + out["quantize"]["variants"]
    row = next(r for r in candidates if bundle_label(r) == variant)
    splits = SimpleNamespace(train=[0] * 7, val=[0] * 2, test=[0] * 3)
    made = _how_made(load_config(tiny_run.parent / "config.yaml"), splits, out["distill"], out["prune"],
                     Shipped(tiny_run / "export" / "bundle", row, {}, {"reason": "chosen"}, candidates, {}))
    text = "\n".join(made)
    assert all(s in text for s in says) and not any(n in text for n in never), text


def test_no_figure_of_the_card_is_a_negative_zero():
    info = {"preprocessing": {"input_shape": [1, 16, 16], "scale": 1 / 255, "mean": 0.0, "std": 1.0,
                              "formula": "(x * scale - mean) / std"}, "labels": ["a", "b"]}
    dark = np.full((20, 1, 16, 16), -1e-9)  # a border a rounding below zero, as undoing the preprocessing gives
    dark[:, :, 5:11, 7:9] = 255
    assert not any("-0%" in line for line in input_conventions(info, dark))
