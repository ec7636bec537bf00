"""What only the tests need of the Pusher protocol: a client event frame and a signed HTTP API query.

The harness itself never sends client events and signs its HTTP API requests with the official SDK; the
target verifies signatures (``proto.verify_request``). Tests sign with fixed timestamps, so the documented
example signature can be checked, and the target can be fed stale or broken signatures.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from harness.protocols import pusher as proto


def client_event(channel: str, event: str, data: Any) -> str:
    """A ``client-*`` event as a connected client sends it."""
    return proto.encode(proto.Frame(event, data, channel))


def sign_request(
    key: str,
    secret: str,
    method: str,
    path: str,
    body: bytes = b"",
    timestamp: int = 0,
    params: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Query parameters for a signed HTTP API request (``params`` plus the auth ones)."""
    query = dict(params or {})
    query.update({"auth_key": key, "auth_timestamp": str(int(timestamp)), "auth_version": proto.AUTH_VERSION})
    if body:
        query["body_md5"] = proto.body_md5(body)
    query["auth_signature"] = proto.hmac_hex(secret, proto.request_string_to_sign(method, path, query))
    return query
