"""Generic machinery over frozen config dataclass trees, and range checks.

``apply_overrides`` replaces leaves from ``key=value`` strings (``search.num_simulations=16``)
with type checking; ``to_dict``/``from_dict`` give the JSON form stored as ``config.json``;
``require`` and its shorthands give the one-line range errors every config's
``__post_init__`` raises. The config records themselves live with their agents
(``dreamer.agents.<agent>.config``; the shared ``env`` and ``run`` sections in
``dreamer.core.config``).
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from typing import Any, Literal, TypeVar

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration value or override that cannot be used, with the fix in the message."""


def require(ok: bool, name: str, value: Any, expected: str) -> None:
    """Raise ``ConfigError`` naming ``name=value`` and what was ``expected`` unless ``ok``."""
    if not ok:
        raise ConfigError(f"{name}={value!r} is invalid: expected {expected}.")


def positive(name: str, value: float) -> None:
    kind = "integer" if isinstance(value, int) else "number"
    require(value > 0, name, value, f"a positive {kind}")


def non_negative(name: str, value: float) -> None:
    require(value >= 0, name, value, ">= 0")


def fraction(name: str, value: float) -> None:
    require(0 <= value <= 1, name, value, "a fraction in [0, 1]")


def all_positive(name: str, values: tuple[int, ...]) -> None:
    require(all(v > 0 for v in values), name, values, "positive sizes")


def to_dict(cfg: Any) -> dict[str, Any]:
    """JSON-ready nested dict of a config tree (tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(cfg), default=list))


def from_dict(cls: type[T], data: dict[str, Any]) -> T:
    """Rebuild a config of type ``cls`` from ``to_dict`` output, checking every value."""
    hints = typing.get_type_hints(cls)
    unknown = set(data) - {f.name for f in dataclasses.fields(cls)}
    if unknown:
        raise ConfigError(f"unknown config keys for {cls.__name__}: {sorted(unknown)}")
    kwargs = {}
    for field in dataclasses.fields(cls):
        if field.name in data:
            kwargs[field.name] = _coerce(hints[field.name], data[field.name], field.name)
    return cls(**kwargs)


SHOW_CONFIG = "python -m dreamer show-config --preset NAME"
"""The command that lists every key; the CLI passes one naming the run's --algo and preset."""


def apply_overrides(
    cfg: T, overrides: list[str] | tuple[str, ...], *, show_config: str = SHOW_CONFIG
) -> T:
    """Return ``cfg`` with each ``dotted.key=value`` override applied.

    Values are parsed as JSON where possible (``16``, ``0.5``, ``true``, ``[1, 2]``) and
    otherwise taken as strings, then checked against the field's type. Overrides of one
    section are applied together, so fields that are validated jointly can change together.
    """
    nested: dict[str, Any] = {}
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not of the form key=value (e.g. run.seed=1).")
        key, raw = item.split("=", 1)
        *sections, leaf = key.strip().split(".")
        node = nested
        for section in sections:
            node = node.setdefault(section, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {key!r} conflicts with another override.")
        node[leaf] = _Leaf(_parse_value(raw.strip(), key.strip()))
    return _replace_nested(cfg, nested, "", show_config)


class _Leaf:
    """An override value (distinguishes values from nested sections)."""

    def __init__(self, value: Any):
        self.value = value


def replace_path(cfg: T, key: str, value: Any) -> T:
    """Return ``cfg`` with the leaf at dotted ``key`` replaced by ``value`` (type-checked)."""
    *sections, leaf = key.split(".")
    nested: dict[str, Any] = {leaf: _Leaf(value)}
    for section in reversed(sections):
        nested = {section: nested}
    return _replace_nested(cfg, nested, "", SHOW_CONFIG)


def _replace_nested(cfg: T, changes: dict[str, Any], prefix: str, show_config: str) -> T:
    fields = {f.name: f for f in dataclasses.fields(cfg)}
    hints = typing.get_type_hints(type(cfg))
    kwargs = {}
    for name, change in changes.items():
        full = prefix + name
        if name not in fields:
            valid = ", ".join(sorted(fields))
            raise ConfigError(
                f"unknown config key {full!r} in {type(cfg).__name__}; valid keys here: "
                f"{valid}. Run `{show_config}` to list every key."
            )
        current = getattr(cfg, name)
        if isinstance(change, _Leaf):
            if dataclasses.is_dataclass(current):
                raise ConfigError(f"config key {full!r} is a section; set one of its fields.")
            kwargs[name] = _coerce(hints[name], change.value, full)
        else:
            if not dataclasses.is_dataclass(current):
                raise ConfigError(f"config key {name!r} is a value, not a section: {full!r}.")
            kwargs[name] = _replace_nested(current, change, full + ".", show_config)
    try:
        return dataclasses.replace(cfg, **kwargs)
    except ConfigError as e:
        raise ConfigError(f"override of {prefix.rstrip('.') or 'config'}: {e}") from None


def flatten(cfg: Any, prefix: str = "") -> dict[str, Any]:
    """Dotted-key view of every leaf, e.g. for ``show-config`` and hyperparameter logging."""
    out: dict[str, Any] = {}
    for field in dataclasses.fields(cfg):
        value = getattr(cfg, field.name)
        key = f"{prefix}{field.name}"
        if dataclasses.is_dataclass(value):
            out.update(flatten(value, key + "."))
        else:
            out[key] = value
    return out


def _parse_value(raw: str, key: str = "value") -> Any:
    """JSON if ``raw`` is JSON, else the string itself; a mapping or list that is not valid
    JSON is an error (it was surely meant as JSON)."""
    try:
        return json.loads(raw)
    except json.JSONDecodeError as e:
        if raw[:1] in "{[":
            raise ConfigError(
                f"{key}={raw}: invalid JSON: {e.msg} (column {e.colno}). Write JSON with "
                "double-quoted keys and quote the whole override for the shell, e.g. "
                """--set 'env.options={"size": 4}'."""
            ) from None
        return raw


def _coerce(tp: Any, value: Any, name: str) -> Any:
    """Check ``value`` against type annotation ``tp`` and convert where lossless."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{name}: expected a mapping for section {tp.__name__}.")
        return from_dict(tp, value)
    if tp is Any:
        return value
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{name}={value!r} is invalid: choose one of {list(args)}.")
        return value
    if origin in (typing.Union, types.UnionType):
        for arg in args:
            try:
                return _coerce(arg, value, name)
            except ConfigError:
                continue
        raise ConfigError(f"{name}={value!r} does not match type {tp}.")
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(
                f"{name}={value!r} is invalid: expected a JSON mapping such as "
                """{"size": 4} (quote it for the shell: --set '%s={"size": 4}').""" % name
            )
        return dict(value)
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{name}={value!r} is invalid: expected a list such as [64, 64].")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(args[0], v, name) for v in value)
        if len(args) != len(value):
            raise ConfigError(f"{name}={value!r}: expected {len(args)} items.")
        return tuple(_coerce(a, v, name) for a, v in zip(args, value, strict=True))
    if tp is type(None):
        if value is not None:
            raise ConfigError(f"{name}={value!r}: expected null.")
        return None
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{name}={value!r} is invalid: expected true or false.")
        return value
    if tp is int:
        if isinstance(value, bool) or not (
            isinstance(value, int) or (isinstance(value, float) and value.is_integer())
        ):
            raise ConfigError(f"{name}={value!r} is invalid: expected an integer.")
        return int(value)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{name}={value!r} is invalid: expected a number.")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{name}={value!r} is invalid: expected a string.")
        return value
    return value
