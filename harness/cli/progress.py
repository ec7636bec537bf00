"""The live progress line of a run: follows the run folder's timeseries.csv, one status line."""

from __future__ import annotations

import time
from pathlib import Path
from typing import IO

PLAIN_PROGRESS_EVERY_S = 5.0


class Progress:
    """Follows timeseries.csv, which the run flushes once per interval, and draws one status line."""

    def __init__(self, folder: Path, label: str, total_s: float | None, stream: IO[str], enabled: bool = True) -> None:
        self.path = folder / "timeseries.csv"
        self.label, self.total_s, self.stream, self.enabled = label, total_s, stream, enabled
        self.tty = bool(getattr(stream, "isatty", lambda: False)())
        self.started: float | None = None  # when the run folder's time series appeared
        self._offset = 0
        self._header: list[str] = []
        self._last: dict[str, float] = {}
        self._prev_elapsed = 0.0
        self.rate = 0.0
        self._last_plain = 0.0
        self._drawn = False

    def poll(self) -> None:
        """Read rows appended since the last call."""
        try:
            with self.path.open(encoding="ascii") as handle:
                handle.seek(self._offset)
                chunk = handle.read()
        except FileNotFoundError:
            return
        if self.started is None:
            self.started = time.monotonic()
        complete, _, _ = chunk.rpartition("\n")
        if not complete:
            return
        self._offset += len(complete) + 1
        for line in complete.split("\n"):
            cells = line.split(",")
            if not self._header:
                self._header = cells
                continue
            row = {}
            for key, cell in zip(self._header, cells, strict=False):
                try:
                    row[key] = float(cell)
                except ValueError:
                    continue  # an empty or future non-numeric cell
            if "elapsed_s" not in row:
                continue
            elapsed = row.get("elapsed_s", 0.0)
            span = elapsed - self._prev_elapsed
            if span > 0:
                self.rate = row.get("delivered", 0.0) / span
            self._prev_elapsed = elapsed
            self._last = row

    def line(self) -> str:
        parts = [self.label]
        if self.started is not None:
            elapsed = time.monotonic() - self.started
            if self.total_s:
                elapsed = min(elapsed, self.total_s)
            parts.append(f"{elapsed:4.0f}{f'/{self.total_s:g}' if self.total_s else ''}s")
        if self._last:
            parts += [
                f"connections {self._last.get('connections', 0):.0f}",
                f"deliveries/s {self.rate:,.0f}",
                f"p99 {self._last.get('p99_ms', 0):g} ms",
                f"errors {self._last.get('errors', 0):.0f}",
            ]
            if "open_gaps" in self._last:  # sequence numbers missing so far (provisional, not the loss count)
                parts.append(f"gaps {self._last['open_gaps']:.0f}")
            elif "lost" in self._last:  # run folders before open_gaps: that interval's new gaps
                parts.append(f"lost {self._last['lost']:.0f}")
        else:
            parts.append("starting…")
        return "  ".join(parts)

    def tick(self) -> None:
        if not self.enabled:
            return
        self.poll()
        if self.tty:
            self.stream.write("\r" + self.line() + "\x1b[K")
            self.stream.flush()
            self._drawn = True
        elif self._last and time.monotonic() - self._last_plain >= PLAIN_PROGRESS_EVERY_S:
            self._last_plain = time.monotonic()
            self.stream.write(self.line() + "\n")
            self.stream.flush()

    def done(self) -> None:
        if self.enabled and self._drawn:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
