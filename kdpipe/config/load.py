"""Reading a config: the YAML file, `--set key.sub=value` overrides and the model family's defaults,
validated into a Config; every problem turned into one line that names the file and the key (with a
did-you-mean for unknown keys)."""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from kdpipe.config.defaults import with_family_defaults
from kdpipe.config.schema import Config
from kdpipe.errors import ConfigError


def parse_override(text: str) -> tuple[list[str], Any]:
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected KEY=VALUE, e.g. --set distill.epochs=5")
    key, raw = text.split("=", 1)
    parts = key.strip().split(".")
    if not all(re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", p) for p in parts):
        raise ConfigError(f"--set {text!r}: {key!r} is not a dotted config key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as e:
        raise ConfigError(f"--set {text!r}: value is not valid YAML ({_first_line(e)})") from None
    return parts, value


def apply_overrides(raw: dict, overrides: list[str]) -> dict:
    for text in overrides:
        parts, value = parse_override(text)
        node = raw
        for p in parts[:-1]:
            child = node.get(p)
            if child is None:
                child = node[p] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"--set {text!r}: {p!r} is not a section")
            node = child
        node[parts[-1]] = value
    return raw


class _DuplicateKey(Exception):
    pass


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, except that a key given twice in one mapping is an error: plain YAML keeps
    the last one silently, and a user who edited the first would wonder why nothing changed."""

    def construct_mapping(self, node, deep=False):
        seen: dict = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                continue  # `<<: *anchor` merges may be overridden: that is what they are for
            key = self.construct_object(key_node)
            line = key_node.start_mark.line + 1
            if key in seen:
                raise _DuplicateKey(f"key {key!r} is given twice in one section (lines {seen[key]} and {line}); "
                                    "YAML would keep only the last: remove one")
            seen[key] = line
        return super().construct_mapping(node, deep)


def load_config(path: str | Path | None, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """The config file with its overrides, on top of the defaults of its model family (defaults.py)."""
    where = str(path) if path else "defaults"
    raw = read_raw(path, overrides)
    try:
        return Config.model_validate(with_family_defaults(raw))
    except ValidationError as e:
        raise ConfigError(f"{where}: {format_validation_error(e)}") from None


def read_raw(path: str | Path | None, overrides: list[str] | tuple[str, ...] = ()) -> dict:
    """What the config file and the --set overrides say, before any default."""
    raw: dict = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file not found: {p}")
        try:
            text = p.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise ConfigError(f"{p}: cannot read config ({e})") from None
        try:
            loaded = yaml.load(text, Loader=_UniqueKeyLoader)
        except _DuplicateKey as e:
            raise ConfigError(f"{p}: {e}") from None
        except yaml.YAMLError as e:
            raise ConfigError(f"{p}: invalid YAML: {_first_line(e)}") from None
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{p}: the config must be a mapping of keys to values, not {type(loaded).__name__}")
        raw = loaded
    return apply_overrides(raw, list(overrides))


def format_validation_error(e: ValidationError) -> str:
    problems = []
    for err in _merge_unions(e.errors()):
        loc = ".".join(str(x) for x in err["loc"])
        if err["type"] == "extra_forbidden":
            msg = f"unknown key {loc!r}"
            hint = _did_you_mean(err["loc"])
            if hint:
                msg += f" (did you mean {hint!r}?)"
        else:
            got = err.get("input")
            got_s = "" if isinstance(got, dict) else f" (got {got!r})"
            where = f"{loc}: " if loc else ""
            msg = f"{where}{_clean(err['msg'])}{got_s}"
        problems.append(msg)
    extra = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return problems[0] + extra


def _merge_unions(errors: list[dict]) -> list[dict]:
    """pydantic reports a value that no member of a union (`bool | Literal["auto"]`) takes once per
    member, under a location ending in the member's tag; one problem per key reads better:
    "quantize.reduce_range: Input should be a valid boolean or 'auto' (got 'maybe')"."""
    groups: dict = {}
    for i, err in enumerate(errors):
        tag = err["loc"][-1] if err["loc"] else None
        is_tag = isinstance(tag, str) and (tag in _UNION_TAGS or "[" in tag)
        key = (err["loc"][:-1], repr(err.get("input"))) if is_tag else i
        groups.setdefault(key, []).append(err)
    merged = []
    for key, errs in groups.items():
        if len(errs) == 1:
            merged.append(errs[0])
            continue
        cleaned = [_clean(x["msg"]) for x in errs]
        # a member whose type fits but whose bound does not ("a whole number far too large") says it best
        fits = [c for c in cleaned if not c.startswith("Input should be ")]
        parts = [c.removeprefix("Input should be ").split(",")[0] for c in cleaned]
        merged.append({**errs[0], "loc": key[0], "msg": fits[0] if fits else "Input should be " + " or ".join(parts)})
    return merged


_UNION_TAGS = {"bool", "int", "float", "str", "none", "list", "dict"}


def _did_you_mean(loc: tuple) -> str | None:
    model: type[BaseModel] = Config
    prefix = []
    for part in loc[:-1]:
        field = model.model_fields.get(str(part))
        ann = getattr(field, "annotation", None) if field else None
        if not (isinstance(ann, type) and issubclass(ann, BaseModel)):
            return None
        model = ann
        prefix.append(str(part))
    close = difflib.get_close_matches(str(loc[-1]), list(model.model_fields), n=1, cutoff=0.6)
    return ".".join(prefix + close) if close else None


def _clean(msg: str) -> str:
    return msg.replace("Value error, ", "").replace(
        "Unable to parse input string as an integer, exceeded maximum size", "a whole number far too large")


def _first_line(e: Exception) -> str:
    return " ".join(str(e).split())[:300]

