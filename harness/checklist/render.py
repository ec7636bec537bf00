"""What a checklist looks like to people and to CI: result lines as items finish, the providers x items
table, JUnit XML (one testcase per item), JSON, and the GitHub step summary. Secrets never get through:
every text is redacted before it is written anywhere."""

from __future__ import annotations

import json
import os
import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness.checklist.outcome import FAIL, ITEMS, SKIP, Checklist, ItemResult
from harness.report.html import REDACTED, known_secrets, redact_value


class Redactor:
    """Cuts a provider's secret patterns, URL credentials and credential-like environment values out."""

    def __init__(self, patterns: Sequence[re.Pattern[str]] = ()) -> None:
        self.patterns = tuple(patterns)
        self.secrets = [s for s in known_secrets() if len(s) >= 4]

    def __call__(self, value: Any) -> Any:
        value = redact_value(value, self.patterns)
        if isinstance(value, str):
            for secret in self.secrets:
                value = value.replace(secret, REDACTED)
        elif isinstance(value, list):
            value = [self(v) for v in value]
        elif isinstance(value, dict):
            value = {k: self(v) for k, v in value.items()}
        return value


def _figure(result: ItemResult) -> str:
    return "" if result.figure_ms is None else f"{result.figure_ms:.1f} ms"


def result_line(provider: str, result: ItemResult) -> str:
    """``socketio  reconnect    PASS  1004.6 ms  back by itself ...``"""
    return f"{provider:<9} {result.item:<12} {result.status:<4}  {_figure(result):>10}  {result.detail}"


def table(checklists: Sequence[Checklist]) -> str:
    """Providers x items: the status and figure of each (plain text, aligned)."""
    head = ["provider", *ITEMS, "verdict"]
    rows = [head]
    for checklist in checklists:
        cells = {r.item: f"{r.status} {_figure(r)}".strip() for r in checklist.results}
        rows.append([checklist.provider, *(cells.get(i, "-") for i in ITEMS), "ok" if checklist.ok else "FAILED"])
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows)


def markdown(checklists: Sequence[Checklist]) -> str:
    """The step summary: the table, then each failing or skipped item's reason."""
    lines = ["## rtbench check", "", "| provider | " + " | ".join(ITEMS) + " |", "|---" * (len(ITEMS) + 1) + "|"]
    notes = []
    for checklist in checklists:
        cells = {r.item: f"{r.status} {_figure(r)}".strip() for r in checklist.results}
        lines.append(f"| {checklist.provider} | " + " | ".join(cells.get(i, "-") for i in ITEMS) + " |")
        notes += [
            f"- **{checklist.provider} {r.item}** {r.status}: {r.detail}"
            for r in checklist.results
            if r.status != "PASS"
        ]
    return "\n".join([*lines, "", *notes, ""])


def to_json(checklists: Sequence[Checklist], redactor: Redactor) -> dict[str, Any]:
    data = {"ok": all(c.ok for c in checklists), "checklists": [c.to_json() for c in checklists]}
    redacted: dict[str, Any] = redactor(data)
    return redacted


def to_junit(checklists: Sequence[Checklist]) -> ET.ElementTree[ET.Element]:
    root = ET.Element("testsuites", {"name": "rtbench check"})
    for checklist in checklists:
        failures = sum(r.status == FAIL for r in checklist.results)
        skips = sum(r.status == SKIP for r in checklist.results)
        suite = ET.SubElement(
            root,
            "testsuite",
            {
                "name": f"rtbench.check.{checklist.provider}",
                "tests": str(len(checklist.results)),
                "failures": str(failures),
                "errors": "0",
                "skipped": str(skips),
                "time": f"{sum(r.seconds for r in checklist.results):.3f}",
            },
        )
        for result in checklist.results:
            case = ET.SubElement(
                suite,
                "testcase",
                {
                    "classname": f"rtbench.check.{checklist.provider}",
                    "name": result.item,
                    "time": f"{result.seconds:.3f}",
                },
            )
            if result.status == FAIL:
                ET.SubElement(case, "failure", {"type": "CheckFailed", "message": result.detail}).text = result.detail
            elif result.status == SKIP:
                ET.SubElement(case, "skipped", {"message": result.detail})
            else:
                ET.SubElement(case, "system-out").text = result.detail
    ET.indent(root)
    return ET.ElementTree(root)


def write_outputs(
    checklists: Sequence[Checklist], redactor: Redactor, *, junit: Path | None, json_path: Path | None
) -> None:
    """JUnit and JSON where asked, and the step summary when running under GitHub Actions."""
    clean = [redacted_checklist(c, redactor) for c in checklists]
    for path in (junit, json_path):
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
    if junit is not None:
        to_junit(clean).write(junit, encoding="utf-8", xml_declaration=True)
    if json_path is not None:
        json_path.write_text(json.dumps(to_json(clean, redactor), indent=2) + "\n", encoding="utf-8")
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        with open(summary, "a", encoding="utf-8") as out:
            out.write(markdown(clean))


def redacted_checklist(checklist: Checklist, redactor: Redactor) -> Checklist:
    results = [
        ItemResult(r.item, r.status, redactor(r.detail), r.figure_ms, r.figures, r.seconds) for r in checklist.results
    ]
    return Checklist(checklist.provider, checklist.target, redactor(checklist.host), results)
