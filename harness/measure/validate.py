"""Check decoded JSON against the records' TypedDicts, so a hand-edited or corrupt file is refused on load
with the field that is wrong, instead of failing later deep in a reader.

The TypedDicts in ``records`` are the schema: this walks their annotations, so a key added there is
checked here without another line. Keys a record lacks are allowed (an older file may lack newer keys,
and readers use ``.get``) unless the caller names them required; keys the record does not know are
ignored (a newer file read by an older harness). Numbers are JSON numbers, never booleans, and finite.
"""

from __future__ import annotations

import json
import math
import types
from collections.abc import Collection
from functools import cache
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints, is_typeddict

_SHOWN_CHARS = 40


class SchemaError(ValueError):
    """One wrong field: ``path`` is dotted (``harness.trustworthy``, ``gates[0].value``)."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path or 'the document'} {problem}")
        self.path = path
        self.problem = problem


def check(value: Any, kind: Any, *, required: Collection[str] = (), path: str = "") -> None:
    """Raise SchemaError at the first field of ``value`` that does not fit ``kind``. ``required`` names
    keys that must be present, as paths with list and object indexes written ``[]`` (``gates[].expr``)."""
    _walk(value, kind, frozenset(required), path, path)


def _walk(value: Any, kind: Any, required: frozenset[str], path: str, pattern: str) -> None:
    """``pattern`` is ``path`` with every index written ``[]``, to look up ``required``."""
    if kind is Any:
        return
    if not _fits(value, kind):
        raise SchemaError(path, f"must be {describe(kind)}, got {_shown(value)}")
    origin = get_origin(kind)
    if is_typeddict(kind):
        for key, field in _fields(kind).items():
            if key in value:
                _walk(value[key], field, required, _join(path, key), _join(pattern, key))
            elif _join(pattern, key) in required:
                raise SchemaError(_join(path, key), "is missing")
    elif origin is list:
        (item,) = get_args(kind) or (Any,)
        for index, element in enumerate(value):
            _walk(element, item, required, f"{path}[{index}]", f"{pattern}[]")
    elif origin is dict:
        _, item = get_args(kind) or (str, Any)
        for key, element in value.items():
            _walk(element, item, required, f"{path}[{json.dumps(key)}]", f"{pattern}[]")
    elif origin in (Union, types.UnionType):
        option = next(option for option in get_args(kind) if _fits(value, option))
        _walk(value, option, required, path, pattern)


def describe(kind: Any) -> str:
    """What a value of ``kind`` is, in JSON's words, for the error message."""
    origin = get_origin(kind)
    if kind is bool:
        return "true or false"
    if kind is int:
        return "an integer"
    if kind is float:
        return "a finite number"
    if kind is str:
        return "a string"
    if kind is None or kind is types.NoneType:
        return "null"
    if kind is Any:
        return "anything"
    if is_typeddict(kind) or kind is dict or origin is dict:
        return "an object"
    if kind is list or origin is list:
        return "a list"
    if origin in (Union, types.UnionType):
        return " or ".join(describe(option) for option in get_args(kind))
    if origin is Literal:
        return " or ".join(json.dumps(option) for option in get_args(kind))
    raise TypeError(f"no JSON check for {kind!r}")


def _fits(value: Any, kind: Any) -> bool:
    """The value's own type only; what it holds is checked by ``check``."""
    origin = get_origin(kind)
    if kind is Any:
        return True
    if kind is bool:
        return isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is float:
        return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if kind is str:
        return isinstance(value, str)
    if kind is None or kind is types.NoneType:
        return value is None
    if is_typeddict(kind) or kind is dict or origin is dict:
        return isinstance(value, dict)
    if kind is list or origin is list:
        return isinstance(value, list)
    if origin in (Union, types.UnionType):
        return any(_fits(value, option) for option in get_args(kind))
    if origin is Literal:
        return any(value == option and type(value) is type(option) for option in get_args(kind))
    raise TypeError(f"no JSON check for {kind!r}")


@cache
def _fields(kind: Any) -> dict[str, Any]:
    """A record's keys and their types (``NotRequired`` stripped), read once per record."""
    return get_type_hints(kind)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _shown(value: Any) -> str:
    """The offending value as JSON, cut short so the message stays one line."""
    try:
        text = json.dumps(value, ensure_ascii=True, allow_nan=True)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= _SHOWN_CHARS else text[: _SHOWN_CHARS - 3] + "..."
