"""A private nginx on loopback in front of test servers, configured from the shipped template.

The template (``deploy/nginx/socketio.conf.template``) is the one docker compose uses; it is rendered
here with the rule the official nginx image applies (envsubst limited to the variables it is given), so
the tests exercise the configuration users run. Only the balancing differs: on loopback every client is
127.0.0.1 and ``ip_hash`` would pin them all to one node, so tests hash on address *and* port
(:data:`TEST_BALANCE`), which spreads clients while keeping each connection on one node.

The nginx is a non-system instance: its own prefix, pid, logs and temp paths in a temporary folder,
``daemon off`` so it is our child, a free port chosen at run time, readiness known by connecting.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from tests.helpers import REPO
from tests.infra import free_port

__all__ = [
    "COMPOSE_BALANCE",
    "NGINX",
    "TEMPLATE",
    "TEST_BALANCE",
    "NginxError",
    "check_config",
    "full_config",
    "nginx_available",
    "render",
    "render_template",
    "running_nginx",
]

NGINX = "/usr/sbin/nginx"
TEMPLATE = REPO / "deploy" / "nginx" / "socketio.conf.template"
COMPOSE_BALANCE = "ip_hash"
TEST_BALANCE = "hash $remote_addr$remote_port consistent"
"""Loopback clients all come from 127.0.0.1: ip_hash would send every one to the same node."""

READY_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 5.0
_NAME = r"[A-Za-z_][A-Za-z0-9_]*"


class NginxError(RuntimeError):
    """nginx refused its configuration or did not start; the message holds its error log."""


def nginx_available() -> bool:
    return os.access(NGINX, os.X_OK)


def render(text: str, variables: Mapping[str, str]) -> str:
    """envsubst restricted to ``variables`` (``$NAME`` and ``${NAME}``), as the nginx image does it: any
    other ``$...`` (nginx's own ``$http_upgrade``, ``$remote_addr``) is left exactly as written."""

    def substitute(match: re.Match[str]) -> str:
        name = match["braced"] or match["bare"]
        return variables[name] if name in variables else match[0]

    return re.sub(rf"\$(?:\{{(?P<braced>{_NAME})\}}|(?P<bare>{_NAME}))", substitute, text)


def render_template(listen: str, upstreams: Sequence[str], balance: str = TEST_BALANCE) -> str:
    """The shipped template for nodes at ``upstreams`` (``HOST:PORT`` each), listening on ``listen``."""
    return render(
        TEMPLATE.read_text(),
        {
            "RTBENCH_LISTEN": listen,
            "RTBENCH_BALANCE": balance,
            "RTBENCH_UPSTREAM_SERVERS": " ".join(f"server {address};" for address in upstreams),
        },
    )


def full_config(prefix: Path, http_part: str) -> str:
    """A whole nginx.conf whose every path is under ``prefix``: runs beside any system nginx."""
    temp = "\n".join(
        f"    {kind}_temp_path {prefix / kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    # As root nginx would run its worker as "nobody", which cannot enter a private temporary folder.
    user = "user root;\n" if os.geteuid() == 0 else ""
    return (
        f"{user}daemon off;\nworker_processes 1;\nworker_rlimit_nofile 16384;\n"
        f"pid {prefix / 'nginx.pid'};\nerror_log {prefix / 'error.log'} warn;\n"
        "events {\n    worker_connections 8192;\n}\n"
        f"http {{\n    access_log off;\n{temp}\n{http_part}\n}}\n"
    )


def _command(prefix: Path, *extra: str) -> list[str]:
    conf = prefix / "nginx.conf"
    return [NGINX, "-p", f"{prefix}/", "-c", str(conf), "-e", str(prefix / "error.log"), *extra]


def check_config(prefix: Path, http_part: str) -> subprocess.CompletedProcess[str]:
    """``nginx -t`` on ``http_part`` inside :func:`full_config` (written under ``prefix``)."""
    (prefix / "nginx.conf").write_text(full_config(prefix, http_part))
    return subprocess.run(_command(prefix, "-t"), capture_output=True, text=True, timeout=30, check=False)


def _wait_ready(proc: subprocess.Popen[bytes], port: int, prefix: Path) -> None:
    """Connect until nginx accepts; an exit before that is an error carrying its log."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    while True:
        if proc.poll() is not None:
            raise NginxError(f"nginx exited with {proc.returncode}: {_log(prefix)}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError as exc:
            if exc.errno != errno.ECONNREFUSED or time.monotonic() > deadline:
                raise NginxError(f"nginx did not accept on port {port}: {exc}; {_log(prefix)}") from None
        time.sleep(0.01)  # polling the listen socket: nginx gives no other readiness signal


def _log(prefix: Path) -> str:
    path = prefix / "error.log"
    return path.read_text(errors="replace") if path.exists() else "(no error log)"


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()  # SIGTERM: fast shutdown, open websockets are cut
        try:
            proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(STOP_TIMEOUT_S)


@contextmanager
def running_nginx(upstreams: Sequence[str], *, balance: str = TEST_BALANCE, attempts: int = 3) -> Iterator[str]:
    """``with running_nginx(["127.0.0.1:4001", ...]) as url:`` -> ``http://127.0.0.1:PORT``, stopped on exit.

    The port is free when chosen; if another process takes it before nginx binds, nginx is started again
    on another one (at most ``attempts`` times)."""
    prefix = Path(tempfile.mkdtemp(prefix="rtbench-nginx-"))
    try:
        for attempt in range(attempts):
            port = free_port()
            listen = f"127.0.0.1:{port}"
            (prefix / "nginx.conf").write_text(full_config(prefix, render_template(listen, upstreams, balance)))
            proc = subprocess.Popen(_command(prefix), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
            try:
                _wait_ready(proc, port, prefix)
            except NginxError:
                _stop(proc)
                if "Address already in use" in _log(prefix) and attempt + 1 < attempts:
                    (prefix / "error.log").unlink(missing_ok=True)
                    continue
                raise
            try:
                yield f"http://{listen}"
            finally:
                _stop(proc)
            return
    finally:
        shutil.rmtree(prefix, ignore_errors=True)
