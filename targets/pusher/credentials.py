"""The one app a Pusher target serves: what websocket handshakes and signed API requests are checked against."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["AppCredentials"]


@dataclass(frozen=True)
class AppCredentials:
    app_id: str
    key: str
    secret: str = field(repr=False)
