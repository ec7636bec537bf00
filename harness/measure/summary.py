"""Build summary.json (DESIGN schema 1) from merged worker reports, and say it in a few lines."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from harness.measure import appstats, browser, hist, presence
from harness.measure import gates as gates_mod
from harness.measure.accounting import NodeTotals, account
from harness.measure.records import (
    AppSummary,
    FinalReport,
    GeneratorHealth,
    HarnessHealth,
    LatencySummary,
    LedgerWire,
    Load,
    Messages,
    NodeSummary,
    RxStamps,
    SubscriberWire,
    Summary,
)

SCHEMA = 1
LAG_SHARE_OF_GATE = 0.10  # publisher lag p99 above 10% of the tightest latency gate makes a run suspect
#: Client lag (handled - arrival) p99 above this: the generator ran so far behind its sockets that their
#: buffers may fill and TCP flow control may slow the server's sends, i.e. the generator shapes the wire.
CLIENT_LAG_LIMIT_MS = 1000.0
#: Messages read together with bytes behind them carry the later bytes' arrival (the kernel merges queued
#: segments): above this share of deliveries, the latency is partly the generator's reading late.
SHARED_STAMP_SHARE = 0.01
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


def _p99_max_ms(encoded: str | None) -> tuple[float, float]:
    if not encoded:
        return 0.0, 0.0
    histogram = hist.decode(encoded)
    if not histogram.get_total_count():
        return 0.0, 0.0
    return (round(hist.percentiles(histogram, [99.0])[0] / 1000.0, 3), round(histogram.get_max_value() / 1000.0, 3))


#: what a failure says when the process has no file descriptor left (EMFILE)
OUT_OF_FDS = "Too many open files"


def harness_health(finals: list[FinalReport], gates: list[gates_mod.Gate]) -> HarnessHealth:
    """Is each generator's lateness out of the numbers? Arrivals are stamped by the kernel, so a busy
    generator no longer inflates latency by reading late; it still can by publishing late (the publisher
    runs on the same loop, and latency counts from the due time) or by falling so far behind that its
    sockets back up into the server. Loop lag is reported for reference."""
    limit = lag_limit_ms(gates)
    reasons: list[str] = []
    worst_p99 = worst_max = cpu_peak = 0.0
    generators: list[GeneratorHealth] = []
    for index, final in enumerate(finals):
        p99, lag_max = _p99_max_ms(final["health"]["lag"])
        publish_p99, publish_max = _p99_max_ms(final.get("publish_lag"))
        client_p99, client_max = _p99_max_ms(final.get("client_lag"))
        cpu = final["health"]["cpu_samples"]
        peak = max(cpu) if cpu else 0.0
        generators.append(
            {
                "generator": index,
                "loop_lag_p99_ms": p99,
                "loop_lag_max_ms": lag_max,
                "publish_lag_p99_ms": publish_p99,
                "publish_lag_max_ms": publish_max,
                "client_lag_p99_ms": client_p99,
                "client_lag_max_ms": client_max,
                "cpu_peak_pct": peak,
            }
        )
        worst_p99, worst_max, cpu_peak = max(worst_p99, p99), max(worst_max, lag_max), max(cpu_peak, peak)
        if publish_p99 > limit:
            reasons.append(
                f"generator {index}: publisher lag p99 {publish_p99:g} ms exceeds {limit:g} ms "
                f"(10% of the tightest latency gate): messages left late and latency counts from their "
                f"due time"
            )
        if client_p99 > CLIENT_LAG_LIMIT_MS:
            reasons.append(
                f"generator {index}: client lag p99 {client_p99:g} ms exceeds {CLIENT_LAG_LIMIT_MS:g} ms: "
                f"it read its sockets so late that their buffers may have slowed the server"
            )
        callback = int(final.get("rx_clocks", {}).get("callback", 0))
        if callback and p99 > limit:
            reasons.append(
                f"generator {index}: event-loop lag p99 {p99:g} ms exceeds {limit:g} ms while "
                f"{callback} subscribers are timed in a library callback (--client official)"
            )
        if _saturated(cpu):
            reasons.append(
                f"generator {index}: CPU at or above {CPU_SATURATED_PCT:g}% of a core for "
                f"{CPU_SATURATED_SAMPLES}+ seconds"
            )
    return {
        "trustworthy": not reasons,
        "reasons": reasons,
        "loop_lag_ms": {"p99": worst_p99, "max": worst_max, "limit": limit},
        "cpu_peak_pct": cpu_peak,
        "generators": generators,
    }


def fanout_histogram(finals: list[FinalReport]) -> Any:
    """Per published message, its slowest delivery over every generator (DESIGN rule 6)."""
    slowest: dict[tuple[str, int], int] = {}
    for final in finals:
        for stream, (seqs, values) in final.get("fanout", {}).items():
            for seq, value in zip(seqs, values, strict=True):
                key = (stream, int(seq))
                if value > slowest.get(key, -1):
                    slowest[key] = int(value)
    histogram = hist.new()
    for value in slowest.values():
        histogram.record_value(max(1, value))
    return histogram


def nodes_section(finals: list[FinalReport], totals: dict[str, NodeTotals]) -> dict[str, NodeSummary]:
    """Per server node, in name order: its windows' accounting (``totals``) and its steady-state latency
    merged exactly over every generator. Empty when no connection named a node; a node that only answered
    connections that then failed (no window, no delivery) is left out."""
    latency: dict[str, list[str]] = {}
    for final in finals:
        for node, encoded in final.get("node_latency", {}).items():
            latency.setdefault(node, []).append(encoded)
    section: dict[str, NodeSummary] = {}
    for node in sorted(set(latency) | set(totals)):
        share = totals.get(node, NodeTotals())
        merged = hist.merge(latency.get(node, []))
        if not share.windows and not merged.get_total_count():
            continue
        section[node] = {
            "subscribers": share.subscribers,
            "windows": share.windows,
            "expected": share.expected,
            "delivered": share.delivered,
            "lost": share.lost,
            "latency_ms": hist.connect_summary(merged),
        }
    return section


def rx_clock(finals: list[FinalReport]) -> tuple[str, dict[str, int]]:
    """Which clock point timed the arrivals: one name, or ``mixed`` with the subscriber counts."""
    counts: dict[str, int] = {}
    for final in finals:
        for name, n in final.get("rx_clocks", {}).items():
            counts[name] = counts.get(name, 0) + int(n)
    named = [name for name, n in counts.items() if n]
    if len(named) == 1:
        return named[0], counts
    return ("mixed" if named else "none"), counts


def build(
    *,
    provider: str,
    target: str,
    load: Load,
    finals: list[FinalReport],
    gates: list[gates_mod.Gate],
    run_id: str,
    started_at: str,
) -> Summary:
    """The whole summary from every generator's final report; histograms merge exactly."""
    latency = hist.merge([f["latency"] for f in finals])
    connect = hist.merge([f["connect"] for f in finals])
    reconnect = hist.merge([f["reconnect"] for f in finals if "reconnect" in f])
    ramp = hist.merge([f["ramp"] for f in finals if "ramp" in f])
    client_lag = hist.merge([f["client_lag"] for f in finals if "client_lag" in f])
    publish_lag = hist.merge([f["publish_lag"] for f in finals if "publish_lag" in f])
    cross_clock = hist.merge([f["cross_clock"] for f in finals if "cross_clock" in f])
    fanout = fanout_histogram(finals)
    clock_name, clock_counts = rx_clock(finals)
    counts: dict[str, int] = {}
    reasons: dict[str, int] = {}
    ledgers: list[LedgerWire] = []
    subscribers: list[SubscriberWire] = []
    for final in finals:
        for key, value in cast(Mapping[str, int], final["counts"]).items():  # every counter is an int
            counts[key] = counts.get(key, 0) + int(value)
        for key, value in final["error_reasons"].items():
            reasons[key] = reasons.get(key, 0) + int(value)
        ledgers.extend(final["ledgers"])
        subscribers.extend(final["subscribers"])
    totals = account(ledgers, subscribers)
    messages: Messages = {
        "published": counts.get("published", 0),
        "publish_failed": totals.publish_failed,
        "expected": totals.expected,
        "delivered": totals.delivered,
        "lost": totals.lost,
        "duplicated": totals.duplicated,
        "out_of_order": totals.out_of_order,
        "outside_windows": totals.unexpected,
        "errors": counts.get("errors", 0),
    }
    stamps = rx_stamps(finals)
    steady = [int(f["steady_from_ns"]) for f in finals if 0 < int(f.get("steady_from_ns", 0)) < 2**63 - 1]
    summary: Summary = {
        "schema": SCHEMA,
        "provider": provider,
        "target": target,
        "run_id": run_id,
        "started_at": started_at,
        "load": load,
        "latency_ms": hist.latency_summary(latency),
        "fanout_ms": hist.latency_summary(fanout),
        "ramp_ms": hist.latency_summary(ramp),
        "client_lag_ms": hist.latency_summary(client_lag),
        "publish_lag_ms": hist.latency_summary(publish_lag),
        "rx_clock": clock_name,
        "rx_clocks": clock_counts,
        "connect_ms": hist.connect_summary(connect),
        "messages": messages,
        "connections": {
            "opened": counts.get("opened", 0),
            "failed": counts.get("failed", 0),
            "dropped": counts.get("dropped", 0),
            "reconnected": counts.get("reconnected", 0),
        },
        "reconnect_ms": hist.connect_summary(reconnect),
        "clock": "server" if counts.get("server_clock", 0) else "harness",
        "errors_by_reason": dict(sorted(reasons.items(), key=lambda kv: -kv[1])[:20]),
        "foreign_messages": counts.get("foreign", 0),
        "harness": harness_health(finals, gates),
        "histograms": {"connect": hist.encode(connect), "ramp": hist.encode(ramp), "fanout": hist.encode(fanout)},
        "rx_stamps": stamps,
        "steady_from_ns": max(steady) if steady else None,  # deliveries due earlier are in ramp_ms
        "gates": [],  # evaluated below, once the figures they read are final
        "passed": False,
    }
    delivered = summary["latency_ms"]["count"]  # shared stamps are counted in the steady state only
    if delivered and stamps["shared_stamps"] > SHARED_STAMP_SHARE * delivered:
        summary["harness"]["trustworthy"] = False
        summary["harness"]["reasons"].append(
            f"{stamps['shared_stamps']} messages ({100 * stamps['shared_stamps'] / delivered:.2g}% of steady "
            f"deliveries) waited in a socket behind later bytes and carry their arrival stamp: the generator read late"
        )
    if not summary["latency_ms"]["count"] and summary["ramp_ms"]["count"]:
        summary["harness"]["trustworthy"] = False
        summary["harness"]["reasons"].append(
            "the run ended before the steady state (spawning complete + --warmup): every delivery is in ramp_ms"
        )
    out_of_fds = sum(n for reason, n in reasons.items() if OUT_OF_FDS in reason)
    if out_of_fds:
        summary["harness"]["trustworthy"] = False
        summary["harness"]["reasons"].append(
            f"{out_of_fds} connections or requests failed with '{OUT_OF_FDS}': the generator (or the embedded target, "
            f"which shares its limit) ran out of file descriptors; raise `ulimit -n` or use more --processes"
        )
    if summary["clock"] == "server":  # DESIGN rule 2: clock-dependent numbers are flagged, never mixed
        summary["harness"]["trustworthy"] = False
        summary["harness"]["reasons"].append(
            f"latency measured against the server's clock (--timestamp-field), so it includes the clock offset; "
            f"{counts.get('clock_skew', 0)} deliveries arrived before their server timestamp"
        )
    if cross_clock.get_total_count():  # DESIGN rule 3: kept apart, flagged, in no other figure
        summary["cross_clock_ms"] = hist.latency_summary(cross_clock)
    app = appstats.summary_section(finals, summary["latency_ms"], float(load["duration_s"]))
    if app is not None:
        summary["todo_app"] = app
        members = presence.summary_section([f["presence"] for f in finals if "presence" in f])
        if members is not None:
            app["presence"] = members
    nodes = nodes_section(finals, totals.nodes)
    if nodes:
        summary["nodes"] = nodes
    pages = browser.section(finals, ledgers)
    if pages is not None:  # browser probes: their own figures and accounting, never in the ones above
        summary["browser_latency_ms"], summary["browser"] = pages
    summary["gates"] = gates_mod.evaluate_all(gates, summary)
    summary["passed"] = all(g["passed"] for g in summary["gates"])
    return in_record_order(summary)


def in_record_order(summary: Summary) -> Summary:
    """The summary's keys in the ``Summary`` record's order (optional sections are added late, read in place)."""
    ordered = {key: summary[key] for key in Summary.__annotations__ if key in summary}  # type: ignore[literal-required]
    return cast(Summary, ordered)


def rx_stamps(finals: list[FinalReport]) -> RxStamps:
    """Every generator's socket-read counts added up (a final without them counts as none)."""
    total: RxStamps = {"reads": 0, "unstamped_reads": 0, "shared_stamps": 0}
    for final in finals:
        stamps = final.get("rx_stamps", {})
        total["reads"] += int(stamps.get("reads", 0))
        total["unstamped_reads"] += int(stamps.get("unstamped_reads", 0))
        total["shared_stamps"] += int(stamps.get("shared_stamps", 0))
    return total


def format_text(summary: Summary, folder: str) -> str:
    """The end-of-run printout: what a user reads in the terminal or a CI log."""
    lat, con, msg = summary["latency_ms"], summary["connect_ms"], summary["messages"]
    conn, health = summary["connections"], summary["harness"]
    lines = [
        f"rtbench {summary['provider']} ({summary['target']} target) — {summary['load']['users']} users, "
        f"{summary['load']['publish_rate']:g} msg/s, {summary['load']['duration_s']:g} s",
        *_payload_line(summary["load"]),
        f"  delivery latency ms  p50 {lat['p50']}  p90 {lat['p90']}  p95 {lat['p95']}  p99 {lat['p99']}  "
        f"p99.9 {lat['p999']}  max {lat['max']}  (n={lat['count']})",
        *_optional_line("fan-out ms", summary.get("fanout_ms")),
        *_optional_line("ramp-up ms", summary.get("ramp_ms")),
        *_optional_line(f"client lag ms ({summary.get('rx_clock', '?')} clock)", summary.get("client_lag_ms")),
        *_cross_clock_lines(summary.get("cross_clock_ms")),
        f"  connect ms           p50 {con['p50']}  p95 {con['p95']}  p99 {con['p99']}  max {con['max']}  "
        f"(n={con['count']})",
        f"  messages             published {msg['published']}  publish failed {msg.get('publish_failed', 0)}  "
        f"expected {msg['expected']}  delivered "
        f"{msg['delivered']}  lost {msg['lost']}  duplicated {msg['duplicated']}  out of order "
        f"{msg['out_of_order']}  errors {msg['errors']}",
        f"  connections          opened {conn['opened']}  failed {conn['failed']}  dropped {conn['dropped']}  "
        f"reconnected {conn['reconnected']}",
        *_node_lines(summary.get("nodes", {})),
        *_app_lines(summary.get("todo_app")),
        *presence.format_lines(summary.get("todo_app", {}).get("presence")),
        *_browser_lines(summary),
    ]
    rec = summary.get("reconnect_ms", {})
    if rec.get("count"):
        lines.append(
            f"  reconnect ms         p50 {rec['p50']}  p95 {rec['p95']}  p99 {rec['p99']}  max {rec['max']}  "
            f"(n={rec['count']})"
        )
    lines += [
        f"  harness              {'trustworthy' if health['trustworthy'] else 'NOT trustworthy'}; loop lag "
        f"p99 {health['loop_lag_ms']['p99']} ms, max {health['loop_lag_ms']['max']} ms; CPU peak "
        f"{health['cpu_peak_pct']:g}%",
    ]
    lines += [f"    - {reason}" for reason in health["reasons"]]
    lines += [f"    error: {reason} (x{n})" for reason, n in list(summary["errors_by_reason"].items())[:5]]
    for gate in summary["gates"]:
        lines.append(f"  gate {gate['expr']:<20} {'PASS' if gate['passed'] else 'FAIL'} (value {gate['value']:g})")
    verdict = "PASSED" if summary["passed"] else "FAILED"
    if summary.get("partial"):
        verdict = f"PARTIAL (a load generator was lost; gates {verdict.lower()} on what it reported)"
    elif summary.get("interrupted"):
        verdict = f"INTERRUPTED (gates {verdict.lower()} for the time that ran)"
    lines.append(f"  verdict: {verdict}   report: {folder}")
    return "\n".join(lines)


def _app_lines(app: AppSummary | None) -> list[str]:
    """The todo-app workload: the mutation, the event, fresh data and the refetch stampede."""
    if app is None:
        return []
    ref = app["refetch"]
    made = {kind: n for kind, n in app.get("mutations_by_kind", {}).items() if n}
    mix = "  ".join(f"{kind} {n}" for kind, n in made.items()) if len(made) > 1 else ""
    lines = [
        f"  todo app             {app['readers']} readers, {app['mutations']} mutations "
        f"({app['mutation_errors']} failed), refetch {app['policy']}; fresh {app['fresh']}  stale {app['stale']}"
    ]
    if mix:
        lines.append(f"  mutations            {mix}")
    for label, block in (
        ("mutation ms", app["mutation_ms"]),
        ("event ms", app["event_ms"]),
        ("fresh ms", app["fresh_ms"]),
        ("event -> fresh ms", app["after_event_ms"]),
        ("refetch ms", ref["latency_ms"]),
    ):
        lines += _optional_line(label, block)
    lines.append(
        f"  refetch              {ref['requests']} GETs ({ref['per_s']:g}/s)  errors {ref['errors']}  "
        f"coalesced {ref['coalesced']}  retries {ref['retries']}"
        + (f"  deferred {ref['deferred']}" if ref.get("deferred") else "")
    )
    optimistic = app.get("optimistic")
    if optimistic is not None:
        lines.append(
            f"  optimistic           {optimistic['applied']} applied, {optimistic['rolled_back']} rolled back"
            + "".join(f"; {n}: {reason}" for reason, n in optimistic["rollbacks_by_reason"].items())
        )
    for reason, n in app.get("stale_by_reason", {}).items():
        lines.append(f"  stale                {n}: {reason}")
    return lines


def _browser_lines(summary: Summary) -> list[str]:
    """Browser probes: the in-page latency beside the socket-level line above, and the pages' accounting."""
    pages, lat = summary.get("browser"), summary.get("browser_latency_ms")
    if pages is None or lat is None:
        return []
    return [
        f"  browser latency ms   p50 {lat['p50']}  p90 {lat['p90']}  p95 {lat['p95']}  p99 {lat['p99']}  "
        f"p99.9 {lat['p999']}  max {lat['max']}  (n={lat['count']}; in-page arrival, official JS client)",
        f"  browser pages        {pages['pages']} asked, {pages['opened']} subscribed ({pages['failed']} failed)  "
        f"expected {pages['expected']}  delivered {pages['delivered']}  lost {pages['lost']}  duplicated "
        f"{pages['duplicated']}  out of order {pages['out_of_order']}  errors {pages['errors']}",
        *[f"    browser error: {reason} (x{n})" for reason, n in list(pages["errors_by_reason"].items())[:5]],
    ]


def _payload_line(load: Load) -> list[str]:
    """Said when the messages were larger than asked: the probe envelope is never cut."""
    requested = load.get("payload_bytes_requested")
    if requested is None:
        return []
    return [
        f"  payload              {load['payload_bytes']} bytes, raised from --payload-bytes {requested}: "
        "the probe envelope is sent whole"
    ]


def _optional_line(label: str, block: LatencySummary | None) -> list[str]:
    """A percentile line for a figure that only some runs have."""
    if not block or not block.get("count"):
        return []
    return [
        f"  {label:<20} p50 {block['p50']}  p95 {block['p95']}  p99 {block['p99']}  max {block['max']}  "
        f"(n={block['count']})"
    ]


def _cross_clock_lines(block: LatencySummary | None) -> list[str]:
    """Deliveries timed against another host's clock: shown apart and flagged, when there were any."""
    lines = _optional_line("cross-clock ms", block)
    if lines:
        lines.append(
            "    - clock-dependent: published on another host, so these include the two clocks' offset; "
            "not in the latency, fan-out or gates"
        )
    return lines


def _node_lines(nodes: Mapping[str, NodeSummary]) -> list[str]:
    """One line per server node (``X-Rtbench-Node``), when the servers named theirs."""
    lines = []
    for name, node in nodes.items():
        lat = node["latency_ms"]
        lines.append(
            f"  node {name:<15} subscribers {node['subscribers']} (windows {node['windows']})  expected "
            f"{node['expected']}  delivered {node['delivered']}  lost {node['lost']}  latency ms p50 {lat['p50']}  "
            f"p95 {lat['p95']}  p99 {lat['p99']}  max {lat['max']}  (n={lat['count']})"
        )
    return lines
