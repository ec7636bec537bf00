"""The Pusher target's HTTP API: signed event triggers (single and batch) and channel queries."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from aiohttp import web

from harness.protocols import pusher as proto
from targets import jsonsafe
from targets.pusher.credentials import AppCredentials
from targets.pusher.fanout import Hub

__all__ = ["HTTPError", "HttpApi"]


class HTTPError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class HttpApi:
    """``/apps/{app_id}/...``: every request signed with the app's secret, answered from the shared Hub."""

    def __init__(self, hub: Hub, app: AppCredentials, *, max_event_bytes: int) -> None:
        self.hub = hub
        self.app = app
        self.max_event_bytes = max_event_bytes
        self.clock: Callable[[], float] = time.time
        """The clock request timestamps are checked against (tests replace it)."""

    async def _authenticated(self, request: web.Request) -> bytes:
        if request.match_info["app_id"] != self.app.app_id:
            raise HTTPError(404, f"Unknown app id {request.match_info['app_id']!r}")
        body = await request.read()
        reason = proto.verify_request(
            self.app.key, self.app.secret, request.method, request.path, dict(request.query), body, self.clock()
        )
        if reason is not None:
            raise HTTPError(401, reason)
        return body

    def _json_body(self, body: bytes) -> dict[str, Any]:
        try:
            obj = jsonsafe.loads(body)
        except jsonsafe.TooDeep as exc:
            raise HTTPError(400, f"Body is not valid JSON: {exc}") from None
        except ValueError:
            raise HTTPError(400, "Body is not valid JSON") from None
        if not isinstance(obj, dict):
            raise HTTPError(400, "Body must be a JSON object")
        return obj

    def _event(self, obj: Any, *, batch: bool) -> tuple[list[str], str, str, str | None]:
        """Validate one event -> (channels, name, data, socket_id to exclude)."""
        if not isinstance(obj, dict):
            raise HTTPError(400, "Each event must be a JSON object")
        try:
            name = proto.validate_event_name(obj.get("name"))
            if batch or ("channel" in obj and "channels" not in obj):
                channels = [proto.validate_channel(obj.get("channel"))]
            else:
                raw = obj.get("channels")
                if not isinstance(raw, list) or not raw:
                    raise HTTPError(400, "'channels' must be a non-empty list")
                channels = [proto.validate_channel(c) for c in raw]
        except proto.ProtocolError as exc:
            raise HTTPError(400, str(exc)) from None
        if len(channels) > proto.MAX_CHANNELS_PER_TRIGGER:
            raise HTTPError(400, f"At most {proto.MAX_CHANNELS_PER_TRIGGER} channels per event")
        if name.startswith(("pusher:", "pusher_internal:")):
            raise HTTPError(400, "Event names starting with 'pusher:' are reserved")
        if "data" not in obj:
            raise HTTPError(400, "Missing 'data'")
        data = proto.data_string(obj["data"])
        if len(data.encode()) > self.max_event_bytes:
            raise HTTPError(413, f"Event data larger than {self.max_event_bytes} bytes")
        socket_id = obj.get("socket_id")
        if socket_id is not None and (not isinstance(socket_id, str) or not proto.SOCKET_ID_RE.match(socket_id)):
            raise HTTPError(400, "Invalid socket_id")
        return channels, name, data, socket_id

    def _channel_info(self, name: str, attributes: Iterable[str]) -> dict[str, Any]:
        channel = self.hub.channels.get(name)
        info: dict[str, Any] = {}
        for attribute in attributes:
            if attribute == "subscription_count":
                info["subscription_count"] = len(channel.subscribers) if channel else 0
            elif attribute == "user_count":
                if proto.channel_kind(name) != "presence":
                    raise HTTPError(400, "user_count is only available for presence channels")
                info["user_count"] = len(channel.members) if channel else 0
            else:
                raise HTTPError(400, f"Unknown info attribute {attribute!r}")
        return info

    async def http_events(self, request: web.Request) -> web.Response:
        try:
            obj = self._json_body(await self._authenticated(request))
            channels, name, data, socket_id = self._event(obj, batch=False)
            attributes = _attributes(obj.get("info"))
            if attributes:  # validate before publishing anything
                for channel in channels:
                    self._channel_info(channel, attributes)
        except HTTPError as exc:
            return _error(exc)
        for channel in channels:
            self.hub.broadcast(channel, name, data, exclude=socket_id)
        if not attributes:
            return web.json_response({})
        return web.json_response({"channels": {c: self._channel_info(c, attributes) for c in channels}})

    async def http_batch_events(self, request: web.Request) -> web.Response:
        try:
            obj = self._json_body(await self._authenticated(request))
            batch = obj.get("batch")
            if not isinstance(batch, list) or not batch:
                raise HTTPError(400, "'batch' must be a non-empty list")
            if len(batch) > proto.MAX_BATCH_EVENTS:
                raise HTTPError(400, f"At most {proto.MAX_BATCH_EVENTS} events per batch")
            events = [self._event(item, batch=True) for item in batch]
            infos = [_attributes(item.get("info")) for item in batch]
            for (channels, *_), attributes in zip(events, infos, strict=True):
                if attributes:
                    self._channel_info(channels[0], attributes)
        except HTTPError as exc:
            return _error(exc)
        for channels, name, data, socket_id in events:
            self.hub.broadcast(channels[0], name, data, exclude=socket_id)
        if not any(infos):
            return web.json_response({})
        return web.json_response(
            {"batch": [self._channel_info(ev[0][0], attrs) for ev, attrs in zip(events, infos, strict=True)]}
        )

    async def http_channels(self, request: web.Request) -> web.Response:
        try:
            await self._authenticated(request)
            prefix = request.query.get("filter_by_prefix", "")
            attributes = _attributes(request.query.get("info"))
            if "user_count" in attributes and not prefix.startswith("presence-"):
                raise HTTPError(400, "info=user_count needs filter_by_prefix=presence-")
            channels = {
                name: self._channel_info(name, attributes)
                for name, ch in sorted(self.hub.channels.items())
                if name.startswith(prefix) and ch.subscribers
            }
        except HTTPError as exc:
            return _error(exc)
        return web.json_response({"channels": channels})

    async def http_channel(self, request: web.Request) -> web.Response:
        try:
            await self._authenticated(request)
            name = request.match_info["name"]
            try:
                proto.validate_channel(name)
            except proto.ProtocolError as exc:
                raise HTTPError(400, str(exc)) from None
            info = self._channel_info(name, _attributes(request.query.get("info")))
        except HTTPError as exc:
            return _error(exc)
        channel = self.hub.channels.get(name)
        return web.json_response({"occupied": bool(channel and channel.subscribers), **info})

    async def http_users(self, request: web.Request) -> web.Response:
        try:
            await self._authenticated(request)
            name = request.match_info["name"]
            if proto.channel_kind(name) != "presence":
                raise HTTPError(400, "Users are only available for presence channels")
        except HTTPError as exc:
            return _error(exc)
        channel = self.hub.channels.get(name)
        return web.json_response({"users": [{"id": uid} for uid in (channel.members if channel else {})]})


def _attributes(raw: object) -> list[str]:
    if raw is None or raw == "":
        return []
    if not isinstance(raw, str):
        raise HTTPError(400, "'info' must be a comma-separated string")
    return [a for a in (part.strip() for part in raw.split(",")) if a]


def _error(exc: HTTPError) -> web.Response:
    return web.json_response({"error": str(exc)}, status=exc.status)
