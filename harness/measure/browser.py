"""Browser probes' figures (``--browser-probes``): kept apart from the socket-level ones, always.

A page's deliveries are recorded by a :class:`~harness.measure.recorder.Recorder` of their own (the same
decoding, ramp/steady split and per-stream accounting as synthetic subscribers, so nothing is written
twice), whose arrival time is the page's clock (``performance.timeOrigin + performance.now()``, the same
host's wall clock). Its records travel as ``FinalReport.browser`` and are joined here with the run's
publisher ledgers: a page is owed what was published on its channel while it was subscribed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import cast

from harness.measure import hist
from harness.measure.accounting import account
from harness.measure.recorder import Recorder, counts_record
from harness.measure.records import BrowserSummary, BrowserWire, FinalReport, LatencySummary, LedgerWire


def to_wire(recorder: Recorder, pages: int, end_ns: int) -> BrowserWire:
    """The browser recorder's state at the end of the run (its open windows end at ``end_ns``). Its client
    lag (handled - arrival) is the pages' report lag: how late the harness heard of an in-page arrival."""
    recorder.interval_report()  # folds the last interval into the cumulative histograms
    return {
        "pages": pages,
        "latency": hist.encode(recorder.latency),
        "ramp": hist.encode(recorder.ramp),
        "report_lag": hist.encode(recorder.client_lag),
        "delivered": recorder.delivered,
        "counts": counts_record(recorder.counts),
        "error_reasons": dict(recorder.error_reasons.most_common(20)),
        "subscribers": [s.to_wire(end_ns) for s in recorder.subscribers],
    }


def section(finals: list[FinalReport], ledgers: list[LedgerWire]) -> tuple[LatencySummary, BrowserSummary] | None:
    """summary.json ``browser_latency_ms`` and ``browser``, or None when no generator ran browser probes."""
    wires = [f["browser"] for f in finals if "browser" in f]
    if not wires:
        return None
    counts: dict[str, int] = {}
    reasons: dict[str, int] = {}
    for wire in wires:
        for reason, n in wire["error_reasons"].items():
            reasons[reason] = reasons.get(reason, 0) + int(n)
        for key, value in cast(Mapping[str, int], wire["counts"]).items():
            counts[key] = counts.get(key, 0) + int(value)
    totals = account(ledgers, [sub for wire in wires for sub in wire["subscribers"]])
    browser: BrowserSummary = {
        "pages": sum(int(w["pages"]) for w in wires),
        "opened": counts.get("opened", 0),
        "failed": counts.get("failed", 0),
        "dropped": counts.get("dropped", 0),
        "reconnected": counts.get("reconnected", 0),
        "expected": totals.expected,
        "delivered": totals.delivered,
        "lost": totals.lost,
        "duplicated": totals.duplicated,
        "out_of_order": totals.out_of_order,
        "outside_windows": totals.unexpected,
        "errors": counts.get("errors", 0),
        "errors_by_reason": dict(sorted(reasons.items(), key=lambda kv: -kv[1])[:20]),
        "ramp_ms": hist.latency_summary(hist.merge([w["ramp"] for w in wires])),
        "report_lag_ms": hist.latency_summary(hist.merge([w["report_lag"] for w in wires])),
    }
    return hist.latency_summary(hist.merge([w["latency"] for w in wires])), browser
