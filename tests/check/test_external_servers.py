"""``rtbench check --host`` against servers rtbench did not write: the plain Node socket.io broadcast
server and an Express SSE route, each started, killed and restarted only through the shell scripts a
user would hand to ``--restart-cmd`` (or ``--kill-cmd`` and ``--start-cmd``). The fixtures and scripts are
checked first with the official clients, so a failing check points at rtbench, not at the fixture."""

from __future__ import annotations

import json
import queue
import subprocess
import threading
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import pytest

from harness.checklist.outcome import ITEMS
from tests.check.checks import QUICK, CheckRun, rtbench_check
from tests.check.external import ExternalServer, external_server
from tests.helpers import NODE_DIR, node_available

SOCKETIO = "socketio_broadcast_server.js"
SSE = "sse_express_server.js"
SERVERS = {"socketio": SOCKETIO, "sse": SSE}

pytestmark = [
    pytest.mark.node,
    pytest.mark.timeout(180),
    pytest.mark.skipif(
        not node_available() or not (NODE_DIR / "node_modules" / "express").is_dir(),
        reason="tests/node/node_modules missing or stale: run `npm ci --prefix tests/node`",
    ),
]


def publish(url: str, data: str) -> dict[str, Any]:
    """POST one event as rtbench's SSE publisher does (one channel: channel null)."""
    body = json.dumps({"channel": None, "event": "message", "data": data}).encode()
    request = urllib.request.Request(url + "/api/publish", body, {"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=5) as resp:
        answer: dict[str, Any] = json.load(resp)
    return answer


def healthz(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url + "/healthz", timeout=5) as resp:
        answer: dict[str, Any] = json.load(resp)
    return answer


class Probe:
    """tests/node/sse_client_probe.js (the `eventsource` npm client), its lines read as they come."""

    def __init__(self, url: str, count: int, timeout_ms: int = 30_000) -> None:
        self.proc = subprocess.Popen(
            ["node", str(NODE_DIR / "sse_client_probe.js"), url, str(count), str(timeout_ms)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.out: queue.Queue[str] = queue.Queue()
        self.err: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        assert self.proc.stdout is not None and self.proc.stderr is not None
        for stream, lines in ((self.proc.stdout, self.out), (self.proc.stderr, self.err)):
            threading.Thread(target=self._read, args=(stream, lines), daemon=True).start()

    @staticmethod
    def _read(stream: IO[str], lines: queue.Queue[str]) -> None:
        for line in stream:
            lines.put(line.rstrip("\n"))

    def _line(self, lines: queue.Queue[str], timeout: float) -> str:
        try:
            line = lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"the probe said nothing within {timeout} s; so far: {self.seen}") from None
        self.seen.append(line)
        return line

    def opened(self, timeout: float = 15) -> None:
        """Wait for the stream to (re)open; the errors on the way are only noted."""
        while self._line(self.err, timeout) != "open":
            pass

    def message(self, timeout: float = 10) -> dict[str, str]:
        event: dict[str, str] = json.loads(self._line(self.out, timeout))
        return event

    def close(self) -> int:
        try:
            return self.proc.wait(timeout=15)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()


@contextmanager
def probe(url: str, count: int) -> Iterator[Probe]:
    client = Probe(url, count)
    try:
        yield client
    finally:
        if client.proc.poll() is None:
            client.proc.kill()
            client.proc.wait()


# -- the fixtures and scripts themselves ----------------------------------------------------------


def test_the_official_eventsource_client_resumes_after_restart_server_sh() -> None:
    with external_server(SSE) as server, probe(server.url + "/api/events", 2) as client:
        client.opened()
        first_pid = server.pid()
        sent = publish(server.url, "before")
        before = client.message()
        assert before == {"id": sent["id"], "data": "before"}

        restarted = server.run(server.restart_cmd)
        assert restarted.returncode == 0, restarted.stderr
        assert server.pid() != first_pid
        assert healthz(server.url)["pid"] == server.pid()

        client.opened()  # back by itself, after the server's retry:
        sent = publish(server.url, "after")
        after = client.message()
        assert after == {"id": sent["id"], "data": "after"}
        assert client.close() == 0
        # it resent the id it had; that id is of the earlier run, so it is not taken for one of this run
        assert f"resume channel=default last-event-id={before['id']} replayed=0" in server.log()
        assert after["id"].split("-")[0] != before["id"].split("-")[0]


def test_resume_within_one_run_replays_the_gap_once() -> None:
    with external_server(SSE) as server:
        first = publish(server.url, "one")["id"]
        publish(server.url, "two")
        publish(server.url, "three")
        request = urllib.request.Request(server.url + "/api/events", headers={"Last-Event-ID": first})
        with urllib.request.urlopen(request, timeout=5) as resp:
            assert resp.headers["Content-Type"].startswith("text/event-stream")
            head = b""
            while head.count(b"\n\n") < 3:  # the retry: block, then two replayed events
                head += resp.read1()
        text = head.decode()
        assert text.startswith("retry: 1000\n")
        assert "data: one" not in text
        assert text.index("data: two") < text.index("data: three")
        assert f"last-event-id={first} replayed=2" in server.log()


@pytest.mark.parametrize("script", [SOCKETIO, SSE])
def test_start_on_a_busy_port_fails_with_the_reason(script: str, tmp_path: Path) -> None:
    with external_server(script) as server:
        running = server.pid()
        second = ExternalServer(server.script, server.port, tmp_path / "second.pid", tmp_path / "second.log")
        started = second.run(second.start_cmd)
        assert started.returncode == 1, started
        assert "exited (status 2) before /healthz answered" in started.stderr
        assert "EADDRINUSE" in started.stderr
        assert not second.pidfile.exists()
        assert healthz(server.url)["pid"] == running == server.pid()  # the first one is untouched


def test_kill_then_start_scripts() -> None:
    with external_server(SOCKETIO) as server:
        first = server.pid()
        killed = server.run(server.kill_cmd)
        assert killed.returncode == 0, killed.stderr
        with pytest.raises(OSError):
            healthz(server.url)
        started = server.run(server.start_cmd)
        assert started.returncode == 0, started.stderr
        assert healthz(server.url)["pid"] == server.pid() != first


# -- rtbench check against them --------------------------------------------------------------------


def _all_pass(run: CheckRun, provider: str) -> dict[str, dict[str, Any]]:
    assert run.returncode == 0, run
    items = run.items(provider)
    assert {name: r["status"] for name, r in items.items()} == dict.fromkeys(ITEMS, "PASS"), run
    assert run.data["checklists"][0]["target"] == "external"
    assert items["performance"]["figures"]["max_ms"] > 0
    assert "all 20 events under 500 ms" in items["performance"]["detail"]
    assert "5 queued mutations replayed in order" in items["offline"]["detail"]
    return items


def test_socketio_broadcast_server_passes_every_item_with_restart_cmd(tmp_path: Path) -> None:
    with external_server(SOCKETIO) as server:
        first = server.pid()
        run = rtbench_check(
            "socketio", "--host", server.url, "--restart-cmd", server.restart_cmd, *QUICK, folder=tmp_path
        )
        items = _all_pass(run, "socketio")
        assert server.pid() != first  # the reconnect item really restarted it
    assert "A heard it back (io.emit broadcasts" in items["event"]["detail"]
    assert items["reconnect"]["figure_ms"] > 0
    assert "3 of 3 events published after the restart arrived" in items["reconnect"]["detail"]


def test_express_sse_passes_every_item_with_restart_cmd(tmp_path: Path) -> None:
    with external_server(SSE) as server:
        first = server.pid()
        run = rtbench_check("sse", "--host", server.url, "--restart-cmd", server.restart_cmd, *QUICK, folder=tmp_path)
        items = _all_pass(run, "sse")
        assert server.pid() != first
        log = server.log()
    # the browser-like client waits the server's retry: 1000 before reconnecting
    assert items["reconnect"]["figure_ms"] >= 1000
    assert "A has no connection to hear its own event on (SSE is one-way" in items["event"]["detail"]
    assert (
        "A got 3 of 3 events sent while it was away (it resumed from its last event id)" in items["offline"]["detail"]
    )
    assert "replayed=3" in log  # the offline client's gap came from the server's buffer


def test_express_sse_passes_every_item_with_kill_and_start_cmds(tmp_path: Path) -> None:
    with external_server(SSE) as server:
        first = server.pid()
        run = rtbench_check(
            "sse",
            "--host",
            server.url,
            "--kill-cmd",
            server.kill_cmd,
            "--start-cmd",
            server.start_cmd,
            *QUICK,
            folder=tmp_path,
        )
        items = _all_pass(run, "sse")
        assert server.pid() != first
    assert items["reconnect"]["figure_ms"] >= 1000


@pytest.mark.parametrize("provider", sorted(SERVERS))
def test_without_a_restart_command_reconnect_is_skipped(provider: str, tmp_path: Path) -> None:
    with external_server(SERVERS[provider]) as server:
        first = server.pid()
        run = rtbench_check(provider, "--host", server.url, *QUICK, folder=tmp_path)
        assert server.pid() == first
    assert run.returncode == 0, run
    items = run.items(provider)
    assert {name: r["status"] for name, r in items.items()} == {**dict.fromkeys(ITEMS, "PASS"), "reconnect": "SKIP"}
    assert "--restart-cmd" in items["reconnect"]["detail"]
    assert any(line.split()[1:3] == ["reconnect", "SKIP"] for line in run.stdout.splitlines()), run
