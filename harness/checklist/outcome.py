"""What a checklist produces: one result per item (PASS / FAIL / SKIP, the figure, the reason)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

PASS, FAIL, SKIP = "PASS", "FAIL", "SKIP"

#: the checklist's items, in the order they run
ITEMS = ("connection", "event", "reconnect", "offline", "performance")


@dataclass(frozen=True)
class ItemResult:
    """One item: its status, the figure it measured (ms; None when it has none) and why, in one line."""

    item: str
    status: str
    detail: str
    figure_ms: float | None = None
    figures: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def took(self, seconds: float) -> ItemResult:
        return replace(self, seconds=round(seconds, 3))


def passed(item: str, detail: str, figure_ms: float | None = None, **figures: float) -> ItemResult:
    return ItemResult(item, PASS, detail, figure_ms, dict(figures))


def failed(item: str, detail: str, figure_ms: float | None = None, **figures: float) -> ItemResult:
    return ItemResult(item, FAIL, detail, figure_ms, dict(figures))


def skipped(item: str, detail: str) -> ItemResult:
    return ItemResult(item, SKIP, detail)


@dataclass
class Checklist:
    """One provider's checklist against one server."""

    provider: str
    target: str  # embedded | external
    host: str
    results: list[ItemResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Every item that ran passed (skipped ones do not count either way)."""
        return all(r.status != FAIL for r in self.results)

    def to_json(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "target": self.target,
            "host": self.host,
            "ok": self.ok,
            "items": [r.to_json() for r in self.results],
        }
