"""From YAML files and ``--set`` overrides to a validated :class:`~deeplabv3.config.schema.Config`, and back.

``_base_`` files are merged recursively (mappings merge, anything else replaces), then overrides apply in order
(a mapping value merges into its section the same way), then every value is checked against its declared type
and choices (:func:`from_dict`), device-dependent defaults are resolved and the rules of
:mod:`deeplabv3.config.rules` run. Each dotted key's origin (file or override) is recorded along the way, so every
error names what to edit.
"""
from __future__ import annotations

import dataclasses
import difflib
import math
import os
import re
import typing
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import yaml

from ..fileio import write_text_atomic
from .origins import Origins, origins_of, remember, where
from .rules import check, resolve
from .schema import Config, ConfigError

BASE_KEY = "_base_"


class _Loader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that also reads ``1e-7`` (no dot) as a float, as YAML 1.2 and Python do."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"""),
    list("-+0123456789"),
)


def _safe_load(text: Any) -> Any:
    return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass


def _read_yaml(path: Path) -> Dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        with path.open("r", encoding="utf-8") as fh:
            data = _safe_load(fh)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections, got {type(data).__name__}")
    return data


def merge(base: Mapping[str, Any], child: Mapping[str, Any]) -> Dict[str, Any]:
    """Recursive merge of two mappings: nested mappings merge, anything else in ``child`` replaces ``base``."""
    out = dict(base)
    for key, value in child.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def load_raw(path: Union[str, os.PathLike], _chain: Tuple[Path, ...] = ()) -> Tuple[Dict[str, Any], Dict[str, Path]]:
    """Load ``path`` with its ``_base_`` files resolved (relative to the including file).

    Returns the merged mapping and, for each dotted key, the file that last set it, so validation errors can
    name the file the user has to edit.
    """
    path = Path(path).resolve()
    if path in _chain:
        cycle = " -> ".join(str(p) for p in (*_chain, path))
        raise ConfigError(f"circular _base_ inheritance: {cycle}")
    data = _read_yaml(path)
    bases = data.pop(BASE_KEY, [])
    if isinstance(bases, str):
        bases = [bases]
    if not isinstance(bases, list) or not all(isinstance(b, str) for b in bases):
        raise ConfigError(f"{path}: '{BASE_KEY}' must be a file name or a list of file names, got {bases!r}")
    merged: Dict[str, Any] = {}
    origins: Dict[str, Path] = {}
    for base in bases:
        base_data, base_origins = load_raw(path.parent / base, (*_chain, path))
        merged = merge(merged, base_data)
        origins.update(base_origins)
    merged = merge(merged, data)
    origins.update({key: path for key in _dotted_keys(data)})
    return merged, origins


def _dotted_keys(data: Mapping[str, Any], prefix: str = "") -> List[str]:
    keys = []
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        keys.append(dotted)
        if isinstance(value, Mapping):
            keys.extend(_dotted_keys(value, dotted + "."))
    return keys


def parse_override(text: str) -> Tuple[str, Any]:
    """``'eval.scales=[0.5,1.0]'`` -> ``('eval.scales', [0.5, 1.0])``; values are parsed as YAML."""
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"override {text!r} must look like KEY=VALUE, e.g. train.epochs=3")
    try:
        parsed = _safe_load(value) if value.strip() else None
    except yaml.YAMLError as exc:
        raise ConfigError(f"override {text!r}: the value is not valid YAML ({exc.problem})") from None
    return key, parsed


def _null_section(section: str, origin: str) -> ConfigError:
    return ConfigError(f"{origin}: section '{section}' is null, which would reset every {section}.* key to its "
                       f"default; give its keys, or leave the section out to keep them")


def _set_dotted(data: Dict[str, Any], key: str, value: Any, source: str, origins: Origins) -> None:
    """Set ``data[a][b][c] = value`` for ``key='a.b.c'``, copying the sections it walks through.

    A mapping set on a section merges into it, as a child file's would: ``--set model={}`` changes nothing. A
    section made null earlier (``--set model=null``, ``model:`` in a file) is refused rather than started afresh.
    """
    parts = key.split(".")
    node = data
    for depth, part in enumerate(parts[:-1]):
        section = ".".join(parts[:depth + 1])
        child = node.get(part, {})
        if child is None:
            raise _null_section(section, where(section, origins))
        if not isinstance(child, Mapping):
            raise ConfigError(f"{source}: '{section}' is a value, not a section")
        node[part] = dict(child)
        node = node[part]
    current = node.get(parts[-1])
    node[parts[-1]] = merge(current, value) if isinstance(value, Mapping) and isinstance(current, Mapping) else value


def apply_overrides(data: Mapping[str, Any], overrides: Sequence[str], origins: Dict[str, Any]) -> Dict[str, Any]:
    """Apply ``KEY=VALUE`` overrides to a copy of ``data``, recording each key they set in ``origins``."""
    data = merge({}, data)
    for text in overrides:
        key, value = parse_override(text)
        _set_dotted(data, key, value, f"override {text!r}", origins)
        source = f"--set {text}"
        origins[key] = source
        if isinstance(value, Mapping):
            origins.update({nested: source for nested in _dotted_keys(value, key + ".")})
    return data


# ---------------------------------------------------------------------------------------------- validation


def type_name(tp: Any) -> str:
    """The annotation ``tp`` as errors and the config reference show it (``list of float``, ``int or null``)."""
    origin = typing.get_origin(tp)
    if origin is Union and type(None) in typing.get_args(tp):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return f"{' or '.join(type_name(a) for a in args)} or null"
    if origin is Union:
        return " or ".join(type_name(a) for a in typing.get_args(tp))
    if origin in (list, List):
        return f"list of {type_name(typing.get_args(tp)[0])}"
    if origin in (dict, Dict):
        key, value = typing.get_args(tp)
        return f"mapping of {type_name(key)} to {type_name(value)}"
    return getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp: Any, source: str, key: str, expected: Optional[str] = None) -> Any:
    """Check ``value`` against the annotation ``tp``; ints are accepted where floats are expected.

    ``expected`` is the type name shown in the error (an Optional's inner check still reports "X or null"). A
    float must be finite (YAML's ``.nan`` and ``.inf`` are floats too): no key means anything by them.
    """
    origin = typing.get_origin(tp)
    if origin is Union and type(None) not in typing.get_args(tp):  # alternatives, e.g. int or list of int
        for option in typing.get_args(tp):
            try:
                return _coerce(value, option, source, key, expected or type_name(tp))
            except ConfigError:
                continue
        raise ConfigError(f"{source}: '{key}': expected {expected or type_name(tp)}, got {value!r} "
                          f"({type(value).__name__})")
    if origin is Union:
        if value is None or (isinstance(value, str) and value.strip().lower() in ("none", "null", "~")):
            return None
        options = tuple(a for a in typing.get_args(tp) if a is not type(None))
        inner = options[0] if len(options) == 1 else Union[options]
        return _coerce(value, inner, source, key, type_name(tp))
    if origin in (list, List):
        if isinstance(value, tuple):
            value = list(value)
        if not isinstance(value, list):
            raise ConfigError(f"{source}: '{key}': expected {expected or type_name(tp)}, got {value!r} "
                              f"({type(value).__name__})")
        inner = typing.get_args(tp)[0]
        return [_coerce(item, inner, source, f"{key}[{i}]") for i, item in enumerate(value)]
    if origin in (dict, Dict):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{source}: '{key}': expected {expected or type_name(tp)}, got {value!r} "
                              f"({type(value).__name__})")
        key_tp, value_tp = typing.get_args(tp)
        return {_coerce(k, key_tp, source, f"{key} key {k!r}"): _coerce(v, value_tp, source, f"{key}[{k!r}]")
                for k, v in value.items()}
    ok = (
        (tp is bool and isinstance(value, bool))
        or (tp is int and isinstance(value, int) and not isinstance(value, bool))
        or (tp is float and isinstance(value, (int, float)) and not isinstance(value, bool))
        or (tp is str and isinstance(value, str))
    )
    if not ok:
        raise ConfigError(f"{source}: '{key}': expected {expected or type_name(tp)}, got {value!r} "
                          f"({type(value).__name__})")
    if tp is float and not math.isfinite(value):
        raise ConfigError(f"{source}: '{key}' is {value}; it must be a finite number")
    return float(value) if tp is float else value


def _suggest(key: str, valid: Sequence[str]) -> str:
    close = difflib.get_close_matches(key, valid, n=1, cutoff=0.6)
    if close:
        return f"did you mean {close[0]}?"
    return "valid keys: " + ", ".join(sorted(valid))


def _build(cls: type, data: Any, prefix: str, origins: Origins) -> Any:
    section = prefix.rstrip(".") or "the top level"
    if data is None and not prefix:
        data = {}
    if data is None:
        raise _null_section(section, where(section, origins))
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where(section, origins)}: '{section}' must be a mapping of keys, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if key not in fields:
            raise ConfigError(f"{where(dotted, origins)}: unknown key '{dotted}' ({_suggest(str(key), list(fields))})")
        tp = hints[key]
        if dataclasses.is_dataclass(tp):
            kwargs[key] = _build(tp, value, dotted + ".", origins)
            continue
        coerced = _coerce(value, tp, where(dotted, origins), dotted)
        choices = fields[key].metadata.get("choices")
        if choices is not None and coerced not in choices:
            shown = ", ".join("null" if c is None else str(c) for c in choices)
            raise ConfigError(f"{where(dotted, origins)}: '{dotted}' is {coerced!r}; choose one of: {shown}")
        kwargs[key] = coerced
    return cls(**kwargs)


def from_dict(data: Mapping[str, Any], origins: Optional[Origins] = None) -> Config:
    """Validate a nested mapping and build the frozen :class:`Config`, which remembers ``origins``."""
    origins = origins or {}
    cfg = resolve(_build(Config, data, "", origins))
    check(cfg, origins)
    return remember(cfg, origins)


def load_config(path: Union[str, os.PathLike, None] = None, overrides: Sequence[str] = ()) -> Config:
    """Load a YAML config (with ``_base_`` files), apply ``KEY=VALUE`` overrides and validate.

    ``path=None`` starts from the schema defaults, so tools can run with overrides alone.
    """
    data, origins = load_raw(path) if path is not None else ({}, {})
    data = apply_overrides(data, overrides, origins)
    return from_dict(data, origins)


def to_dict(cfg: Any) -> Dict[str, Any]:
    """Plain nested dict of a config (or one section), ready for YAML/JSON."""
    return dataclasses.asdict(cfg)


def dump_yaml(cfg: Any) -> str:
    return yaml.safe_dump(to_dict(cfg), sort_keys=False, default_flow_style=None)


def save_config(cfg: Config, path: Union[str, os.PathLike]) -> Path:
    """Write the effective config atomically; it loads back to an equal :class:`Config`."""
    return write_text_atomic(path, dump_yaml(cfg))


def replace(cfg: Config, **changes: Any) -> Config:
    """A validated copy of ``cfg`` with dotted keys changed: ``replace(cfg, **{"eval.flip": True})``."""
    data = to_dict(cfg)
    for key, value in changes.items():
        _set_dotted(data, key, value, "replace()", origins_of(cfg))
    return from_dict(data, {**origins_of(cfg), **{key: "replace()" for key in changes}})
