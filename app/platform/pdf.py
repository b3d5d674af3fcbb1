"""The one way the service renders PDFs: plain values in, no file or network access."""

import logging
import mimetypes
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from weasyprint import HTML
from weasyprint.urls import URLFetcher, URLFetcherResponse

from app.platform import i18n
from app.platform.stored_messages import quote_label, quote_reason

log = logging.getLogger("diplomat.pdf")

APP_DIR = Path(__file__).resolve().parent.parent
STATIC_DIR = APP_DIR / "static"
PDF_TEMPLATES = APP_DIR / "templates" / "pdf"
# A base URL no network can answer: relative links in templates resolve under it and are
# served from our static folder by the fetcher below, or refused.
BASE_URL = "https://diplomat.invalid/static/"

_environment = Environment(
    loader=FileSystemLoader(str(PDF_TEMPLATES)),
    autoescape=select_autoescape(default=True, default_for_string=True),
    undefined=StrictUndefined,
    auto_reload=False,
)
i18n.install(_environment)
_environment.filters.update(quote_label=quote_label, quote_reason=quote_reason)


class BlockedFetch(ValueError):
    """A document asked for a resource outside our static files."""


class StaticOnlyFetcher(URLFetcher):  # type: ignore[misc]
    """Serves our own static files and data: URLs; refuses file:, http(s): and the rest."""

    def __init__(self) -> None:
        super().__init__(allowed_protocols={"data"}, allow_redirects=False)
        self.refused: list[str] = []

    def fetch(self, url: str, headers: dict[str, str] | None = None) -> URLFetcherResponse:
        if url.startswith("data:"):
            return super().fetch(url, headers)
        if url.startswith(BASE_URL):
            relative = url[len(BASE_URL) :].split("?", 1)[0].split("#", 1)[0]
            path = (STATIC_DIR / relative).resolve()
            if path.is_relative_to(STATIC_DIR) and path.is_file():
                content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
                return URLFetcherResponse(url, path.read_bytes(), {"Content-Type": content_type})
        self.refused.append(url)
        log.warning("refused to fetch %r while rendering a PDF", url)
        raise BlockedFetch(f"refused: {url}")


def render_html(template: str, context: dict[str, Any], *, language: str | None = None) -> str:
    """The HTML of a PDF template (autoescaped: user text is text), in `language`.

    A document never takes the language of whoever happens to ask for it: without `language`
    it is English.
    """
    with i18n.use_language(language or i18n.DEFAULT_LANGUAGE):
        return _environment.get_template(template).render(**context)


def render_pdf(
    template: str,
    context: dict[str, Any],
    *,
    fetcher: StaticOnlyFetcher | None = None,
    language: str | None = None,
    pdf_variant: str | None = None,
) -> bytes:
    """Render `template` from `templates/pdf/` with plain values to PDF bytes.

    Without `language` the document is in English; `pdf_variant` asks for e.g. "pdf/a-3b".
    """
    html = render_html(template, context, language=language)
    document = HTML(string=html, base_url=BASE_URL, url_fetcher=fetcher or StaticOnlyFetcher())
    pdf: bytes = (
        document.write_pdf(pdf_variant=pdf_variant) if pdf_variant else document.write_pdf()
    )
    return pdf
