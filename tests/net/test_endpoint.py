"""The one URL parser: host, port, TLS, request target and Host header, as every client needs them."""

from __future__ import annotations

import pytest

from harness.net.endpoint import HTTP_SCHEMES, Endpoint, bracketed


def test_endpoint_parse() -> None:
    assert Endpoint.parse("ws://h/app?x=1") == Endpoint("h", 80, False, "/app?x=1", "h")
    assert Endpoint.parse("wss://h") == Endpoint("h", 443, True, "/", "h")
    assert Endpoint.parse("https://h:8443/p") == Endpoint("h", 8443, True, "/p", "h:8443")
    assert Endpoint.parse("ws://[::1]:9000/") == Endpoint("::1", 9000, False, "/", "[::1]:9000")
    with pytest.raises(ValueError, match="not an http, ws, https or wss URL"):
        Endpoint.parse("ftp://h/")
    with pytest.raises(ValueError, match="no host"):
        Endpoint.parse("ws:///path")
    with pytest.raises(ValueError, match="invalid port"):
        Endpoint.parse("http://h:99999/")


def test_schemes_can_be_narrowed() -> None:
    assert Endpoint.parse("https://h/e", HTTP_SCHEMES).tls
    with pytest.raises(ValueError, match="not an http or https URL"):
        Endpoint.parse("ws://h/", HTTP_SCHEMES)


def test_netloc_and_base_url_always_carry_the_port() -> None:
    plain = Endpoint.parse("http://127.0.0.1")
    assert plain.netloc == "127.0.0.1:80" and plain.base_url() == "http://127.0.0.1:80"
    assert plain.base_url(websocket=True) == "ws://127.0.0.1:80"
    secure = Endpoint.parse("wss://[::1]:8443/x")
    assert secure.base_url() == "https://[::1]:8443" and secure.base_url(websocket=True) == "wss://[::1]:8443"
    assert bracketed("::1") == "[::1]" and bracketed("[::1]") == "[::1]" and bracketed("h") == "h"
