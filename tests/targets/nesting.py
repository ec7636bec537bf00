"""Hostile nesting shared by the target tests: the 200 KB ``[[[...]]]`` of issue 11 item 12."""

from __future__ import annotations

DEPTH = 100_000
DEEP_JSON = "[" * DEPTH + "]" * DEPTH
"""200 KB of JSON nested 100,000 deep: json.loads alone raises RecursionError on it."""
DEEP_MSGPACK = b"\x91" * DEPTH + b"\xc0"
"""The msgpack equivalent (fixarray of one, 100,000 deep)."""


def nested_json(depth: int) -> str:
    return "[" * depth + "]" * depth
