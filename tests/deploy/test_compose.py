"""docker-compose.yml is valid and every command in it works: compose itself checks the file, then each
``python -m targets.X`` service runs outside Docker (same arguments; only host, port and Redis URL moved
to loopback) and answers /healthz, and the Locust master and worker commands make a real distributed run.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import REPO, running_target, start_target
from tests.infra import free_port
from tests.infra.compose import COMPOSE_FILE, Service, load_services, option, replace_option
from tests.infra.redis import redis_server

DOCKER_COMPOSE = shutil.which("docker-compose") or "/usr/bin/docker-compose"
SERVICES = load_services()
TARGET_SERVICES = sorted(
    name for name, s in SERVICES.items() if s.command[:2] == ["python", "-m"] and s.command[2].startswith("targets.")
)
ROLE_OPTIONS = {"--master": 0, "--worker": 0, "--master-host": 1, "--web-port": 1, "-H": 1}
"""Locust options that differ between master and worker by design (with how many values they take)."""


def _rtbench_options(command: list[str]) -> list[str]:
    """The command after ``locust -f SCENARIO``, without the role options: what must agree on both."""
    rest, kept = command[3:], []
    while rest:
        arg = rest.pop(0)
        if arg in ROLE_OPTIONS:
            del rest[: ROLE_OPTIONS[arg]]
        else:
            kept.append(arg)
    return kept


@pytest.mark.skipif(
    not Path(DOCKER_COMPOSE).exists(), reason="docker-compose is not installed (apt-get install docker-compose)"
)
def test_docker_compose_accepts_the_file() -> None:
    result = subprocess.run(
        [DOCKER_COMPOSE, "-f", str(COMPOSE_FILE), "config", "-q"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_the_compose_file_has_the_scale_out_layout() -> None:
    assert {"redis", "socketio-1", "socketio-2", "socketio-3", "nginx", "sse", "pusher", "ably"} <= set(SERVICES)
    assert {"locust-master", "locust-worker"} <= set(SERVICES)
    nodes = [SERVICES[f"socketio-{n}"] for n in (1, 2, 3)]
    assert [option(s.command, "--node-id") for s in nodes] == ["socketio-1", "socketio-2", "socketio-3"]
    assert {option(s.command, "--redis") for s in nodes} == {"redis://redis:6379"}
    nginx = SERVICES["nginx"].environment
    assert nginx["RTBENCH_BALANCE"] == "ip_hash"
    servers = " ".join(f"server {s.name}:{option(s.command, '--port')};" for s in nodes)
    assert nginx["RTBENCH_UPSTREAM_SERVERS"] == servers
    assert option(SERVICES["locust-master"].command, "-H") == f"http://nginx:{nginx['RTBENCH_LISTEN']}"
    assert option(SERVICES["locust-worker"].command, "--master-host") == "locust-master"


def test_no_credential_is_written_in_the_compose_file() -> None:
    """Pusher and Ably credentials come from the environment; unset, the targets' local test values."""
    with_secrets = load_services(environ={"PUSHER_SECRET": "s3cr3t-value", "ABLY_API_KEY": "app.key:s3cr3t-value"})
    assert with_secrets["pusher"].environment["PUSHER_SECRET"] == "s3cr3t-value"
    assert option(with_secrets["ably"].command, "--key") == "app.key:s3cr3t-value"
    assert SERVICES["pusher"].environment == {"PUSHER_APP_ID": "", "PUSHER_KEY": "", "PUSHER_SECRET": ""}
    assert option(SERVICES["ably"].command, "--key") == "rtbench.local:rtbench-local-secret"  # the local default


def test_master_and_workers_run_the_same_scenario_with_the_same_rtbench_options() -> None:
    master, worker = SERVICES["locust-master"].command, SERVICES["locust-worker"].command
    assert master[:3] == worker[:3] == ["locust", "-f", "scenarios/socketio.py"]
    assert "--master" in master and "--worker" in worker
    assert _rtbench_options(master) == _rtbench_options(worker)


def _loopback(service: Service, redis_url: str) -> list[str]:
    """The service's command with only its addresses moved to loopback (port 0: the target picks one)."""
    command = replace_option(service.command, "--host", "127.0.0.1")
    command = replace_option(command, "--port", "0")
    if redis_url:
        command = replace_option(command, "--redis", redis_url)
    return [sys.executable, *command[1:]]


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    with redis_server() as redis:
        yield redis.url


@pytest.mark.parametrize("name", TARGET_SERVICES)
def test_target_service_command_answers_healthz(name: str, request: pytest.FixtureRequest) -> None:
    service = SERVICES[name]
    redis_url = request.getfixturevalue("redis_url") if "--redis" in service.command else ""
    url, proc = start_target(_loopback(service, redis_url), env=service.environment)
    try:
        with urllib.request.urlopen(f"{url}/healthz", timeout=10) as resp:
            health = json.load(resp)
    finally:
        assert proc.stop() == 0, proc.stderr_text()
    assert health["ok"] is True and health["target"] == service.command[2].removeprefix("targets.")


def test_locust_master_and_worker_commands_make_a_distributed_run(tmp_path: Path) -> None:
    """The compose commands, headless for 3 s against a loopback node: they parse, the worker joins, the
    master merges its report into a summary."""
    master_port = str(free_port())
    with running_target("targets.socketio", "--port", "0") as url:
        master_cmd = [
            sys.executable,
            "-m",
            *replace_option(SERVICES["locust-master"].command, "-H", url),
            *("--headless", "-u", "3", "-r", "3", "-t", "3s", "--only-summary"),
            *("--expect-workers", "1", "--expect-workers-max-wait", "30", "--master-bind-port", master_port),
            *("--report-dir", str(tmp_path / "run")),
        ]
        worker_cmd = [
            sys.executable,
            "-m",
            *replace_option(SERVICES["locust-worker"].command, "--master-host", "127.0.0.1"),
            *("--master-port", master_port),
        ]
        master = subprocess.Popen(
            master_cmd, cwd=REPO, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        worker = subprocess.Popen(
            worker_cmd, cwd=REPO, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        try:
            master_out, _ = master.communicate(timeout=90)
            worker_out, _ = worker.communicate(timeout=30)
        finally:
            for proc in (master, worker):
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert master.returncode == (0 if summary["passed"] else 1), master_out + worker_out
    assert summary["target"] == "external" and summary["load"]["publish_rate"] == 10.0
    assert summary["connections"]["opened"] == 2 and summary["messages"]["delivered"] > 0
    assert summary["messages"]["lost"] == 0
