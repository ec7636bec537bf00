"""Matplotlib charts rendered to inline SVG, so a report is one file that needs no network."""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, NullLocator

from harness.report.rundata import CURVE_TICKS

PALETTE = ("#2563eb", "#dc2626", "#059669", "#d97706", "#7c3aed", "#0891b2", "#db2777", "#4b5563")
_SIZE = (9.0, 3.4)
THRESHOLD_SPAN = 3.0  # draw a gate line only when it is within this factor of the curve's top

plt.rcParams.update(
    {
        "svg.fonttype": "none",  # text stays text: smaller files, selectable labels
        "font.size": 9,
        "axes.grid": True,
        "grid.alpha": 0.3,
        "axes.spines.top": False,
        "axes.spines.right": False,
        "svg.hashsalt": "rtbench",  # stable ids, so the same data renders the same file
    }
)


def _svg(fig: Figure) -> str:
    """The figure as an inline <svg> element (no XML prolog, no metadata block)."""
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None, "Creator": None})
    plt.close(fig)
    text = buffer.getvalue()
    text = text[text.index("<svg") :]
    text = re.sub(r"<metadata>.*?</metadata>", "", text, flags=re.S)
    return text


def _x(pct: float) -> float:
    return 1.0 / (1.0 - pct / 100.0)


def _percentile_axis(ax: Any, top_pct: float) -> None:
    ax.set_xscale("log")
    ticks = [t for t in CURVE_TICKS if t <= top_pct + 1e-9] or [CURVE_TICKS[0]]
    ax.xaxis.set_major_locator(FixedLocator([_x(t) for t in ticks]))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xticklabels([f"{t:g}%" for t in ticks])
    ax.set_xlim(_x(CURVE_TICKS[0]), _x(top_pct))
    ax.set_xlabel("percentile")


def percentile_chart(
    curves: Sequence[tuple[str, Sequence[float], Sequence[float]]],
    thresholds: Sequence[tuple[str, float]] = (),
    ylabel: str = "latency (ms)",
) -> str:
    """One or more (label, percentiles, values) curves on an HdrHistogram-style axis, gates as lines."""
    fig, ax = plt.subplots(figsize=_SIZE)
    top = CURVE_TICKS[-1]
    for index, (label, pcts, values) in enumerate(curves):
        ax.plot([_x(p) for p in pcts], values, label=label, color=PALETTE[index % len(PALETTE)], lw=1.8)
    top_value = max((max(values) for _, _, values in curves if len(values)), default=0.0)
    for label, value in thresholds:
        if top_value and value > THRESHOLD_SPAN * top_value:
            continue  # a far-off gate would flatten the curve; the gate table shows it
        ax.axhline(value, color="#6b7280", ls="--", lw=1)
        ax.annotate(
            label,
            xy=(_x(CURVE_TICKS[0]), value),
            xytext=(4, 3),
            textcoords="offset points",
            color="#4b5563",
            fontsize=8,
        )
    _percentile_axis(ax, top)
    ax.set_ylabel(ylabel)
    ax.set_ylim(bottom=0)
    if len(curves) > 1:
        ax.legend(loc="upper left", frameon=False)
    return _svg(fig)


def time_chart(
    elapsed: Sequence[float],
    series: Sequence[tuple[str, Sequence[float]]],
    ylabel: str,
    right: tuple[str, Sequence[float]] | None = None,
    right_label: str = "",
) -> str:
    """Lines over elapsed time; an optional second series on its own right-hand axis."""
    fig, ax = plt.subplots(figsize=_SIZE)
    for index, (label, values) in enumerate(series):
        ax.plot(
            elapsed,
            values,
            label=label,
            color=PALETTE[index % len(PALETTE)],
            lw=1.6,
            marker="o" if len(elapsed) < 30 else None,
            ms=3,
        )
    ax.set_xlabel("elapsed (s)")
    ax.set_ylabel(ylabel)
    ax.set_ylim(bottom=0)
    handles, labels = ax.get_legend_handles_labels()
    if right is not None:
        twin = ax.twinx()
        twin.plot(
            elapsed,
            right[1],
            label=right[0],
            color=PALETTE[len(series) % len(PALETTE)],
            lw=1.6,
            ls="--",
            marker="s" if len(elapsed) < 30 else None,
            ms=3,
        )
        twin.set_ylabel(right_label)
        twin.set_ylim(bottom=0)
        twin.grid(False)
        more_handles, more_labels = twin.get_legend_handles_labels()
        handles, labels = handles + more_handles, labels + more_labels
    ax.legend(handles, labels, loc="lower left", bbox_to_anchor=(0.0, 1.0), frameon=False, ncols=max(1, len(labels)))
    return _svg(fig)


def bar_chart(labels: Sequence[str], values: Sequence[float], ylabel: str) -> str:
    """A few named values side by side (connect-time percentiles when no histogram was stored)."""
    fig, ax = plt.subplots(figsize=(_SIZE[0], 2.6))
    bars = ax.bar(list(labels), list(values), color=PALETTE[0], width=0.55)
    ax.bar_label(bars, labels=[f"{v:g}" for v in values], padding=2, fontsize=8)
    ax.set_ylabel(ylabel)
    ax.grid(axis="x", visible=False)
    return _svg(fig)
