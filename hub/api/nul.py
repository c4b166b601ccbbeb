"""ASGI middleware that rejects requests carrying a NUL character.

No field of the API accepts U+0000, and PostgreSQL cannot store it in text columns,
so a request that would carry one into a query is rejected with 422 before any
route runs, instead of failing in the database.
"""

from __future__ import annotations

import json
import re
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

# A NUL as a raw byte or percent-encoded (URLs and form bodies), or as a raw byte
# or JSON escape (every other body, where "%00" is plain text).
_NUL_ENCODED = re.compile(rb"\x00|%00")
_NUL_RAW = re.compile(rb"\x00|\\u0000", re.IGNORECASE)
# Bodies larger than this are passed on unchecked; the API takes no such bodies.
MAX_CHECKED_BODY_BYTES = 16 * 1024 * 1024

DETAIL = "the request contains a NUL character (U+0000), which no field accepts"


class RejectNulMiddleware:
    """Reject with 422 a request whose path, query or body contains a NUL."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        raw_path = scope.get("raw_path") or scope["path"].encode("utf-8", "surrogatepass")
        # NOTE: a NUL split across two body chunks is not seen; the API's bodies are
        # small enough to arrive in one chunk from uvicorn.
        if _NUL_ENCODED.search(raw_path) or _NUL_ENCODED.search(scope.get("query_string", b"")):
            await _reject(send)
            return
        headers = dict(scope.get("headers") or [])
        form = headers.get(b"content-type", b"").startswith(b"application/x-www-form-urlencoded")
        pattern = _NUL_ENCODED if form else _NUL_RAW

        messages: list[Message] = []
        size = 0
        more = True
        while more:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            body = message.get("body", b"")
            size += len(body)
            if size <= MAX_CHECKED_BODY_BYTES and pattern.search(body):
                await _reject(send)
                return
            more = bool(message.get("more_body", False))

        async def replay() -> Message:
            if messages:
                return messages.pop(0)
            return await receive()

        await self.app(scope, replay, send)


async def _reject(send: Send) -> None:
    body: dict[str, Any] = {"detail": [{"loc": ["request"], "msg": DETAIL, "type": "value_error"}]}
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 422,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})
