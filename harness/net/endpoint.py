"""One parser for every URL the harness connects to: host URL -> host, port, TLS (and the request target).

Providers, the websocket client and the SSE client all need the same answer to "where does this URL
point": ``https``/``wss`` mean TLS and port 443 by default, ``http``/``ws`` plain and port 80, an IPv6
literal is bracketed wherever it goes back into a URL or a Host header. Written once here so they agree.
"""

from __future__ import annotations

from typing import NamedTuple
from urllib.parse import urlsplit

#: every scheme the harness connects with, and whether it means TLS
SCHEMES = {"http": False, "ws": False, "https": True, "wss": True}
HTTP_SCHEMES = ("http", "https")


def bracketed(host: str) -> str:
    """``host`` as it goes into a URL or a Host header: an IPv6 literal in brackets."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def _one_of(schemes: tuple[str, ...]) -> str:
    names = ", ".join(schemes[:-1]) + f" or {schemes[-1]}" if len(schemes) > 1 else schemes[0]
    return ("an " if names[0] in "aehiou" else "a ") + names


class Endpoint(NamedTuple):
    """Where a URL points: host, port, TLS, the request target and the Host header."""

    host: str
    port: int
    tls: bool
    target: str
    host_header: str

    @classmethod
    def parse(cls, url: str, schemes: tuple[str, ...] = tuple(SCHEMES)) -> Endpoint:
        """Raises ValueError (one line) for a scheme not in ``schemes``, no host, or a bad port."""
        parts = urlsplit(url)
        if parts.scheme not in schemes or parts.scheme not in SCHEMES:
            raise ValueError(f"not {_one_of(schemes)} URL: {url!r}")
        tls = SCHEMES[parts.scheme]
        host = parts.hostname or ""
        if not host:
            raise ValueError(f"no host in {url!r}")
        default_port = 443 if tls else 80
        try:
            port = parts.port or default_port
        except ValueError:
            raise ValueError(f"invalid port in {url!r}") from None
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        shown = bracketed(host)
        return cls(host, port, tls, target, shown if port == default_port else f"{shown}:{port}")

    @property
    def netloc(self) -> str:
        """``host:port`` with the port always written (IPv6 bracketed)."""
        return f"{bracketed(self.host)}:{self.port}"

    def base_url(self, websocket: bool = False) -> str:
        """``scheme://host:port`` of this endpoint, for http(s) or, with ``websocket``, ws(s)."""
        scheme = ("wss" if self.tls else "ws") if websocket else ("https" if self.tls else "http")
        return f"{scheme}://{self.netloc}"
