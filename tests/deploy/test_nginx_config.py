"""The shipped nginx template: rendered by the image's rule and by ours alike, accepted by ``nginx -t``."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.infra import nginx

pytestmark = pytest.mark.skipif(not nginx.nginx_available(), reason=f"nginx is not installed at {nginx.NGINX}")

COMPOSE_VARIABLES = {
    "RTBENCH_LISTEN": "8080",
    "RTBENCH_BALANCE": "ip_hash",
    "RTBENCH_UPSTREAM_SERVERS": "server socketio-1:3001; server socketio-2:3001; server socketio-3:3001;",
}


def test_rendering_replaces_only_the_given_names() -> None:
    text = "a ${RTBENCH_X} $RTBENCH_X $http_upgrade ${http_upgrade} $$ ${RTBENCH_Y}"
    assert nginx.render(text, {"RTBENCH_X": "1"}) == "a 1 1 $http_upgrade ${http_upgrade} $$ ${RTBENCH_Y}"


def test_rendered_template_keeps_nginx_variables_and_fills_every_placeholder() -> None:
    text = nginx.render_template("127.0.0.1:1", ["127.0.0.1:2", "127.0.0.1:3"])
    directives = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    assert not [line for line in directives if "${" in line or "RTBENCH_" in line]
    assert "proxy_set_header Upgrade $http_upgrade;" in text
    assert "proxy_set_header Connection $connection_upgrade;" in text
    assert "hash $remote_addr$remote_port consistent;" in text
    assert "server 127.0.0.1:2; server 127.0.0.1:3;" in text


@pytest.mark.skipif(shutil.which("envsubst") is None, reason="envsubst (gettext-base) is not installed")
def test_python_rendering_matches_the_nginx_images_envsubst() -> None:
    """The image runs ``envsubst "${VAR} ..."`` over every variable in its environment: same output."""
    env = {**os.environ, **COMPOSE_VARIABLES}
    names = " ".join(f"${{{name}}}" for name in env)
    image = subprocess.run(
        ["envsubst", names],
        input=nginx.TEMPLATE.read_text(),
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    ours = nginx.render_template(
        COMPOSE_VARIABLES["RTBENCH_LISTEN"],
        ["socketio-1:3001", "socketio-2:3001", "socketio-3:3001"],
        balance=COMPOSE_VARIABLES["RTBENCH_BALANCE"],
    )
    assert ours == image
    assert "ip_hash;" in image and "$http_upgrade" in image


@pytest.mark.parametrize("balance", [nginx.COMPOSE_BALANCE, nginx.TEST_BALANCE])
def test_nginx_accepts_the_rendered_template(tmp_path: Path, balance: str) -> None:
    text = nginx.render_template("8080", ["127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"], balance)
    result = nginx.check_config(tmp_path, text)
    assert result.returncode == 0, result.stderr
    assert "syntax is ok" in result.stderr and "test is successful" in result.stderr


def test_nginx_accepts_the_compose_main_config(tmp_path: Path) -> None:
    """deploy/nginx/nginx.conf with the rendered template in its conf.d, laid out as in the image."""
    shutil.copy(nginx.TEMPLATE.with_name("nginx.conf"), tmp_path / "nginx.conf")
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "conf.d" / "socketio.conf").write_text(
        nginx.render_template("8080", ["127.0.0.1:1"], nginx.COMPOSE_BALANCE)
    )
    command = [nginx.NGINX, "-t", "-p", f"{tmp_path}/", "-c", str(tmp_path / "nginx.conf"), "-e", "/dev/stderr"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 0, result.stderr
