"""Side by side: several runs (one per provider, same load) in compare.csv and one index.html.

Works on run folders only, so ``rtbench compare`` (fresh runs) and ``rtbench compare --from DIR ...``
(stored runs) share every line of it. Percentile curves come from each run's latency.hlog and are
overlaid on one HdrHistogram-style chart.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from harness.measure import gates as gates_mod
from harness.measure.records import GateResult
from harness.report import charts
from harness.report.html import (
    deliveries_per_s,
    environment,
    fmt_num,
    gate_value_text,
    known_secrets,
    loss_rate,
    scrub,
)
from harness.report.rundata import REPORT, SUMMARY, RunData, percentile_curve

CSV = "compare.csv"
INDEX = "index.html"
CSV_COLUMNS = (
    "label",
    "provider",
    "target",
    "users",
    "publish_rate",
    "duration_s",
    "p50_ms",
    "p95_ms",
    "p99_ms",
    "p999_ms",
    "max_ms",
    "connect_p95_ms",
    "delivered",
    "lost",
    "loss_rate",
    "deliveries_per_s",
    "cpu_peak_pct",
    "trustworthy",
    "passed",
    "gates",
    "run_dir",
    "error",
)


@dataclass
class Entry:
    """One provider's place in the comparison: a run, or the reason there is none."""

    label: str
    run: RunData | None = None
    error: str = ""
    gates: list[GateResult] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.run is not None and all(g["passed"] for g in self.gates)


def labels_for(runs: Sequence[RunData]) -> list[str]:
    """Provider names, disambiguated by folder when one provider appears more than once."""
    names = [r.provider for r in runs]
    return [
        name if names.count(name) == 1 else f"{name} ({r.folder.name})" for name, r in zip(names, runs, strict=True)
    ]


def make_entries(runs: Sequence[RunData], gates: Sequence[gates_mod.Gate] | None) -> list[Entry]:
    """Entries with gate verdicts: re-evaluated when ``gates`` are given, else those stored in each run."""
    entries = []
    for label, run in zip(labels_for(runs), runs, strict=True):
        results = gates_mod.evaluate_all(list(gates), run.summary) if gates else list(run.summary.get("gates", []))
        entries.append(Entry(label=label, run=run, gates=results))
    return entries


def _row(entry: Entry, out: Path) -> dict[str, Any]:
    if entry.run is None:
        return {"label": entry.label, "provider": entry.label, "passed": False, "error": entry.error}
    s = entry.run.summary
    lat, load, health = s.get("latency_ms", {}), s.get("load", {}), s.get("harness", {})
    return {
        "label": entry.label,
        "provider": entry.run.provider,
        "target": s.get("target", ""),
        "users": load.get("users"),
        "publish_rate": load.get("publish_rate"),
        "duration_s": load.get("duration_s"),
        "p50_ms": lat.get("p50"),
        "p95_ms": lat.get("p95"),
        "p99_ms": lat.get("p99"),
        "p999_ms": lat.get("p999"),
        "max_ms": lat.get("max"),
        "connect_p95_ms": s.get("connect_ms", {}).get("p95"),
        "delivered": s.get("messages", {}).get("delivered"),
        "lost": s.get("messages", {}).get("lost"),
        "loss_rate": round(loss_rate(s), 6),
        "deliveries_per_s": round(deliveries_per_s(s), 3),
        "cpu_peak_pct": health.get("cpu_peak_pct"),
        "trustworthy": bool(health.get("trustworthy", True)),
        "passed": entry.passed,
        "gates": ";".join(f"{g['expr']}={'pass' if g['passed'] else 'FAIL'}" for g in entry.gates),
        "run_dir": os.path.relpath(entry.run.folder, out),
        "error": entry.error,
    }


def frame(entries: Sequence[Entry], out: Path) -> pd.DataFrame:
    return pd.DataFrame([_row(e, out) for e in entries], columns=list(CSV_COLUMNS))


def _link(entry: Entry, out: Path) -> str:
    assert entry.run is not None
    report = entry.run.folder / REPORT
    return os.path.relpath(report if report.exists() else entry.run.folder / SUMMARY, out)


def context(entries: Sequence[Entry], out: Path, title: str) -> dict[str, Any]:
    runs = [e for e in entries if e.run is not None]
    curves = []
    for entry in runs:
        assert entry.run is not None
        if entry.run.latency is not None:
            pcts, values = percentile_curve(entry.run.latency)
            curves.append((entry.label, pcts, values))
    exprs: list[str] = []
    for entry in runs:
        exprs += [str(g["expr"]) for g in entry.gates if str(g["expr"]) not in exprs]
    thresholds = []
    for expr in exprs:
        try:
            gate = gates_mod.parse(expr)
        except gates_mod.GateError:
            continue
        if gate.is_latency:
            thresholds.append((gate.expr, gate.threshold))
    rows = []
    for entry in entries:
        row: dict[str, Any] = {"label": entry.label, "error": entry.error, "passed": entry.passed}
        if entry.run is not None:
            s = entry.run.summary
            lat = s.get("latency_ms", {})
            row.update(
                {
                    "ok": True,
                    "link": _link(entry, out),
                    "cells": [fmt_num(lat.get(k, "")) for k in ("p50", "p95", "p99", "p999", "max")]
                    + [
                        fmt_num(s.get("connect_ms", {}).get("p95", "")),
                        fmt_num(s.get("messages", {}).get("lost", "")),
                        f"{loss_rate(s) * 100:.4g}%",
                        f"{deliveries_per_s(s):,.1f}",
                        fmt_num(s.get("harness", {}).get("cpu_peak_pct", "")),
                    ],
                    "trustworthy": bool(s.get("harness", {}).get("trustworthy", True)),
                    "load": s.get("load", {}),
                    "target": s.get("target", ""),
                    "gates": {
                        str(g["expr"]): {
                            "passed": g["passed"],
                            "text": gate_value_text(str(g["expr"]), float(g["value"])),
                        }
                        for g in entry.gates
                    },
                }
            )
        else:
            row["ok"] = False
        rows.append(row)
    loads = {
        tuple(
            sorted(
                (k, str(v))
                for k, v in e.run.summary.get("load", {}).items()
                if k in ("users", "publish_rate", "channels", "payload_bytes", "processes")
            )
        )
        for e in runs
        if e.run is not None
    }
    return {
        "title": title,
        "rows": rows,
        "exprs": exprs,
        "passed": bool(entries) and all(e.passed for e in entries),
        "chart": charts.percentile_chart(curves, thresholds) if curves else "",
        "same_load": len(loads) <= 1,
        "load": runs[0].run.summary.get("load", {}) if runs and runs[0].run is not None else {},
    }


def write_compare(entries: Sequence[Entry], out: Path, title: str = "rtbench compare") -> Path:
    """compare.csv and index.html in ``out``; returns the index path."""
    out.mkdir(parents=True, exist_ok=True)
    frame(entries, out).to_csv(out / CSV, index=False)
    page = environment().get_template("compare.html.j2").render(**context(entries, out, title))
    index = out / INDEX
    index.write_text(scrub(page, known_secrets()), encoding="utf-8")
    return index
