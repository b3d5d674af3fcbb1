"""A tiny local stand-in for the Stripe endpoints the service calls, and signed webhook bodies."""

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl

WEBHOOK_SECRET = "whsec_test"
SECRET_KEY = "sk_test_x"


@dataclass
class CreateRequest:
    """One POST /v1/checkout/sessions as received: its form fields and Idempotency-Key."""

    form: dict[str, str]
    idempotency_key: str | None


@dataclass
class FakeStripe:
    """Checkout Sessions kept in memory; tests read what arrived and mark sessions paid."""

    url: str = ""
    sessions: dict[str, dict[str, Any]] = field(default_factory=dict)
    creates: list[CreateRequest] = field(default_factory=list)
    by_key: dict[str, tuple[dict[str, str], str]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    refunds: dict[str, dict[str, Any]] = field(default_factory=dict)
    refund_requests: list[CreateRequest] = field(default_factory=list)
    refunds_by_key: dict[str, str] = field(default_factory=dict)
    # Set to make Stripe refuse refunds (e.g. the charge is too old), as an API error would.
    refuse_refunds: str = ""

    def create(self, form: dict[str, str], key: str | None) -> tuple[int, dict[str, Any]]:
        with self.lock:
            self.creates.append(CreateRequest(form, key))
            if key and key in self.by_key:
                first_form, session_id = self.by_key[key]
                if first_form != form:
                    return 400, _error(
                        "idempotency_error",
                        "Keys for idempotent requests can only be reused with the same parameters.",
                    )
                return 200, self.sessions[session_id]
            session_id = f"cs_test_{len(self.sessions) + 1:04d}"
            metadata = {
                name[len("metadata[") : -1]: value
                for name, value in form.items()
                if name.startswith("metadata[")
            }
            self.sessions[session_id] = {
                "id": session_id,
                "object": "checkout.session",
                "url": f"{self.url}/pay/{session_id}",
                "status": "open",
                "payment_status": "unpaid",
                "amount_total": int(form["line_items[0][price_data][unit_amount]"])
                * int(form.get("line_items[0][quantity]", "1")),
                "currency": form["line_items[0][price_data][currency]"],
                "metadata": metadata,
                "client_reference_id": form.get("client_reference_id"),
                "success_url": form.get("success_url"),
                "payment_intent": None,
            }
            if key:
                self.by_key[key] = (form, session_id)
            return 200, self.sessions[session_id]

    def expire(self, session_id: str) -> tuple[int, dict[str, Any]]:
        with self.lock:
            found = self.sessions.get(session_id)
            if found is None:
                return 404, _error(
                    "invalid_request_error", f"No such checkout.session: {session_id}"
                )
            if found["status"] != "open":
                return 400, _error("invalid_request_error", "Only open sessions can be expired.")
            found["status"] = "expired"
            return 200, found

    def refund(self, form: dict[str, str], key: str | None) -> tuple[int, dict[str, Any]]:
        """POST /v1/refunds: a refund of part or all of a payment intent, once per key."""
        with self.lock:
            self.refund_requests.append(CreateRequest(form, key))
            if self.refuse_refunds:
                return 400, _error("invalid_request_error", self.refuse_refunds)
            if key and key in self.refunds_by_key:
                return 200, self.refunds[self.refunds_by_key[key]]
            refund_id = f"re_test_{len(self.refunds) + 1:04d}"
            self.refunds[refund_id] = {
                "id": refund_id,
                "object": "refund",
                "amount": int(form["amount"]),
                "payment_intent": form["payment_intent"],
                "status": "succeeded",
                "metadata": {
                    name[len("metadata[") : -1]: value
                    for name, value in form.items()
                    if name.startswith("metadata[")
                },
            }
            if key:
                self.refunds_by_key[key] = refund_id
            return 200, self.refunds[refund_id]

    def retrieve(self, session_id: str) -> tuple[int, dict[str, Any]]:
        with self.lock:
            found = self.sessions.get(session_id)
        if found is None:
            return 404, _error("invalid_request_error", f"No such checkout.session: {session_id}")
        return 200, found

    def pay(
        self, session_id: str, *, payment_intent: str = "", settled: bool = True
    ) -> dict[str, Any]:
        """Complete a session as a customer would; `settled=False`: a bank debit on its way."""
        with self.lock:
            found = self.sessions[session_id]
            found["status"] = "complete"
            found["payment_status"] = "paid" if settled else "unpaid"
            found["payment_intent"] = payment_intent or f"pi_{session_id.removeprefix('cs_test_')}"
            return dict(found)

    def settle(self, session_id: str) -> dict[str, Any]:
        """A bank debit on a completed session arrived."""
        with self.lock:
            self.sessions[session_id]["payment_status"] = "paid"
            return dict(self.sessions[session_id])


def _error(kind: str, message: str) -> dict[str, Any]:
    return {"error": {"type": kind, "message": message}}


def _handler(fake: FakeStripe) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _send(self, code: int, body: dict[str, Any]) -> None:
            raw = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.send_header("Request-Id", "req_fake")
            self.end_headers()
            self.wfile.write(raw)

        def _authorised(self) -> bool:
            if self.headers.get("Authorization") == f"Bearer {SECRET_KEY}":
                return True
            self._send(401, _error("invalid_request_error", "Invalid API Key provided."))
            return False

        def do_POST(self) -> None:
            if not self._authorised():
                return
            length = int(self.headers.get("Content-Length") or 0)
            form = dict(parse_qsl(self.rfile.read(length).decode(), keep_blank_values=True))
            parts = self.path.split("?")[0].strip("/").split("/")
            if parts == ["v1", "checkout", "sessions"]:
                self._send(*fake.create(form, self.headers.get("Idempotency-Key")))
            elif parts == ["v1", "refunds"]:
                self._send(*fake.refund(form, self.headers.get("Idempotency-Key")))
            elif (
                len(parts) == 5
                and parts[:3] == ["v1", "checkout", "sessions"]
                and parts[4] == "expire"
            ):
                self._send(*fake.expire(parts[3]))
            else:
                self._send(
                    404, _error("invalid_request_error", f"Unrecognized request URL {self.path}")
                )

        def _hosted_page(self, parts: list[str]) -> None:
            """Stripe's hosted checkout, as a browser sees it: a page, then back to the shop."""
            session_id = parts[1]
            found = fake.sessions.get(session_id)
            if found is None:
                self.send_response(404)
                self.end_headers()
                return
            if len(parts) == 3 and parts[2] == "complete":
                paid = fake.pay(session_id)
                target = str(paid["success_url"]).replace("{CHECKOUT_SESSION_ID}", session_id)
                self.send_response(303)
                self.send_header("Location", target)
                self.end_headers()
                return
            amount = found["amount_total"] / 100
            html = (
                "<!doctype html><title>Checkout</title><main><h1>Test checkout</h1>"
                f"<p>Pay {amount:.2f} {str(found['currency']).upper()}</p>"
                f'<a href="/pay/{session_id}/complete">Pay now</a></main>'
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(html)))
            self.end_headers()
            self.wfile.write(html)

        def do_GET(self) -> None:
            parts = self.path.split("?")[0].strip("/").split("/")
            if parts[0] == "pay" and len(parts) in (2, 3):
                self._hosted_page(parts)
                return
            if parts == ["favicon.ico"]:
                self.send_response(204)
                self.end_headers()
                return
            if not self._authorised():
                return
            if len(parts) == 4 and parts[:3] == ["v1", "checkout", "sessions"]:
                self._send(*fake.retrieve(parts[3]))
            else:
                self._send(
                    404, _error("invalid_request_error", f"Unrecognized request URL {self.path}")
                )

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: the tests assert on what arrived instead."""

    return Handler


@contextmanager
def running_fake_stripe() -> Iterator[FakeStripe]:
    """A fake Stripe on 127.0.0.1 at a free port, stopped afterwards."""
    fake = FakeStripe()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake))
    server.daemon_threads = True
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def signed(
    event: dict[str, Any], *, secret: str = WEBHOOK_SECRET, at: int | None = None
) -> tuple[bytes, dict[str, str]]:
    """A webhook body and its Stripe-Signature header, as Stripe would send them."""
    payload = json.dumps(event)
    timestamp = int(time.time()) if at is None else at
    signature = hmac.new(
        secret.encode(), f"{timestamp}.{payload}".encode(), hashlib.sha256
    ).hexdigest()
    return payload.encode(), {
        "Stripe-Signature": f"t={timestamp},v1={signature}",
        "Content-Type": "application/json",
    }


def event(kind: str, obj: dict[str, Any], *, event_id: str) -> dict[str, Any]:
    """A Stripe event of `kind` about `obj`."""
    return {
        "id": event_id,
        "object": "event",
        "type": kind,
        "api_version": "2024-06-20",
        "created": int(time.time()),
        "livemode": False,
        "data": {"object": obj},
    }


def refunded_charge(
    payment_intent: str, refunds: list[tuple[str, int]] | None, *, amount_refunded: int = 0
) -> dict[str, Any]:
    """A charge.refunded object; `refunds=None` leaves the list out, as newer API versions do."""
    charge: dict[str, Any] = {
        "id": f"ch_{payment_intent.removeprefix('pi_')}",
        "object": "charge",
        "payment_intent": payment_intent,
        "refunded": True,
        "amount_refunded": amount_refunded or sum(cents for _, cents in refunds or []),
    }
    if refunds is not None:
        charge["refunds"] = {
            "object": "list",
            "data": [
                {"id": refund_id, "object": "refund", "amount": cents, "status": "succeeded"}
                for refund_id, cents in refunds
            ],
        }
    return charge
