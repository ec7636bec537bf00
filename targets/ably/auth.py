"""Who may use the Ably target: API keys, self-contained tokens, Basic/Bearer headers and TokenRequests."""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any

from harness.protocols import ably as proto
from harness.protocols.ably import ErrorInfo, ProtocolError
from targets import jsonsafe
from targets.ably.messages import now_ms

__all__ = ["TOKEN_TTL_MS", "Auth", "Tokens"]

TOKEN_TTL_MS = 60 * 60 * 1000
TOKEN_CLOCK_SKEW_MS = 10 * 60 * 1000


class Tokens:
    """Self-contained tokens: ``base64url(json).base64url(hmac)``, signed with the issuing key's secret."""

    def __init__(self, keys: Mapping[str, str]) -> None:
        self.keys = keys

    def issue(self, key_name: str, client_id: str | None, capability: str, ttl_ms: int, now_ms: int) -> dict[str, Any]:
        expires = now_ms + ttl_ms
        body = {"k": key_name, "x": expires, "c": client_id, "i": now_ms, "p": capability}
        payload = base64.urlsafe_b64encode(json.dumps(body, separators=(",", ":")).encode()).decode().rstrip("=")
        token = f"{payload}.{self._sign(key_name, payload)}"
        details: dict[str, Any] = {
            "token": token,
            "keyName": key_name,
            "issued": now_ms,
            "expires": expires,
            "capability": capability,
        }
        if client_id is not None:
            details["clientId"] = client_id
        return details

    def _sign(self, key_name: str, payload: str) -> str:
        mac = hmac.new(self.keys[key_name].encode(), payload.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).decode().rstrip("=")

    def verify(self, token: str, now_ms: int) -> tuple[str, str | None]:
        """-> (key name, clientId); ProtocolError with a 4014x token error (clients renew on those)."""
        try:
            payload, sig = token.split(".", 1)
            body = jsonsafe.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
            key_name, expires = str(body["k"]), int(body["x"])
        except (ValueError, KeyError, TypeError, binascii.Error):
            raise ProtocolError(ErrorInfo(40143, 401, "Token unrecognised")) from None
        if key_name not in self.keys or not hmac.compare_digest(sig, self._sign(key_name, payload)):
            raise ProtocolError(ErrorInfo(40143, 401, "Token unrecognised"))
        if expires <= now_ms:
            raise ProtocolError(ErrorInfo(40142, 401, "Token expired"))
        client_id = body.get("c")
        return key_name, client_id if isinstance(client_id, str) else None


class Auth:
    """The accepted keys and the tokens issued with them; every check raises ProtocolError with Ably's code."""

    def __init__(self, keys: Mapping[str, str]) -> None:
        self.keys = dict(keys)
        self.tokens = Tokens(self.keys)

    def check_key(self, key: str) -> str:
        key_name, secret = proto.parse_key(key)
        known = self.keys.get(key_name)
        if known is None:
            raise ProtocolError(ErrorInfo.key_not_found(key_name))
        if not hmac.compare_digest(known, secret):
            raise ProtocolError(ErrorInfo.invalid_credentials())
        return key_name

    def authenticate(self, params: proto.ConnectParams) -> tuple[str, str | None]:
        """-> (key name, clientId of the connection)."""
        if params.key:
            key_name = self.check_key(params.key)
            client_id = params.client_id
        elif params.access_token:
            key_name, token_client = self.tokens.verify(params.access_token, now_ms())
            client_id = params.client_id or token_client
            if token_client not in (None, "*") and params.client_id not in (None, token_client):
                raise ProtocolError(ErrorInfo(40102, 401, "Incompatible clientId for this token"))
        else:
            raise ProtocolError(ErrorInfo(40101, 401, "No authentication credentials supplied (key or accessToken)"))
        return key_name, (None if client_id == "*" else client_id)

    def from_header(self, header: str) -> tuple[str, str | None]:
        """A REST request's ``Authorization`` (Basic key or Bearer token) -> (key name, clientId)."""
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "basic":
            try:
                key = base64.b64decode(value.strip(), validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                raise ProtocolError(ErrorInfo.invalid_credentials("Malformed Basic credentials")) from None
            return self.check_key(key), None
        if scheme.lower() == "bearer":
            token = value.strip()
            with contextlib.suppress(binascii.Error, UnicodeDecodeError):
                token = base64.b64decode(token, validate=True).decode("utf-8")
            return self.tokens.verify(token, now_ms())
        raise ProtocolError(ErrorInfo(40101, 401, "No authentication credentials supplied"))

    def check_token_request(self, key_name: str, body: Mapping[str, Any]) -> None:
        if body.get("keyName") != key_name:
            raise ProtocolError(ErrorInfo(40101, 401, "TokenRequest keyName does not match the URL"))
        timestamp, nonce = body.get("timestamp"), body.get("nonce")
        if not isinstance(timestamp, int) or not isinstance(nonce, str):
            raise ProtocolError(ErrorInfo(40001, 400, "Invalid request body: TokenRequest needs timestamp and nonce"))
        if abs(now_ms() - timestamp) > TOKEN_CLOCK_SKEW_MS:
            raise ProtocolError(ErrorInfo(40104, 401, "Timestamp not current"))
        ttl = body.get("ttl")
        expected = proto.token_request_mac(
            self.keys[key_name],
            key_name=key_name,
            ttl=ttl if isinstance(ttl, int) and ttl else None,
            capability=body.get("capability"),
            client_id=body.get("clientId"),
            timestamp=timestamp,
            nonce=nonce,
        )
        if not hmac.compare_digest(str(body.get("mac")), expected):
            raise ProtocolError(ErrorInfo(40101, 401, "Invalid mac"))
