"""CI outputs of a gate verdict: JUnit XML (one testcase per gate) and a GitHub step-summary table.

CI systems render JUnit natively (GitLab, Jenkins, GitHub via test-reporter actions), so a latency
regression shows up as a failed test named after the gate, with the measured value in the message.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from pathlib import Path

from harness.measure.records import GateResult, Summary
from harness.report.html import fmt_num, gate_value_text


def _suite_name(summary: Summary) -> str:
    return f"rtbench.{summary.get('provider', 'run')}"


def to_junit(
    summary: Summary, results: Sequence[GateResult], *, require_trustworthy: bool = False
) -> ET.ElementTree[ET.Element]:
    """``results`` are evaluated gates ({expr, value, passed}); untrustworthy runs fail one more case
    when ``require_trustworthy`` is set."""
    name = _suite_name(summary)
    duration = fmt_num(float(summary.get("load", {}).get("duration_s", 0) or 0))
    cases: list[ET.Element] = []
    failures = 0
    for result in results:
        case = ET.Element("testcase", {"classname": name, "name": str(result["expr"]), "time": "0"})
        measured = gate_value_text(str(result["expr"]), float(result["value"]))
        if not result["passed"]:
            failures += 1
            failure = ET.SubElement(
                case, "failure", {"type": "GateFailed", "message": f"{result['expr']} failed: measured {measured}"}
            )
            failure.text = f"gate {result['expr']}: measured {measured}"
        out = ET.SubElement(case, "system-out")
        out.text = f"measured {measured}"
        cases.append(case)
    health = summary.get("harness", {})
    if require_trustworthy:
        case = ET.Element("testcase", {"classname": name, "name": "harness trustworthy", "time": "0"})
        if not health.get("trustworthy", True):
            failures += 1
            reasons = "; ".join(str(r) for r in health.get("reasons", [])) or "no reason given"
            failure = ET.SubElement(
                case, "failure", {"type": "Untrustworthy", "message": f"load generator saturated: {reasons}"}
            )
            failure.text = reasons
        cases.append(case)
    counts = {"tests": str(len(cases)), "failures": str(failures), "errors": "0", "skipped": "0", "time": duration}
    root = ET.Element("testsuites", {"name": "rtbench", **counts})
    suite = ET.SubElement(
        root, "testsuite", {"name": name, **counts, "timestamp": str(summary.get("started_at", "")).rstrip("Z")}
    )
    properties = ET.SubElement(suite, "properties")
    for key, value in (
        ("provider", summary.get("provider", "")),
        ("target", summary.get("target", "")),
        ("run_id", summary.get("run_id", "")),
        ("trustworthy", str(bool(health.get("trustworthy", True))).lower()),
        ("p50_ms", fmt_num(summary.get("latency_ms", {}).get("p50", ""))),
        ("p99_ms", fmt_num(summary.get("latency_ms", {}).get("p99", ""))),
    ):
        ET.SubElement(properties, "property", {"name": key, "value": str(value)})
    suite.extend(cases)
    ET.indent(root)
    return ET.ElementTree(root)


def write_junit(
    path: Path, summary: Summary, results: Sequence[GateResult], *, require_trustworthy: bool = False
) -> None:
    if path.parent != Path(""):
        path.parent.mkdir(parents=True, exist_ok=True)
    tree = to_junit(summary, results, require_trustworthy=require_trustworthy)
    tree.write(path, encoding="utf-8", xml_declaration=True)


def step_summary(summary: Summary, results: Sequence[GateResult], passed: bool) -> str:
    """A GitHub Actions job-summary block: verdict, headline latency, one table row per gate."""
    lat = summary.get("latency_ms", {})
    load = summary.get("load", {})
    health = summary.get("harness", {})
    icon = "✅" if passed else "❌"
    lines = [
        f"### {icon} rtbench gate: {summary.get('provider', '?')} ({summary.get('target', '?')} target) "
        f"— {'passed' if passed else 'FAILED'}",
        "",
        f"{fmt_num(load.get('users', '?'))} users, {fmt_num(load.get('publish_rate', '?'))} msg/s, "
        f"{fmt_num(load.get('duration_s', '?'))} s · latency ms p50 **{fmt_num(lat.get('p50', '?'))}** "
        f"p95 **{fmt_num(lat.get('p95', '?'))}** p99 **{fmt_num(lat.get('p99', '?'))}** "
        f"max {fmt_num(lat.get('max', '?'))} (n={fmt_num(lat.get('count', '?'))})",
        "",
        "| gate | measured | result |",
        "|---|---:|---|",
    ]
    for result in results:
        measured = gate_value_text(str(result["expr"]), float(result["value"]))
        verdict = "✅ pass" if result["passed"] else "❌ FAIL"
        lines.append(f"| `{result['expr']}` | {measured} | {verdict} |")
    if not health.get("trustworthy", True):
        lines += ["", "⚠️ **Not trustworthy**: the load generator was saturated."]
        lines += [f"- {reason}" for reason in health.get("reasons", [])]
    return "\n".join(lines) + "\n\n"


def append_step_summary(markdown: str, environ: Mapping[str, str] | None = None) -> bool:
    """Append to ``$GITHUB_STEP_SUMMARY`` when it is set; True when written."""
    path = (os.environ if environ is None else environ).get("GITHUB_STEP_SUMMARY", "")
    if not path:
        return False
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(markdown)
    return True
