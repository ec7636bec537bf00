"""Browser probes without a browser: what a page reports becomes exact figures of their own.

The pages' reports (``loop/probes.py``: ``s`` subscribed, ``d<ms> <envelope head>`` a delivery, ``x``
dropped, ``e<reason>``) are fed here by hand; the join with the publishers' ledgers
(``measure/browser.py``), the gates and the printout are checked with exact counts.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any, ClassVar

import pytest

from harness.loop.probes import BrowserProbes, ProbePage
from harness.measure import gates, probe
from harness.measure.accounting import Ledger
from harness.measure.records import FinalReport
from harness.measure.summary import build, format_text
from harness.providers.base import BrowserPage

RUN = "run1"
STREAM = probe.stream_id("pub", 0, "")
CHANNEL = probe.channel_name(0)
KEY = "app.keyid:sup3rs3cret"


class StubProvider:
    """What the probes ask of a provider: its page and its secret patterns."""

    secret_patterns: ClassVar[tuple[re.Pattern[str], ...]] = (re.compile(r"\b[\w-]+\.[\w-]+:[\w+/=-]{6,}"),)

    def browser_page(self, channel: str) -> BrowserPage:
        return BrowserPage("", "", {"channel": channel})


def make_probes(pages: int = 2) -> BrowserProbes:
    probes = BrowserProbes(StubProvider(), "chromium", Path("."), RUN, "", (KEY,))  # type: ignore[arg-type]
    probes.asked = pages
    for index in range(pages):
        probes.pages.append(ProbePage(index, CHANNEL, BrowserPage("", ""), probes.recorder.new_subscriber(CHANNEL)))
    return probes


def report(probes: BrowserProbes, page: int, payload: str) -> None:
    probes._on_report(probes.pages[page], {"name": "rtbReport", "payload": payload})


def delivery(seq: int, due_ns: int, latency_ms: float) -> str:
    head = probe.encode(RUN, STREAM, seq, due_ns)
    return f"d{(due_ns + latency_ms * 1e6) / 1e6!r} {head}"


def final_with(probes: BrowserProbes, ledger: Ledger, end_ns: int) -> FinalReport:
    """A generator's final report: no synthetic subscriber, the publisher's ledger, the pages."""
    from harness.measure.recorder import Recorder

    socket = Recorder(RUN)
    final = socket.final_report(end_ns)
    final["ledgers"] = [ledger.to_wire()]
    final["browser"] = probes.to_wire(end_ns)
    return final


def summary_of(final: FinalReport, *exprs: str) -> Any:
    load = {"users": 1, "publish_rate": 10.0, "channels": 1, "payload_bytes": 0, "duration_s": 1.0, "processes": 1}
    return build(
        provider="socketio",
        target="embedded",
        load=load,  # type: ignore[arg-type]
        finals=[final],
        gates=gates.parse_all(list(exprs) or ["p99<50ms"]),
        run_id=RUN,
        started_at="",
    )


def test_every_page_delivery_is_timed_and_accounted_apart() -> None:
    probes = make_probes()
    for page in (0, 1):
        report(probes, page, "s")
    opened_ns = probes.recorder.subscribers[0].windows[0][0]
    ledger = Ledger(STREAM, CHANNEL)
    for seq in range(4):  # all sent after both pages subscribed
        ledger.sent_ns.append(opened_ns + 1_000_000 * (seq + 1))
    for seq in range(4):
        report(probes, 0, delivery(seq, ledger.sent_ns[seq], 3.0))
    for seq in (0, 1, 3):  # page 1 misses seq 2
        report(probes, 1, delivery(seq, ledger.sent_ns[seq], 5.0))
    report(probes, 1, delivery(1, ledger.sent_ns[1], 9.0))  # and gets seq 1 twice
    summary = summary_of(final_with(probes, ledger, time.time_ns() + 10**9), "browser_p99<4ms", "browser_loss==0")
    pages = summary["browser"]
    assert pages["pages"] == 2 and pages["opened"] == 2
    assert (pages["expected"], pages["delivered"], pages["lost"], pages["duplicated"]) == (8, 7, 1, 1)
    assert summary["browser_latency_ms"]["count"] == 7
    assert summary["browser_latency_ms"]["min"] == pytest.approx(3.0, abs=0.01)
    assert summary["browser_latency_ms"]["max"] == pytest.approx(5.0, abs=0.01)
    assert summary["messages"]["expected"] == 0 and summary["latency_ms"]["count"] == 0  # nothing mixed in
    assert [(g["expr"], g["passed"]) for g in summary["gates"]] == [
        ("browser_p99<4ms", False),
        ("browser_loss==0", False),
    ]
    text = format_text(summary, "/tmp/x")
    assert "browser latency ms" in text and "expected 8  delivered 7  lost 1" in text


def test_a_page_owes_only_what_was_published_while_it_was_subscribed() -> None:
    probes = make_probes(1)
    ledger = Ledger(STREAM, CHANNEL)
    before = time.time_ns() - 10**9
    ledger.sent_ns.append(before)  # before the page subscribed: not owed
    report(probes, 0, "s")
    start = probes.recorder.subscribers[0].windows[0][0]
    ledger.sent_ns.append(start + 1000)
    report(probes, 0, delivery(1, ledger.sent_ns[1], 2.0))
    report(probes, 0, "x")  # dropped: what is sent now is owed, and lost unless it comes
    ledger.sent_ns.append(time.time_ns() + 1)
    report(probes, 0, "s")  # back
    assert probes.recorder.counts["dropped"] == 1 and probes.recorder.counts["reconnected"] == 1
    ledger.sent_ns.append(time.time_ns() + 2)
    report(probes, 0, delivery(3, ledger.sent_ns[3], 2.0))
    pages = summary_of(final_with(probes, ledger, time.time_ns() + 10**9))["browser"]
    assert (pages["expected"], pages["delivered"], pages["lost"]) == (3, 2, 1)


def test_page_errors_are_counted_with_their_reason_and_no_secret() -> None:
    probes = make_probes(1)
    report(probes, 0, f"econnect_error: bad key {KEY}")
    report(probes, 0, "dnot-a-number rtb1|x")
    report(probes, 0, "d1700000000000.5 not a probe")
    reasons = dict(probes.recorder.error_reasons)
    assert sum(reasons.values()) == 3 == probes.recorder.counts["errors"]
    assert not any("sup3rs3cret" in reason for reason in reasons), reasons
    assert any("a page reported a delivery without its arrival time" in reason for reason in reasons)


def test_browser_gates_parse_and_fail_without_data() -> None:
    gate = gates.parse("browser_p99<50ms")
    assert gate.threshold == 50.0
    empty = {"browser_latency_ms": {"count": 0, "p99": 0.0}, "messages": {}}
    assert gate.evaluate(empty)["passed"] is False
    assert gates.parse("browser_loss==0").evaluate({"messages": {}})["passed"] is True  # no probes: no loss
    with pytest.raises(gates.GateError):
        gates.parse("browser_p99<50")


def test_without_probes_the_summary_has_no_browser_section() -> None:
    from harness.measure.recorder import Recorder

    final = Recorder(RUN).final_report(time.time_ns())
    summary = summary_of(final)
    assert "browser" not in summary and "browser_latency_ms" not in summary
