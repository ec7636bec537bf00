"""Latency and accounting gates: ``p99<50ms``, ``loss==0``, ``connect_p95<1s``, ``loss_rate<=0.1%``.

A gate is parsed once (bad expressions fail early with a one-line reason) and evaluated against a
summary dict, so the same code serves a live run and ``rtbench gate summary.json``.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from harness.measure.records import GateResult

DEFAULT_GATES = ("p99<50ms", "loss==0")

_LATENCY_KEYS = {
    "min": "min",
    "p50": "p50",
    "p90": "p90",
    "p95": "p95",
    "p99": "p99",
    "p999": "p999",
    "p99.9": "p999",
    "max": "max",
    "mean": "mean",
}
_CONNECT_KEYS = {"connect_p50": "p50", "connect_p95": "p95", "connect_p99": "p99", "connect_max": "max"}
_RECONNECT_KEYS = {"reconnect_p50": "p50", "reconnect_p95": "p95", "reconnect_p99": "p99", "reconnect_max": "max"}
_FANOUT_KEYS = {"fanout_p50": "p50", "fanout_p90": "p90", "fanout_p95": "p95", "fanout_p99": "p99", "fanout_max": "max"}
#: browser probes (summary.json ``browser_latency_ms``): in-page arrival, official JS client
_BROWSER_KEYS = {f"browser_{point}": point for point in ("p50", "p90", "p95", "p99", "p999", "max")}
#: the todo-app workload (summary.json ``todo_app``): time to fresh data, the event, the app's API
_APP_KEYS = {
    f"{metric}_{point}": (block, point)
    for metric, block in (("fresh", "fresh_ms"), ("event", "event_ms"), ("api", "api_ms"), ("mutation", "mutation_ms"))
    for point in ("p50", "p95", "p99", "max")
}
#: presence (summary.json ``todo_app.presence``, ``--presence``): how long a member's coming and going takes
_PRESENCE_KEYS = {
    f"{metric}_{point}": (f"{metric}_ms", point)
    for metric in ("member_added", "member_removed")
    for point in ("p50", "p95", "p99", "max")
}
_COUNT_KEYS = {
    "loss": "lost",
    "dup": "duplicated",
    "reorder": "out_of_order",
    "errors": "errors",
    "delivered": "delivered",
    "published": "published",
    "publish_failed": "publish_failed",
}
_RATIO_KEYS = ("loss_rate",)
_RATE_KEYS = ("deliveries_per_s",)

METRICS = tuple(
    [
        *_LATENCY_KEYS,
        *_FANOUT_KEYS,
        *_BROWSER_KEYS,
        "browser_loss",
        *_CONNECT_KEYS,
        *_RECONNECT_KEYS,
        *_APP_KEYS,
        *_PRESENCE_KEYS,
        *_COUNT_KEYS,
        *_RATIO_KEYS,
        *_RATE_KEYS,
    ]
)
#: duration metric -> (path of its block in the summary, key in that block)
_DURATION_BLOCKS: dict[str, tuple[tuple[str, ...], str]] = {
    **{k: (("latency_ms",), v) for k, v in _LATENCY_KEYS.items()},
    **{k: (("fanout_ms",), v) for k, v in _FANOUT_KEYS.items()},
    **{k: (("browser_latency_ms",), v) for k, v in _BROWSER_KEYS.items()},
    **{k: (("connect_ms",), v) for k, v in _CONNECT_KEYS.items()},
    **{k: (("reconnect_ms",), v) for k, v in _RECONNECT_KEYS.items()},
    **{k: (("todo_app", block), v) for k, (block, v) in _APP_KEYS.items()},
    **{k: (("todo_app", "presence", block), v) for k, (block, v) in _PRESENCE_KEYS.items()},
}


def _block(summary: Mapping[str, Any], path: tuple[str, ...]) -> Mapping[str, Any]:
    """The summary's block at ``path``; empty when a part is missing (a run without the app workload)."""
    block: Any = summary
    for key in path:
        block = block.get(key, {}) if isinstance(block, Mapping) else {}
    return block if isinstance(block, Mapping) else {}


_OPS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le,
    ">=": operator.ge,
    "==": operator.eq,
    "<": operator.lt,
    ">": operator.gt,
}
_UNITS_TO_MS = {"us": 0.001, "µs": 0.001, "ms": 1.0, "s": 1000.0}
_PATTERN = re.compile(
    r"^\s*(?P<metric>[a-z_0-9.]+)\s*(?P<op><=|>=|==|<|>)\s*(?P<num>[0-9]+(?:\.[0-9]+)?)\s*(?P<unit>[a-zµ%]*)\s*$"
)


class GateError(ValueError):
    """A gate expression that cannot be understood; the message is one line for the user."""


@dataclass(frozen=True)
class Gate:
    expr: str
    metric: str
    op: str
    threshold: float  # ms for durations, a fraction for loss_rate, a plain number otherwise

    @property
    def is_latency(self) -> bool:
        return self.metric in _LATENCY_KEYS

    def value(self, summary: Mapping[str, Any]) -> float:
        """The metric's value in the threshold's unit, read from a summary dict."""
        if self.metric in _DURATION_BLOCKS:
            path, key = _DURATION_BLOCKS[self.metric]
            return float(_block(summary, path).get(key, 0.0))
        if self.metric == "browser_loss":  # a run without browser probes has none
            return float(_block(summary, ("browser",)).get("lost", 0))
        messages = summary["messages"]
        if self.metric in _COUNT_KEYS:
            return float(messages[_COUNT_KEYS[self.metric]])
        if self.metric == "loss_rate":
            expected = messages["expected"]
            return float(messages["lost"]) / expected if expected else 0.0
        duration = float(summary["load"]["duration_s"]) or 1.0
        return float(messages["delivered"]) / duration

    def evaluate(self, summary: Mapping[str, Any]) -> GateResult:
        value = self.value(summary)
        passed = _OPS[self.op](value, self.threshold)
        if self.metric in _DURATION_BLOCKS and self.metric not in _RECONNECT_KEYS:
            passed = passed and int(_block(summary, _DURATION_BLOCKS[self.metric][0]).get("count", 0)) > 0  # no data
        if self.metric.startswith("fresh_"):  # a mutation never seen fresh is worse than any slow one
            passed = passed and int(_block(summary, ("todo_app",)).get("stale", 0)) == 0
        if self.metric.startswith("member_"):  # a member never heard of is worse than a slow one
            passed = passed and int(_block(summary, ("todo_app", "presence")).get("unaccounted", 0)) == 0
        return {"expr": self.expr, "value": round(value, 6), "passed": bool(passed)}


def parse(expr: str) -> Gate:
    """Parse one gate expression or raise GateError saying what is wrong."""
    match = _PATTERN.match(expr)
    if not match:
        raise GateError(f"gate {expr!r} is not METRIC OP NUMBER[UNIT], e.g. 'p99<50ms' or 'loss==0'")
    metric, op, number, unit = match["metric"], match["op"], float(match["num"]), match["unit"]
    if metric not in METRICS:
        raise GateError(f"gate {expr!r}: unknown metric {metric!r} (known: {', '.join(METRICS)})")
    is_duration = metric in _DURATION_BLOCKS
    if is_duration:
        if unit not in _UNITS_TO_MS:
            raise GateError(f"gate {expr!r}: {metric} needs a time unit (us, ms or s)")
        number *= _UNITS_TO_MS[unit]
    elif metric == "loss_rate":
        if unit == "%":
            number /= 100.0
        elif unit:
            raise GateError(f"gate {expr!r}: loss_rate takes a fraction or a percentage")
    elif unit:
        raise GateError(f"gate {expr!r}: {metric} takes no unit")
    return Gate(expr.strip(), metric, op, number)


def parse_all(exprs: list[str] | tuple[str, ...] | None) -> list[Gate]:
    """Parse the user's gates, falling back to the default p99 gate when none are given."""
    return [parse(e) for e in (exprs or DEFAULT_GATES)]


def evaluate_all(gates: list[Gate], summary: Mapping[str, Any]) -> list[GateResult]:
    return [g.evaluate(summary) for g in gates]


def tightest_latency_ms(gates: list[Gate]) -> float | None:
    """The smallest latency bound among the gates: it sets how much harness lag we can tolerate."""
    bounds = [g.threshold for g in gates if g.is_latency and g.op in ("<", "<=")]
    return min(bounds) if bounds else None
