"""Request body limits, enforced while the body streams in (Content-Length or not): its size
(413) and its pace (408).

A refusal is sent from here, with `Connection: close`, and the app then sees the client go
away (`http.disconnect`); whatever the app still sends is dropped. So the status is the same
whoever reads the body (FastAPI's JSON parsing would turn an exception into a 400).

Any response sent before its request's body was read whole (a refusal here, a 404, an error
from a streaming upload) waits while what the client still sends is read and dropped, for a
short while (a "lingering close", RFC 9112 section 9.6): closing a socket with unread input
makes the kernel answer with a reset, and a reset can erase the response from the client's
buffers before the client reads it.
"""

from __future__ import annotations

import json
import re
import time

import anyio
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from search.api.errors import error_body

UPLOAD_ROUTE = re.compile(r"/v1/collections/[^/]+/jobs")
MIN_BODY_RATE = 1024  # bytes/s a body must average once its first `timeout_s` are over
LINGER_S = 2.0  # how long an unread body is still read and dropped after the answer, at most
LINGER_SILENCE_S = 0.5  # ... and how long it may pause before the connection closes anyway
DISCONNECT: Message = {"type": "http.disconnect"}


class BodyLimit:
    """Bodies get `max_bytes`; only multipart uploads to the jobs route get `max_upload_bytes`.

    A body that sends nothing for `timeout_s`, or averages under MIN_BODY_RATE bytes/s after
    its first `timeout_s`, gets a 408.
    """

    def __init__(
        self, app: ASGIApp, max_bytes: int, max_upload_bytes: int, timeout_s: float
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.max_upload_bytes = max_upload_bytes
        self.timeout_s = timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers", []))
        upload = (
            scope["method"] == "POST"
            and UPLOAD_ROUTE.fullmatch(scope["path"]) is not None
            and headers.get(b"content-type", b"").lower().startswith(b"multipart/form-data")
        )
        limit = self.max_upload_bytes if upload else self.max_bytes
        declared = headers.get(b"content-length")
        bodyless = declared in (None, b"0") and b"transfer-encoding" not in headers
        # A client that waits for "100 Continue" sends no body once an answer has come.
        waiting = headers.get(b"expect", b"").lower() == b"100-continue"
        body = _Body(receive, send, limit, self.timeout_s, complete=bodyless, waiting=waiting)
        if declared is not None and declared.isdigit() and int(declared) > body.limit:
            await body.refuse_too_large()
            return
        try:
            await self.app(scope, body.receive, body.send)
        except Exception:
            if not body.cut_off:
                raise  # otherwise the app only failed because the body never came whole


class _Body:
    """One request's body as it arrives: its size, its pace, whether it was cut off."""

    def __init__(
        self,
        receive: Receive,
        send: Send,
        limit: int,
        timeout_s: float,
        complete: bool,
        waiting: bool = False,
    ) -> None:
        self._receive, self._send = receive, send
        self.limit, self._timeout_s = limit, timeout_s
        self._start = self._last = time.monotonic()
        self._received = 0
        self._complete = complete  # True from the start for a request without a body
        self._waiting = waiting  # the client waits for "100 Continue" before its body
        self._response_started = False
        self.refused = False
        self.cut_off = False  # refused here, or the client went away before the body's end

    async def receive(self) -> Message:
        if self.refused:
            return DISCONNECT
        if self._complete:
            return await self._receive()  # a bodyless request's one message, or a disconnect
        stalled_at = self._last + self._timeout_s
        too_slow_at = self._start + self._timeout_s + self._received / MIN_BODY_RATE
        with anyio.move_on_after(min(stalled_at, too_slow_at) - time.monotonic()) as waiting:
            message = await self._receive()
        if waiting.cancelled_caught:
            if stalled_at <= too_slow_at:
                reason = f"nothing arrived for {self._timeout_s:g} s"
            else:
                reason = f"it arrived at under {MIN_BODY_RATE} bytes/s"
            await self._refuse(
                408, "body_timeout", f"request body too slow: {reason}; send it again"
            )
            return DISCONNECT
        if message["type"] == "http.disconnect":
            self.cut_off = True
        elif message["type"] == "http.request":
            self._last = time.monotonic()
            self._received += len(message.get("body", b""))
            self._complete = not message.get("more_body", False)
            if self._received > self.limit:
                await self.refuse_too_large()
                return DISCONNECT
        return message

    async def send(self, message: Message) -> None:
        if self.refused:
            return
        self._response_started = self._response_started or message["type"] == "http.response.start"
        if message["type"] == "http.response.body" and not message.get("more_body", False):
            await self._end_response(message.get("body", b""))
        else:
            await self._send(message)

    async def refuse_too_large(self) -> None:
        message = f"request body is larger than {self.limit} bytes; send less or split it"
        await self._refuse(413, "body_too_large", message)

    async def _refuse(self, status: int, code: str, message: str) -> None:
        """Answer now; the connection closes once the rest of the body is drained or given up."""
        self.refused = self.cut_off = True
        if self._response_started:  # too late for a status; the app sees a disconnect
            return
        raw = json.dumps(error_body(code, message)).encode()
        await self._send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(raw)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await self._end_response(raw)

    async def _end_response(self, last: bytes) -> None:
        """Send the response's last bytes; while the body still arrives, drain it first."""
        if not self._complete and not (self._waiting and self._received == 0):
            await self._send({"type": "http.response.body", "body": last, "more_body": True})
            await self._drain()
            last = b""
        await self._send({"type": "http.response.body", "body": last})

    async def _drain(self) -> None:
        """Read and drop the rest of the body until it ends, pauses or LINGER_S is over."""
        deadline = time.monotonic() + LINGER_S
        while not self._complete and (left := deadline - time.monotonic()) > 0:
            with anyio.move_on_after(min(left, LINGER_SILENCE_S)) as waiting:
                message = await self._receive()
            if waiting.cancelled_caught or message["type"] != "http.request":
                return
            self._complete = not message.get("more_body", False)
