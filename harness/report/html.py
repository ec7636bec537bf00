"""report.html: one self-contained page per run (inline CSS and SVG charts, no scripts, no network).

Built from the run folder alone (summary.json, timeseries.csv, latency.hlog), so ``rtbench report``
can regenerate it at any time. Headline numbers carry ``data-metric`` attributes naming their
summary.json key, which is how the browser test checks the page says what the summary says.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import jinja2

from harness.measure import gates as gates_mod
from harness.measure import hist
from harness.measure.records import Summary
from harness.report import charts
from harness.report.rundata import REPORT, RunData, load_run, percentile_curve

TEMPLATES = Path(__file__).resolve().parent / "templates"
REDACTED = "••••• (redacted)"
_SECRET_KEY = re.compile(r"secret|passw|token|api_?key|^key$|_key$|auth|credential|signature", re.I)
_SECRET_ENV = re.compile(r"SECRET|TOKEN|PASSWORD|API_KEY|^PUSHER_KEY$|_KEY$", re.I)
_URL_USERINFO = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<user>[^/@:\s]*):(?P<pw>[^/@\s]+)@", re.I)
MIN_SECRET_LEN = 6

# headline cards: (label, summary path, unit)
HEADLINE = (
    ("p50", "latency_ms.p50", "ms"),
    ("p95", "latency_ms.p95", "ms"),
    ("p99", "latency_ms.p99", "ms"),
    ("p99.9", "latency_ms.p999", "ms"),
    ("max", "latency_ms.max", "ms"),
    ("fan-out p99", "fanout_ms.p99", "ms"),
    ("deliveries", "messages.delivered", ""),
    ("lost", "messages.lost", ""),
    ("connect p95", "connect_ms.p95", "ms"),
)


# -- formatting ---------------------------------------------------------------------------------
LatencyKey = Literal["latency_ms", "fanout_ms", "ramp_ms", "client_lag_ms", "publish_lag_ms", "cross_clock_ms"]
LATENCY_ROWS: tuple[tuple[str, LatencyKey], ...] = (
    ("delivery", "latency_ms"),
    ("fan-out", "fanout_ms"),
    ("ramp-up", "ramp_ms"),
    ("client lag", "client_lag_ms"),
    ("publisher lag", "publish_lag_ms"),
    ("cross-clock (clock-dependent)", "cross_clock_ms"),
)
RX_CLOCK_TEXT = {
    "kernel": "kernel receive timestamp of the bytes",
    "read": "time of the socket read (no kernel stamp)",
    "callback": "client library's callback (includes the library's and the generator's delays)",
    "mixed": "mixed clocks, see rx_clocks in summary.json",
}


def _shown(summary: Summary, key: LatencyKey) -> bool:
    """The delivery row always; the others when the run has them."""
    block = summary.get(key)
    return isinstance(block, Mapping) and (key == "latency_ms" or bool(block.get("count")))


#: the todo app's rows (summary.json ``todo_app``), under the delivery rows when the run has them
APP_ROWS: tuple[tuple[str, str], ...] = (
    ("todo app: mutation", "mutation_ms"),
    ("todo app: fresh data", "fresh_ms"),
    ("todo app: event → fresh", "after_event_ms"),
)


def _app_rows(summary: Summary) -> list[tuple[str, Any]]:
    app: Mapping[str, Any] | None = summary.get("todo_app")
    if not isinstance(app, Mapping):
        return []
    rows: list[tuple[str, Any]] = [(label, app[key]) for label, key in APP_ROWS if key in app]
    rows.append(("todo app: refetch GET", app.get("refetch", {}).get("latency_ms", {})))
    presence = app.get("presence")
    if isinstance(presence, Mapping):  # --presence: the readers as members
        rows += [(label, presence[key]) for label, key in PRESENCE_ROWS if key in presence]
    return rows


#: the presence rows (summary.json ``todo_app.presence``), under the todo app's
PRESENCE_ROWS: tuple[tuple[str, str], ...] = (
    ("presence: member_added", "member_added_ms"),
    ("presence: member_removed", "member_removed_ms"),
    ("presence: join", "join_ms"),
)


def fmt_num(value: Any) -> str:
    """A number exactly as summary.json holds it (integers without '.0'), so the page and file agree."""
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    return str(value)


def lookup(summary: Mapping[str, Any], dotted: str) -> Any:
    node: Any = summary
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def gate_value_text(expr: str, value: float) -> str:
    """A gate's measured value in the unit people read it in."""
    try:
        gate = gates_mod.parse(expr)
    except gates_mod.GateError:
        return fmt_num(value)
    if gate.metric == "loss_rate":
        return f"{value * 100:.4g}%"
    if gate.is_latency or gate.metric.startswith("connect_"):
        return f"{fmt_num(value)} ms"
    if gate.metric == "deliveries_per_s":
        return f"{value:,.1f}/s"
    return fmt_num(value)


def loss_rate(summary: Summary) -> float:
    messages = summary.get("messages", {})
    expected = float(messages.get("expected", 0) or 0)
    return float(messages.get("lost", 0) or 0) / expected if expected else 0.0


def deliveries_per_s(summary: Summary) -> float:
    duration = float(summary.get("load", {}).get("duration_s", 0) or 0) or 1.0
    return float(summary.get("messages", {}).get("delivered", 0) or 0) / duration


# -- secrets ------------------------------------------------------------------------------------
def redact_value(value: Any, patterns: Sequence[re.Pattern[str]] = ()) -> Any:
    if isinstance(value, str):
        value = _URL_USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:{REDACTED}@", value)
        for pattern in patterns:
            value = pattern.sub(REDACTED, value)
        return value
    if isinstance(value, list):
        return [redact_value(v, patterns) for v in value]
    if isinstance(value, dict):
        return redact(value, patterns)
    return value


def redact(params: Mapping[str, Any], patterns: Sequence[re.Pattern[str]] = ()) -> dict[str, Any]:
    """Run parameters fit to print: secret-looking keys blanked, credentials cut out of URLs, and whatever
    matches one of ``patterns`` (the provider's ``secret_patterns``, e.g. an Ably key) cut out of values."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        if _SECRET_KEY.search(str(key)) and value not in (None, "", False):
            out[key] = REDACTED
        else:
            out[key] = redact_value(value, patterns)
    return out


def known_secrets(environ: Mapping[str, str] | None = None) -> list[str]:
    """Values of credential-like environment variables (PUSHER_SECRET, ABLY_API_KEY, ...)."""
    env = os.environ if environ is None else environ
    return sorted(
        {v for k, v in env.items() if _SECRET_ENV.search(k) and len(v) >= MIN_SECRET_LEN}, key=len, reverse=True
    )


def scrub(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, REDACTED)
    return text


# -- the page -----------------------------------------------------------------------------------
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        undefined=jinja2.ChainableUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["num"] = fmt_num
    return env


def _flatten(params: Mapping[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            rows.extend(_flatten(value, name + "."))
        elif isinstance(value, list):
            rows.append((name, ", ".join(str(v) for v in value)))
        else:
            rows.append((name, fmt_num(value)))
    return rows


def _latency_thresholds(summary: Summary) -> list[tuple[str, float]]:
    out = []
    for gate in summary.get("gates", []):
        try:
            parsed = gates_mod.parse(str(gate.get("expr", "")))
        except gates_mod.GateError:
            continue
        if parsed.is_latency:
            out.append((parsed.expr, parsed.threshold))
    return out


def _charts(run: RunData) -> dict[str, str]:
    summary, frame = run.summary, run.timeseries
    out: dict[str, str] = {}
    if run.latency is not None:
        pcts, values = percentile_curve(run.latency)
        out["distribution"] = charts.percentile_chart([(run.provider, pcts, values)], _latency_thresholds(summary))
    if len(frame):
        elapsed = frame["elapsed_s"].tolist()
        lines = [
            (c.replace("_ms", ""), frame[c].tolist()) for c in ("p50_ms", "p95_ms", "p99_ms") if c in frame.columns
        ]
        if lines:
            out["latency_over_time"] = charts.time_chart(elapsed, lines, "latency (ms)")
        if "connections" in frame.columns and "deliveries_per_s" in frame.columns:
            out["throughput"] = charts.time_chart(
                elapsed,
                [("connections", frame["connections"].tolist())],
                "open connections",
                right=("deliveries/s", frame["deliveries_per_s"].tolist()),
                right_label="deliveries/s",
            )
        health = [(c, frame[c].tolist()) for c in ("cpu_pct", "loop_lag_p99_ms") if c in frame.columns]
        if health:
            out["health"] = charts.time_chart(elapsed, health, "CPU % / loop lag ms")
    connect_hist = lookup(summary, "histograms.connect")
    connect = summary.get("connect_ms", {})
    if isinstance(connect_hist, str) and connect_hist:
        histogram = hist.decode(connect_hist)
        if histogram.get_total_count():
            pcts, values = percentile_curve(histogram)
            out["connect"] = charts.percentile_chart([("connect", pcts, values)], ylabel="connect time (ms)")
    elif int(connect.get("count", 0) or 0) > 0:
        keys = [k for k in ("p50", "p95", "p99", "max") if k in connect]
        out["connect"] = charts.bar_chart(keys, [float(connect[k]) for k in keys], "connect time (ms)")
    return out


BROWSER_POINTS = ("count", "p50", "p90", "p95", "p99", "p999", "max", "mean")


def _browser_rows(summary: Summary) -> list[tuple[str, dict[str, Any]]]:
    """Socket-level vs browser-level latency side by side (``--browser-probes``), and what the page adds:
    the difference of each percentile. Empty for a run without browser probes."""
    socket: Mapping[str, Any] | None = summary.get("latency_ms")
    page: Mapping[str, Any] | None = summary.get("browser_latency_ms")
    if not isinstance(socket, Mapping) or not isinstance(page, Mapping):
        return []
    added = {k: round(float(page.get(k, 0)) - float(socket.get(k, 0)), 3) for k in BROWSER_POINTS if k != "count"}
    return [
        ("socket (synthetic subscribers)", {k: socket.get(k) for k in BROWSER_POINTS}),
        ("browser (in-page, official JS client)", {k: page.get(k) for k in BROWSER_POINTS}),
        ("browser - socket", {"count": None, **added}),
    ]


def context(run: RunData) -> dict[str, Any]:
    """Everything the template shows, computed here so the template stays declarative."""
    summary = run.summary
    gates = [
        {**g, "value_text": gate_value_text(str(g.get("expr", "")), float(g.get("value", 0)))}
        for g in summary.get("gates", [])
    ]
    headline = [
        {"label": label, "key": key, "value": fmt_num(lookup(summary, key)), "unit": unit}
        for label, key, unit in HEADLINE
        if lookup(summary, key) is not None
    ]
    messages = summary.get("messages", {})
    accounting = [
        (name, fmt_num(messages.get(key, 0)))
        for name, key in (
            ("published", "published"),
            ("expected deliveries", "expected"),
            ("delivered", "delivered"),
            ("lost", "lost"),
            ("duplicated", "duplicated"),
            ("out of order", "out_of_order"),
            ("errors", "errors"),
        )
    ]
    accounting.append(("loss rate", f"{loss_rate(summary) * 100:.4g}%"))
    accounting.append(("deliveries/s", f"{deliveries_per_s(summary):,.1f}"))
    if "foreign_messages" in summary:
        accounting.append(("foreign messages (ignored)", fmt_num(summary["foreign_messages"])))
    parameters: dict[str, Any] = {
        "provider": summary.get("provider"),
        "target": summary.get("target"),
        "run_id": summary.get("run_id", ""),
        "started_at": summary.get("started_at", ""),
        "schema": summary.get("schema", ""),
    }
    parameters["load"] = summary.get("load", {})
    if isinstance(summary.get("parameters"), Mapping):
        parameters["options"] = summary["parameters"]
    health = summary.get("harness", {})
    return {
        "s": summary,
        "provider": run.provider,
        "target": summary.get("target", "?"),
        "load": summary.get("load", {}),
        "passed": bool(summary.get("passed", all(g.get("passed") for g in gates))),
        "gates": gates,
        "headline": headline,
        "latency": summary.get("latency_ms", {}),
        "latency_rows": [
            *[(label, summary[key]) for label, key in LATENCY_ROWS if _shown(summary, key)],
            *_app_rows(summary),
        ],
        "todo_app": summary.get("todo_app"),
        "cross_clock": _shown(summary, "cross_clock_ms"),
        "nodes": list(summary.get("nodes", {}).items()),
        "browser": summary.get("browser"),
        "browser_rows": _browser_rows(summary),
        "rx_clock_text": RX_CLOCK_TEXT.get(str(summary.get("rx_clock", "")), "arrival clock not recorded"),
        "connect": summary.get("connect_ms", {}),
        "accounting": accounting,
        "connections": summary.get("connections", {}),
        "errors": list(summary.get("errors_by_reason", {}).items()),
        "health": health,
        "trustworthy": bool(health.get("trustworthy", True)),
        "generators": health.get("generators", []),
        "parameters": _flatten(redact(parameters)),
        "charts": _charts(run),
        "intervals": len(run.timeseries),
    }


def render(run: RunData) -> str:
    page = environment().get_template("report.html.j2").render(**context(run))
    return scrub(page, known_secrets())


def write_report(folder: Path, output: Path | None = None) -> Path:
    """Render ``folder``'s report.html (or ``output``) from the stored files; returns the path."""
    run = load_run(folder)
    target = output or run.folder / REPORT
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(render(run), encoding="utf-8")
    os.replace(tmp, target)
    return target
