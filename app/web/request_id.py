"""Every request gets an id: the one a proxy sent in X-Request-ID (if it looks like one), else
a new one; it is in every log line of the request and in the answer's X-Request-ID."""

import re
import secrets

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.platform.logs import request_id

_ACCEPTED = re.compile(rb"[A-Za-z0-9._-]{8,64}")


class RequestIdMiddleware:
    """Sets the request id for the request's logs and answers with it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        sent = dict(scope["headers"]).get(b"x-request-id", b"")
        value = sent.decode() if _ACCEPTED.fullmatch(sent) else secrets.token_hex(8)
        token = request_id.set(value)

        async def stamped_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [
                    *message.get("headers", []),
                    (b"x-request-id", value.encode()),
                ]
            await send(message)

        try:
            await self.app(scope, receive, stamped_send)
        finally:
            request_id.reset(token)
