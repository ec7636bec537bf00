"""A Locust web UI as users start it (``locust -f scenarios/<p>.py``), on a port of its own, driven over HTTP.

Locust is started with ``--web-port 0``; rtbench logs the address the web UI bound
(``rtbench: web UI listening http://HOST:PORT``), so tests never guess a free port.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.helpers import REPO

READY_RE = re.compile(r"rtbench: web UI listening (http://\S+)")
#: the summary.json blocks ``GET /rtbench/live`` carries at the end, equal key for key
BLOCKS = ("latency_ms", "ramp_ms", "fanout_ms", "connect_ms", "messages", "gates", "harness", "passed")


class WebUi:
    def __init__(self, proc: subprocess.Popen[str], url: str, lines: list[str]) -> None:
        self.proc, self.url, self.lines = proc, url, lines

    def log(self) -> str:
        return "".join(self.lines)

    def get(self, path: str, timeout: float = 30) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(self.url + path, timeout=timeout) as response:
                return int(response.status), response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def json(self, path: str) -> Any:
        status, body = self.get(path)
        assert status == 200, (path, status, body[:300])
        return json.loads(body)

    def post(self, path: str, form: dict[str, str], timeout: float = 120) -> Any:
        data = urllib.parse.urlencode(form).encode()
        with urllib.request.urlopen(self.url + path, data=data, timeout=timeout) as response:
            return json.loads(response.read())

    def live(self) -> dict[str, Any]:
        data: dict[str, Any] = self.json("/rtbench/live")
        return data

    def wait_live(self, condition: Callable[[dict[str, Any]], bool], timeout: float = 60) -> dict[str, Any]:
        """Poll ``GET /rtbench/live`` until ``condition`` holds; the payload that satisfied it."""
        deadline = time.monotonic() + timeout
        while True:
            data = self.live()
            if condition(data):
                return data
            assert time.monotonic() < deadline, f"/rtbench/live never satisfied the condition: {data}\n{self.log()}"
            time.sleep(0.2)


@contextmanager
def web_ui(provider: str, *args: str, report_dir: Path, timeout: float = 60) -> Iterator[WebUi]:
    """``locust -f scenarios/<provider>.py --web-host 127.0.0.1 --web-port 0 --report-dir DIR ARGS``, stopped
    with SIGTERM on exit (Locust's own quit path)."""
    cmd = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(REPO / "scenarios" / f"{provider}.py"),
        "--web-host",
        "127.0.0.1",
        "--web-port",
        "0",
        "--report-dir",
        str(report_dir),
        *args,
    ]
    proc = subprocess.Popen(
        cmd, cwd=REPO, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    lines: list[str] = []
    found: list[str] = []
    ready = threading.Event()

    def drain() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            match = READY_RE.search(line)
            if match and not found:
                found.append(match.group(1))
                ready.set()
        ready.set()

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        assert ready.wait(timeout) and found, f"the web UI never said where it listens:\n{''.join(lines)}"
        yield WebUi(proc, found[0], lines)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        reader.join(5)
