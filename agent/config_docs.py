"""docs/config.md, generated from the config schema (the pydantic models), so the
reference cannot drift from what `infernode config check` accepts."""

from __future__ import annotations

import json
import types
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

CONFIG_DOC = Path("docs/config.md")

HEADER = """# infernode configuration

Generated from the config schema by `infernode docs --write`; do not edit by hand.

The agent reads `/etc/infernode/infernode.yaml` (`--config` to override). Every key
is optional; with no file at all the defaults below apply. Unknown keys are
rejected. `infernode config check FILE` validates a file and exits 2 naming the
file, the key path, the value and what was expected. Durations take `500ms`, `15s`,
`5m`; sizes take `64MiB`, `1GiB`. `kill -HUP` reloads; an invalid new config is
refused and the running one kept. A subsystem that the new config turns on or off
(the first or last entry of `workers`, `otlp.enabled`) starts or stops with the
reload, no restart needed (README, "Signals").

| key | type | default |
|---|---|---|
"""


def _type_name(tp: object) -> str:
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        base, *meta = typing.get_args(tp)
        for m in meta:
            fn = getattr(getattr(m, "func", None), "__name__", "")
            if fn == "parse_duration":
                return "duration"
            if fn == "parse_size":
                return "size"
            if fn == "_check_listen":
                return "listen address"
        return _type_name(base)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is typing.Literal:
        return " \\| ".join(json.dumps(a) for a in typing.get_args(tp))
    if origin in (list, tuple, set, frozenset):
        args = typing.get_args(tp)
        return f"list of {_type_name(args[0])}" if args else "list"
    if origin is dict:
        k, v = typing.get_args(tp) or (str, Any)
        return f"map of {_type_name(k)} to {_type_name(v)}"
    if tp is type(None):
        return "null"
    return getattr(tp, "__name__", str(tp))


def _field_type(field: FieldInfo) -> str:
    # pydantic moves Annotated validators into field.metadata; they name our units.
    for m in field.metadata:
        fn = getattr(getattr(m, "func", None), "__name__", "")
        special = {"parse_duration": "duration", "parse_size": "size", "_check_listen": "listen address"}.get(fn)
        if special:
            optional = type(None) in typing.get_args(field.annotation)
            return special + (" or null" if optional else "")
    return _type_name(field.annotation)


def _default(field: FieldInfo) -> str:
    if field.default is not PydanticUndefined:
        value = field.default
    elif field.default_factory is not None:
        try:
            value = field.default_factory()  # type: ignore[call-arg]  # ours take no arguments
        except TypeError:
            return "—"
    else:
        return "required"
    if isinstance(value, BaseModel):
        return "(section)"
    if isinstance(value, Path):
        value = str(value)
    try:
        return f"`{json.dumps(value)}`"
    except TypeError:
        return f"`{value}`"


def _rows(model: type[BaseModel], prefix: str) -> list[str]:
    rows = []
    for name, field in model.model_fields.items():
        key = f"{prefix}{name}"
        tp = field.annotation
        inner = _model_in(tp)
        if inner is not None and typing.get_origin(tp) not in (list,):
            rows.extend(_rows(inner, key + "."))
            continue
        if inner is not None:  # a list of sections (workers)
            rows.append(f"| `{key}` | list of sections | `[]` |")
            rows.extend(_rows(inner, key + "[]."))
            continue
        rows.append(f"| `{key}` | {_field_type(field)} | {_default(field)} |")
    return rows


def _model_in(tp: object) -> type[BaseModel] | None:
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return tp
    for arg in typing.get_args(tp):
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return arg
    return None


def render_config_doc() -> str:
    from agent.plugins import Config

    return HEADER + "\n".join(_rows(Config, "")) + "\n"
