"""targets.jsonsafe: too-deep input refused as a ValueError, whatever the decoder, and nothing else changed."""

from __future__ import annotations

import json
from typing import Any

import msgpack
import pytest

from harness.protocols import pusher as proto
from targets import jsonsafe
from tests.targets.nesting import DEEP_JSON, DEEP_MSGPACK, nested_json


def test_recursion_error_becomes_too_deep_a_value_error() -> None:
    with pytest.raises(RecursionError):
        json.loads(DEEP_JSON)  # the failure being guarded against
    for raw in (DEEP_JSON, DEEP_JSON.encode()):
        with pytest.raises(jsonsafe.TooDeep) as caught:
            jsonsafe.loads(raw)
        assert isinstance(caught.value, ValueError) and "128" in str(caught.value)


def test_the_limit_is_max_depth_and_shallow_input_is_untouched() -> None:
    assert jsonsafe.loads(nested_json(jsonsafe.MAX_DEPTH)) is not None
    with pytest.raises(jsonsafe.TooDeep):
        jsonsafe.loads(nested_json(jsonsafe.MAX_DEPTH + 1))  # under the recursion limit, over ours
    wide = json.dumps({"items": [{"k": [i]} for i in range(1000)]})  # many brackets, little depth
    assert jsonsafe.loads(wide) == json.loads(wide)
    assert jsonsafe.loads('{"a": "[[[[[["}') == {"a": "[[[[[["}
    with pytest.raises(ValueError):
        jsonsafe.loads("{not json")


def test_depth_exceeds_counts_dicts_and_lists_iteratively() -> None:
    value: Any = "leaf"
    for i in range(50_000):  # deeper than any recursive walk could go
        value = {"k": value} if i % 2 else [value]
    assert jsonsafe.depth_exceeds(value)
    assert not jsonsafe.depth_exceeds([{"a": [1]}], 3)
    assert jsonsafe.depth_exceeds([{"a": [1]}], 2)
    assert not jsonsafe.depth_exceeds("[[[[", 0)


def test_checked_guards_any_decoder() -> None:
    with pytest.raises(jsonsafe.TooDeep):  # msgpack decodes 200 deep without complaint; too deep for us
        jsonsafe.checked(b"\x91" * 200 + b"\xc0", msgpack.unpackb, binary=True)
    with pytest.raises(msgpack.StackError):  # its own limit is still its own error
        jsonsafe.checked(DEEP_MSGPACK, msgpack.unpackb, binary=True)
    assert jsonsafe.checked(msgpack.packb([[1]]), msgpack.unpackb, binary=True) == [[1]]
    frame = '{"event":"client-x","data":' + nested_json(200) + "}"
    assert jsonsafe.checked(frame, proto.decode, nested=lambda f: f.event).event == "client-x"
    with pytest.raises(jsonsafe.TooDeep):
        jsonsafe.checked(frame, proto.decode, nested=lambda f: f.data)
    with pytest.raises(jsonsafe.TooDeep):
        jsonsafe.checked('{"event":"e","data":' + DEEP_JSON + "}", proto.decode)
