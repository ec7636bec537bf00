"""Decoding untrusted JSON (and msgpack) without letting its nesting reach the interpreter's recursion limit.

``json.loads`` raises RecursionError (not ValueError) on ``[[[...]]]`` a thousand levels deep, and a value
just under that limit can still blow the stack when re-encoded deeper in a call chain. Every target decodes
client input through here, so too-deep input is refused exactly like malformed input: a ValueError.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["MAX_DEPTH", "TooDeep", "checked", "depth_exceeds", "loads"]

MAX_DEPTH = 128
"""Deepest nesting of arrays/objects accepted: far beyond any real payload, far below the recursion limit."""

Raw = TypeVar("Raw", bound=str | bytes | bytearray)
T = TypeVar("T")


class TooDeep(ValueError):
    """Input nested deeper than MAX_DEPTH: a ValueError, so callers refuse it as they refuse bad JSON."""

    def __init__(self) -> None:
        super().__init__(f"nested deeper than {MAX_DEPTH} levels")


def depth_exceeds(value: object, limit: int = MAX_DEPTH) -> bool:
    """Whether ``value`` nests lists/dicts more than ``limit`` deep (iterative: safe on any depth)."""
    stack: list[tuple[object, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list | tuple):
            children = item
        else:
            continue
        depth += 1
        if depth > limit:
            return True
        stack.extend((child, depth) for child in children if isinstance(child, dict | list | tuple))
    return False


def _may_exceed(raw: str | bytes | bytearray, binary: bool) -> bool:
    """Cheap pre-check: JSON text with at most MAX_DEPTH opening brackets cannot nest deeper (msgpack: every
    container takes at least a byte)."""
    if binary:
        return len(raw) > MAX_DEPTH
    if isinstance(raw, str):
        return raw.count("[") + raw.count("{") > MAX_DEPTH
    return raw.count(b"[") + raw.count(b"{") > MAX_DEPTH


def checked(
    raw: Raw,
    decode: Callable[[Raw], T],
    *,
    nested: Callable[[T], object] = lambda value: value,
    binary: bool = False,
) -> T:
    """``decode(raw)`` (any decoder: json.loads, msgpack, a protocol codec) with too-deep input refused as
    TooDeep: a RecursionError inside the decoder, or a result whose ``nested(result)`` exceeds MAX_DEPTH.
    ``binary``: raw is msgpack, not JSON text."""
    try:
        value = decode(raw)
    except RecursionError:
        raise TooDeep from None
    if _may_exceed(raw, binary) and depth_exceeds(nested(value)):
        raise TooDeep
    return value


def loads(raw: str | bytes | bytearray, **kwargs: Any) -> Any:
    """``json.loads`` for untrusted input: too-deep nesting is a ValueError (TooDeep) like any bad JSON."""
    return checked(raw, lambda text: json.loads(text, **kwargs))
