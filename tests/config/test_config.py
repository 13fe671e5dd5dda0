import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kdpipe.config.load import load_config
from kdpipe.config.schema import Config
from kdpipe.errors import ConfigError

pytestmark = pytest.mark.fast  # runs no pipeline


def _write(tmp_path, text):
    p = tmp_path / "c.yaml"
    p.write_text(text)
    return p


def test_defaults_and_overrides(tmp_path):
    cfg = load_config(_write(tmp_path, "name: x\ndistill: {epochs: 3}\n"), ["distill.alpha=0.5", "prune.enabled=false"])
    assert cfg.distill.epochs == 3 and cfg.distill.alpha == 0.5 and cfg.prune.enabled is False
    assert cfg.teacher.model == "builtin:cnn"  # default filled in
    # the config a run records (manifest.json) reads back as the same config
    assert Config.model_validate(yaml.safe_load(yaml.safe_dump(cfg.model_dump(mode="json")))) == cfg


@pytest.mark.parametrize(
    "text, overrides, expected",
    [
        ("distill: {temprature: 2}\n", [], "unknown key 'distill.temprature' (did you mean 'distill.temperature'?)"),
        ("distill: {temperature: 0}\n", [], "distill.temperature: Input should be greater than 0"),
        ("distill: {alpha: 1.5}\n", [], "distill.alpha"),
        ("prune: {ratio: 1.0}\n", [], "prune.ratio: Input should be less than 1"),
        ("distill: {epochs: many}\n", [], "distill.epochs"),
        ("data: {split: [0.5, 0.5, 0.5]}\n", [], "must add up to 1"),
        ("name: ../escape\n", [], "name"),
        ("name: [unclosed\n", [], "invalid YAML"),
        ("- a\n- b\n", [], "must be a mapping"),
        ("", ["distill.epochs"], "expected KEY=VALUE"),
        ("", ["distil.epochs=3"], "unknown key 'distil' (did you mean 'distill'?)"),
        ("distill: {freeze_embeddings: true}\n", [], "distill.freeze_embeddings: only transformers students"),
        ("data: {extra_texts_max: 100}\n", [], "data: extra_texts_max is set but data.extra_texts names no texts"),
    ],
)
def test_bad_configs_give_one_clear_error(tmp_path, text, overrides, expected):
    with pytest.raises(ConfigError) as e:
        load_config(_write(tmp_path, text), overrides)
    assert expected in str(e.value)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("key", ["quantize.reduce_range", "quantize.per_channel"])
def test_a_value_no_member_of_a_union_takes_is_one_problem(tmp_path, key):
    with pytest.raises(ConfigError) as e:
        load_config(_write(tmp_path, ""), [f"{key}=maybe"])
    assert str(e.value).endswith(f"{key}: Input should be a valid boolean or 'auto' (got 'maybe')")


def test_missing_file():
    with pytest.raises(ConfigError, match="config file not found: nope.yaml"):
        load_config("nope.yaml")


_values = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.floats(allow_nan=True), st.text(max_size=5),
                    st.lists(st.integers(), max_size=3))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(section=st.sampled_from(["distill", "prune", "data", "benchmark", "quantize", "teacher", "export"]),
       key=st.text("abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=12), value=_values)
def test_any_malformed_config_is_a_config_error_never_a_crash(tmp_path, section, key, value):
    p = tmp_path / "h.yaml"
    p.write_text(yaml.safe_dump({section: {key: value}}))
    try:
        load_config(p)
    except ConfigError as e:
        assert str(e) and "\n" not in str(e)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(max_size=60))
def test_arbitrary_text_never_crashes_the_loader(tmp_path, text):
    p = tmp_path / "t.yaml"
    p.write_text(text)
    try:
        load_config(p)
    except ConfigError:
        pass
