"""The JSON HTTP API conventions the targets share: bounded JSON bodies and one error shape."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from targets import jsonsafe

__all__ = ["BadRequest", "json_error", "read_json"]


class BadRequest(ValueError):
    """An HTTP request a target refuses; ``status`` and a one-line reason for the JSON error body."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def json_error(status: int, message: str) -> web.Response:
    """The JSON error body every target answers with (CORS-open, like the rest of its API)."""
    return web.json_response({"error": message}, status=status, headers={"Access-Control-Allow-Origin": "*"})


async def read_json(request: web.Request, limit: int) -> Any:
    """A request's JSON body, refusing bodies over ``limit`` bytes (413) and bad or too-deep JSON (400)."""
    if request.content_length is not None and request.content_length > limit:
        raise BadRequest(413, f"body larger than {limit} bytes")
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise BadRequest(413, f"body larger than {limit} bytes") from None
    try:
        return jsonsafe.loads(body)
    except jsonsafe.TooDeep as exc:
        raise BadRequest(400, f"body is not valid JSON: {exc}") from None
    except ValueError:
        raise BadRequest(400, "body is not valid JSON") from None
