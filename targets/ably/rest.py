"""The Ably target's REST API: publish, token requests, time; replies in JSON or msgpack as asked."""

from __future__ import annotations

import uuid
from typing import Any

import msgpack
from aiohttp import web

from harness.protocols.ably import ErrorInfo, ProtocolError
from targets import jsonsafe
from targets.ably.auth import TOKEN_TTL_MS, Auth
from targets.ably.fanout import Hub
from targets.ably.messages import MAX_CHANNEL_NAME, now_ms, validate_messages

__all__ = ["Rest", "read_body", "rest_error", "rest_reply"]


class Rest:
    """``POST /channels/{name}/messages``, ``POST /keys/{keyName}/requestToken``, ``GET /time``."""

    def __init__(self, hub: Hub, auth: Auth) -> None:
        self.hub = hub
        self.auth = auth

    def _auth(self, request: web.Request) -> tuple[str, str | None]:
        return self.auth.from_header(request.headers.get("Authorization", ""))

    async def publish(self, request: web.Request) -> web.Response:
        channel = request.match_info["channel"]
        try:
            _, client_id = self._auth(request)
            body = await read_body(request)
            raw = body if isinstance(body, list) else [body]
            messages = validate_messages(raw, client_id, self.hub.max_message_size)
        except ProtocolError as exc:
            return rest_error(request, exc.error)
        if len(channel) > MAX_CHANNEL_NAME:
            return rest_error(request, ErrorInfo(40010, 400, "Invalid channel name"))
        base_id = messages[0]["id"] if isinstance(messages[0].get("id"), str) else f"rest{uuid.uuid4().hex[:12]}"
        base_id = base_id.rsplit(":", 1)[0] if ":" in base_id else base_id
        self.hub.publish(channel, messages, base_id, sender=None)
        serials = [f"{self.hub.server_id}@{now_ms()}-{i}" for i in range(len(messages))]
        return rest_reply(request, {"channel": channel, "messageId": base_id, "serials": serials}, status=201)

    async def request_token(self, request: web.Request) -> web.Response:
        key_name = request.match_info["key_name"]
        try:
            body = await read_body(request)
            if not isinstance(body, dict):
                raise ProtocolError(ErrorInfo(40001, 400, "Invalid request body: expected a TokenRequest"))
            if key_name not in self.auth.keys:
                raise ProtocolError(ErrorInfo.key_not_found(key_name))
            if body.get("mac") is None:  # token params authenticated by the key itself
                authed, _ = self._auth(request)
                if authed != key_name:
                    raise ProtocolError(ErrorInfo.invalid_credentials())
            else:
                self.auth.check_token_request(key_name, body)
        except ProtocolError as exc:
            return rest_error(request, exc.error)
        ttl = body.get("ttl")
        client_id = body.get("clientId")
        capability = body.get("capability") or '{"*":["*"]}'
        details = self.auth.tokens.issue(
            key_name,
            client_id if isinstance(client_id, str) else None,
            str(capability),
            int(ttl) if isinstance(ttl, int) and ttl > 0 else TOKEN_TTL_MS,
            now_ms(),
        )
        return rest_reply(request, details)

    async def time(self, request: web.Request) -> web.Response:
        return rest_reply(request, [now_ms()])


MSGPACK = "application/x-msgpack"


def unpack(raw: bytes) -> Any:
    return msgpack.unpackb(raw, raw=False)


async def read_body(request: web.Request) -> Any:
    """A REST request's body, JSON or msgpack by its Content-Type; 40001 for anything undecodable (too deep too)."""
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise ProtocolError(ErrorInfo(40009, 413, "Request body too large")) from None
    try:
        if request.content_type == MSGPACK:
            return jsonsafe.checked(raw, unpack, binary=True)
        return jsonsafe.loads(raw)
    except (ValueError, TypeError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError):
        raise ProtocolError(ErrorInfo(40001, 400, "Invalid request body")) from None


def _wants_msgpack(request: web.Request) -> bool:
    return MSGPACK in request.headers.get("Accept", "")


def rest_reply(request: web.Request, body: Any, status: int = 200) -> web.Response:
    if _wants_msgpack(request):
        return web.Response(body=msgpack.packb(body, use_bin_type=True), status=status, content_type=MSGPACK)
    return web.json_response(body, status=status)


def rest_error(request: web.Request, err: ErrorInfo) -> web.Response:
    response = rest_reply(request, {"error": err.to_wire()}, status=err.status_code)
    response.headers["X-Ably-Errorcode"] = str(err.code)
    return response
