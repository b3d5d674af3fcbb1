"""The PDF renderer reaches no file and no network: `file:`, `http:` and redirects are refused.

A local HTTP server records every request it gets; documents point at it (and at
`/etc/passwd`) in every way HTML and CSS can load something. After rendering, the server
has seen nothing and the fetcher lists what it refused. Every PDF template is rendered
with hostile text too: all it asks for is our own static files.
"""

import io
import re
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from jinja2 import DictLoader, Environment, select_autoescape
from pypdf import PdfReader
from weasyprint import HTML

from app.models import Application, Edition
from app.platform import pdf
from app.platform.pdf import BASE_URL, StaticOnlyFetcher, render_pdf
from app.services.certificates.document import CertificatePage, render_certificates
from app.services.registrations.applications import waiver_document

PAYLOAD = "<script>alert(1)</script>\"'><img src=x onerror=alert(1)>"


class Recorder(BaseHTTPRequestHandler):
    """Answers everything (a redirect on /redirect) and remembers every path asked for."""

    hits: list[str]

    def do_GET(self) -> None:
        self.hits.append(self.path)
        if self.path.startswith("/redirect"):
            self.send_response(302)
            self.send_header("Location", "file:///etc/passwd")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/css")
        self.end_headers()
        self.wfile.write(b"body { color: red }")

    def log_message(self, *_: Any) -> None:
        return


@pytest.fixture
def server() -> Iterator[tuple[str, list[str]]]:
    """A local HTTP server on a free port: (base URL, the paths it was asked for)."""
    hits: list[str] = []
    handler = type("Handler", (Recorder,), {"hits": hits})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", hits
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def hostile_document(origin: str) -> str:
    """Every way a document can ask for a resource, pointed at the server or at files."""
    return f"""<!doctype html><html><head>
<link rel="stylesheet" href="{origin}/linked.css">
<link rel="stylesheet" href="file:///etc/passwd">
<style>
  @import url("{origin}/imported.css");
  @font-face {{ font-family: X; src: url("{origin}/font.woff"); }}
  body {{ background: url("{origin}/background.png"); font-family: X; }}
</style></head><body>
<img src="file:///etc/passwd">
<img src="{origin}/image.png">
<img src="{origin}/redirect">
<img src="/etc/passwd">
<img src="../../config.py">
<img src="img/../../../app/config.py">
<img src="%2e%2e/%2e%2e/app/config.py">
<object data="{origin}/object"></object>
<iframe src="{origin}/frame"></iframe>
<embed src="file:///etc/shadow">
<svg><image href="{origin}/svg.png" /></svg>
<div style="background-image: url('{origin}/inline.png')">x</div>
<a href="{origin}/link">a link is not fetched</a>
</body></html>"""


def test_the_fetcher_refuses_file_http_redirects_and_escapes_from_static(
    server: tuple[str, list[str]],
) -> None:
    origin, hits = server
    fetcher = StaticOnlyFetcher()
    document = HTML(string=hostile_document(origin), base_url=BASE_URL, url_fetcher=fetcher)
    rendered = document.write_pdf()
    assert rendered.startswith(b"%PDF-")
    assert hits == [], "the renderer reached the network"
    refused = set(fetcher.refused)
    assert "file:///etc/passwd" in refused
    assert "file:///etc/shadow" in refused
    for path in ("linked.css", "imported.css", "image.png", "redirect", "object", "inline.png"):
        assert f"{origin}/{path}" in refused, path
    # Paths that climb out of our static folder are refused, encoded or not.
    for climbed in ("config.py", "app/config.py", "static/%2e%2e/%2e%2e/app/config.py"):
        assert f"https://diplomat.invalid/{climbed}" in refused, climbed


def test_render_pdf_uses_the_refusing_fetcher_by_default(
    server: tuple[str, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    origin, hits = server
    refusals: list[str] = []
    original = StaticOnlyFetcher.fetch

    def recording(self: StaticOnlyFetcher, url: str, headers: Any = None) -> Any:
        try:
            return original(self, url, headers)
        except pdf.BlockedFetch:
            refusals.append(url)
            raise

    monkeypatch.setattr(StaticOnlyFetcher, "fetch", recording)
    # A template that is markup on purpose (templates are ours; user text never is markup).
    environment = Environment(
        loader=DictLoader({"hostile.html": hostile_document(origin)}),
        autoescape=select_autoescape(default=True),
    )
    monkeypatch.setattr(pdf, "_environment", environment)
    assert render_pdf("hostile.html", {}).startswith(b"%PDF-")
    assert hits == []
    assert "file:///etc/passwd" in refusals and f"{origin}/redirect" in refusals


def test_our_own_static_files_still_load(server: tuple[str, list[str]]) -> None:
    fetcher = StaticOnlyFetcher()
    fetched = fetcher.fetch(BASE_URL + "img/../css/site.css")
    assert fetched is not None
    with pytest.raises(pdf.BlockedFetch):
        fetcher.fetch(BASE_URL + "../app/config.py")
    with pytest.raises(pdf.BlockedFetch):
        fetcher.fetch(BASE_URL + "../../../../etc/passwd")


def _text(data: bytes) -> str:
    return re.sub(r"\s+", "", " ".join(p.extract_text() for p in PdfReader(io.BytesIO(data)).pages))


def test_every_pdf_with_hostile_text_prints_it_and_asks_only_for_our_files(
    server: tuple[str, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    origin, hits = server
    payload = f'{PAYLOAD}<link rel="stylesheet" href="{origin}/x.css">'
    asked: list[str] = []
    original = StaticOnlyFetcher.fetch

    def recording(self: StaticOnlyFetcher, url: str, headers: Any = None) -> Any:
        asked.append(url)
        return original(self, url, headers)

    monkeypatch.setattr(StaticOnlyFetcher, "fetch", recording)
    edition = Edition(
        slug="x",
        title=payload,
        edition_label=payload,
        place=payload,
        start_date=datetime(2099, 11, 16, tzinfo=UTC).date(),
        end_date=datetime(2099, 11, 20, tzinfo=UTC).date(),
        timezone="Europe/Madrid",
        capacity=30,
        currency="EUR",
        fee_standard=Decimal("1500.00"),
        fee_member=Decimal("1000.00"),
        dues_year=2098,
        income_fy=2098,
        course_id=1,
        applications_open=datetime(2099, 1, 1, tzinfo=UTC),
        applications_close=datetime(2099, 11, 1, tzinfo=UTC),
    )
    application = Application(
        edition_id=1,
        reference="MD99-ABCDEF",
        given_name=payload,
        family_name=payload,
        email="x@example.org",
        organisation_name=payload,
        country="MWI",
        job_title=payload,
        motivation=payload,
        consent_at=datetime(2099, 1, 2, tzinfo=UTC),
        quote={},
        quoted_total=Decimal("0.00"),
        submitted_at=datetime(2099, 1, 2, tzinfo=UTC),
    )
    quote = {
        "currency": "EUR",
        "total": "0.00",
        "lines": [{"code": "member_rate", "label": payload, "amount": "0.00", "reason": payload}],
    }
    documents = {
        "fee waiver": render_pdf(
            "fee_waiver.html",
            waiver_document(
                application,
                edition,
                number="W2099-00001",
                quote=quote,
                issued=datetime(2099, 1, 3, tzinfo=UTC),
            ),
        ),
        "certificate": render_certificates(
            [
                CertificatePage(
                    number="C-2099-00001",
                    holder=payload,
                    issuer=payload,
                    course=payload,
                    edition=payload,
                    place=payload,
                    dates=payload,
                    modules=(payload,) * 5,
                    signatories=(),
                    issued_on="16 November 2099",
                    version=1,
                    verification_url=f"{origin}/verify",
                )
            ]
        )[0],
    }
    for name, data in documents.items():
        assert "<script>alert(1)</script>" in _text(data), name
    assert hits == []
    outside = [url for url in asked if not url.startswith((BASE_URL, "data:"))]
    assert outside == []
