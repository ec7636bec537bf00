"""Build summary.json (DESIGN schema 1) from merged worker reports, and say it in a few lines."""

from __future__ import annotations

from typing import Any

from harness import gates as gates_mod
from harness import hist
from harness.accounting import account

SCHEMA = 1
LAG_SHARE_OF_GATE = 0.10  # loop lag p99 above 10% of the tightest latency gate makes a run suspect
DEFAULT_LATENCY_BUDGET_MS = 50.0
MIN_LAG_LIMIT_MS = 1.0
CPU_SATURATED_PCT = 95.0
CPU_SATURATED_SAMPLES = 3


def lag_limit_ms(gates: list[gates_mod.Gate]) -> float:
    """The loop lag a generator may show before its latency numbers stop being the provider's."""
    budget = gates_mod.tightest_latency_ms(gates) or DEFAULT_LATENCY_BUDGET_MS
    return max(MIN_LAG_LIMIT_MS, budget * LAG_SHARE_OF_GATE)


def _saturated(cpu_samples: list[float]) -> bool:
    run = 0
    for pct in cpu_samples:
        run = run + 1 if pct >= CPU_SATURATED_PCT else 0
        if run >= CPU_SATURATED_SAMPLES:
            return True
    return False


def harness_health(finals: list[dict[str, Any]], gates: list[gates_mod.Gate]) -> dict[str, Any]:
    limit = lag_limit_ms(gates)
    reasons: list[str] = []
    worst_p99 = worst_max = cpu_peak = 0.0
    generators = []
    for index, final in enumerate(finals):
        lag = hist.decode(final["health"]["lag"])
        p99 = round(lag.get_value_at_percentile(99.0) / 1000.0, 3)
        lag_max = round(lag.get_max_value() / 1000.0, 3)
        cpu = final["health"]["cpu_samples"]
        peak = max(cpu) if cpu else 0.0
        generators.append({"generator": index, "loop_lag_p99_ms": p99, "loop_lag_max_ms": lag_max,
                           "cpu_peak_pct": peak})
        worst_p99, worst_max, cpu_peak = max(worst_p99, p99), max(worst_max, lag_max), max(cpu_peak, peak)
        if p99 > limit:
            reasons.append(f"generator {index}: event-loop lag p99 {p99:g} ms exceeds {limit:g} ms "
                           f"(10% of the tightest latency gate)")
        if _saturated(cpu):
            reasons.append(f"generator {index}: CPU at or above {CPU_SATURATED_PCT:g}% of a core for "
                           f"{CPU_SATURATED_SAMPLES}+ seconds")
    return {"trustworthy": not reasons, "reasons": reasons,
            "loop_lag_ms": {"p99": worst_p99, "max": worst_max, "limit": limit},
            "cpu_peak_pct": cpu_peak, "generators": generators}


def build(*, provider: str, target: str, load: dict[str, Any], finals: list[dict[str, Any]],
          gates: list[gates_mod.Gate], run_id: str, started_at: str) -> dict[str, Any]:
    """The whole summary from every generator's final report; histograms merge exactly."""
    latency = hist.merge([f["latency"] for f in finals])
    connect = hist.merge([f["connect"] for f in finals])
    reconnect = hist.merge([f["reconnect"] for f in finals if "reconnect" in f])
    counts: dict[str, int] = {}
    reasons: dict[str, int] = {}
    ledgers: list[dict[str, Any]] = []
    subscribers: list[dict[str, Any]] = []
    for final in finals:
        for key, value in final["counts"].items():
            counts[key] = counts.get(key, 0) + int(value)
        for key, value in final["error_reasons"].items():
            reasons[key] = reasons.get(key, 0) + int(value)
        ledgers.extend(final["ledgers"])
        subscribers.extend(final["subscribers"])
    totals = account(ledgers, subscribers)
    messages = {"published": counts.get("published", 0), **totals.as_dict(), "errors": counts.get("errors", 0)}
    summary: dict[str, Any] = {
        "schema": SCHEMA, "provider": provider, "target": target, "run_id": run_id,
        "started_at": started_at, "load": load,
        "latency_ms": hist.latency_summary(latency), "connect_ms": hist.connect_summary(connect),
        "messages": messages,
        "connections": {"opened": counts.get("opened", 0), "failed": counts.get("failed", 0),
                        "dropped": counts.get("dropped", 0), "reconnected": counts.get("reconnected", 0)},
        "reconnect_ms": hist.connect_summary(reconnect),
        "clock": "server" if counts.get("server_clock", 0) else "harness",
        "errors_by_reason": dict(sorted(reasons.items(), key=lambda kv: -kv[1])[:20]),
        "foreign_messages": counts.get("foreign", 0),
        "harness": harness_health(finals, gates),
        "histograms": {"connect": hist.encode(connect)},
    }
    if summary["clock"] == "server":  # DESIGN rule 2: clock-dependent numbers are flagged, never mixed
        summary["harness"]["trustworthy"] = False
        summary["harness"]["reasons"].append(
            f"latency measured against the server's clock (--timestamp-field), so it includes the clock offset; "
            f"{counts.get('clock_skew', 0)} deliveries arrived before their server timestamp")
    summary["gates"] = gates_mod.evaluate_all(gates, summary)
    summary["passed"] = all(g["passed"] for g in summary["gates"])
    return summary


def format_text(summary: dict[str, Any], folder: str) -> str:
    """The end-of-run printout: what a user reads in the terminal or a CI log."""
    lat, con, msg, conn, health = (summary[k] for k in ("latency_ms", "connect_ms", "messages",
                                                         "connections", "harness"))
    lines = [
        f"rtbench {summary['provider']} ({summary['target']} target) — {summary['load']['users']} users, "
        f"{summary['load']['publish_rate']:g} msg/s, {summary['load']['duration_s']:g} s",
        f"  delivery latency ms  p50 {lat['p50']}  p90 {lat['p90']}  p95 {lat['p95']}  p99 {lat['p99']}  "
        f"p99.9 {lat['p999']}  max {lat['max']}  (n={lat['count']})",
        f"  connect ms           p50 {con['p50']}  p95 {con['p95']}  p99 {con['p99']}  max {con['max']}  "
        f"(n={con['count']})",
        f"  messages             published {msg['published']}  expected {msg['expected']}  delivered "
        f"{msg['delivered']}  lost {msg['lost']}  duplicated {msg['duplicated']}  out of order "
        f"{msg['out_of_order']}  errors {msg['errors']}",
        f"  connections          opened {conn['opened']}  failed {conn['failed']}  dropped {conn['dropped']}  "
        f"reconnected {conn['reconnected']}",
    ]
    rec = summary.get("reconnect_ms", {})
    if rec.get("count"):
        lines.append(f"  reconnect ms         p50 {rec['p50']}  p95 {rec['p95']}  p99 {rec['p99']}  max {rec['max']}  "
                     f"(n={rec['count']})")
    lines += [
        f"  harness              {'trustworthy' if health['trustworthy'] else 'NOT trustworthy'}; loop lag "
        f"p99 {health['loop_lag_ms']['p99']} ms, max {health['loop_lag_ms']['max']} ms; CPU peak "
        f"{health['cpu_peak_pct']:g}%",
    ]
    lines += [f"    - {reason}" for reason in health["reasons"]]
    lines += [f"    error: {reason} (x{n})" for reason, n in list(summary["errors_by_reason"].items())[:5]]
    for gate in summary["gates"]:
        lines.append(f"  gate {gate['expr']:<20} {'PASS' if gate['passed'] else 'FAIL'} (value {gate['value']:g})")
    lines.append(f"  verdict: {'PASSED' if summary['passed'] else 'FAILED'}   report: {folder}")
    return "\n".join(lines)
