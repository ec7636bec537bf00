from __future__ import annotations

from typing import Any

import pytest

from harness.measure import gates


def summary(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "load": {"duration_s": 10.0},
        "latency_ms": {
            "count": 100,
            "min": 1,
            "p50": 10.0,
            "p90": 20,
            "p95": 30.0,
            "p99": 49.0,
            "p999": 70.0,
            "max": 80.0,
            "mean": 12.0,
        },
        "connect_ms": {"count": 5, "p50": 100.0, "p95": 900.0, "p99": 950.0, "max": 999.0},
        "messages": {
            "published": 10,
            "expected": 1000,
            "delivered": 990,
            "lost": 10,
            "duplicated": 0,
            "out_of_order": 2,
            "errors": 0,
        },
    }
    base.update(over)
    return base


@pytest.mark.parametrize(
    ("expr", "value", "passed"),
    [
        ("p99<50ms", 49.0, True),
        ("p99<49ms", 49.0, False),
        ("p99<=49ms", 49.0, True),
        ("p99 < 0.05s", 49.0, True),
        ("p50<10000us", 10.0, False),
        ("p99.9<100ms", 70.0, True),
        ("p999<60ms", 70.0, False),
        ("max<1s", 80.0, True),
        ("mean<=12ms", 12.0, True),
        ("connect_p95<1s", 900.0, True),
        ("connect_max<900ms", 999.0, False),
        ("reconnect_p95<2s", 0.0, True),
        ("loss==0", 10.0, False),
        ("loss<=10", 10.0, True),
        ("loss_rate<1.5%", 0.01, True),
        ("loss_rate<0.01", 0.01, False),
        ("reorder==2", 2.0, True),
        ("dup==0", 0.0, True),
        ("errors==0", 0.0, True),
        ("deliveries_per_s>=99", 99.0, True),
        ("deliveries_per_s>100", 99.0, False),
    ],
)
def test_gate_table(expr: str, value: float, passed: bool) -> None:
    result = gates.parse(expr).evaluate(summary())
    assert result["value"] == pytest.approx(value)
    assert result["passed"] is passed


@pytest.mark.parametrize(
    ("expr", "fragment"),
    [
        ("p99<fast", "METRIC OP NUMBER"),
        ("p99<50", "time unit"),
        ("p98<50ms", "unknown metric"),
        ("loss==0ms", "takes no unit"),
        ("loss_rate<1ms", "fraction or a percentage"),
        ("p99=50ms", "METRIC OP NUMBER"),
        ("", "METRIC OP NUMBER"),
    ],
)
def test_bad_expressions_say_what_is_wrong(expr: str, fragment: str) -> None:
    with pytest.raises(gates.GateError, match=fragment) as info:
        gates.parse(expr)
    assert "\n" not in str(info.value)


def test_latency_gate_fails_when_nothing_was_delivered() -> None:
    empty = summary(
        latency_ms={"count": 0, "min": 0, "p50": 0, "p90": 0, "p95": 0, "p99": 0, "p999": 0, "max": 0, "mean": 0}
    )
    assert gates.parse("p99<50ms").evaluate(empty)["passed"] is False


def test_default_gate_and_tightest_bound() -> None:
    parsed = gates.parse_all(None)
    assert [g.expr for g in parsed] == ["p99<50ms", "loss==0"]
    assert gates.tightest_latency_ms(gates.parse_all(["p99<50ms", "p50<0.02s", "loss==0"])) == 20.0
