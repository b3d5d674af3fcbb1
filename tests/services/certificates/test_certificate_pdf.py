"""The certificate PDF: every script prints, long names fit, user text fetches nothing."""

import io
import re
import shutil
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest
import zxingcpp
from PIL import Image
from pypdf import PdfReader

from app.config import Settings
from app.platform.pdf import StaticOnlyFetcher
from app.services.certificates.document import (
    CertificatePage,
    SignatoryMark,
    name_layout,
    render_certificates,
    signature_image,
)

MODULES = (
    "Cities in a changing international context",
    "Strategies for internationalization",
    "City diplomacy and economic development",
    "Measuring results and impact",
    "Communicating the value of international engagement",
)


def page(holder: str, number: str = "MD24-7KQ3-9XWF-2HBN-A", version: int = 1) -> CertificatePage:
    settings = Settings(environment="test")
    return CertificatePage(
        number=number,
        holder=holder,
        issuer=settings.certificate_issuer_line,
        course="Metropolis Diploma in Internationalization for Local Authorities",
        edition="2nd edition",
        place="Barcelona",
        dates="18 to 22 November 2024",
        modules=MODULES,
        signatories=tuple(
            SignatoryMark(s.name, s.title, signature_image(s.signature))
            for s in settings.certificate_signatories
        ),
        issued_on="22 November 2024",
        version=version,
        verification_url=f"https://courses.example.org/verify/{number}",
    )


def fonts_of(data: bytes) -> set[str]:
    """The base names of the fonts a PDF's pages use, without their subset tags."""
    names: set[str] = set()
    for pdf_page in PdfReader(io.BytesIO(data)).pages:
        fonts = pdf_page["/Resources"].get_object().get("/Font")
        for font in (fonts.get_object() if fonts else {}).values():
            names.add(re.sub(r"^[A-Z]{6}\+", "", str(font.get_object()["/BaseFont"])[1:]))
    return names


def text_of(data: bytes) -> str:
    return "\n".join(p.extract_text() for p in PdfReader(io.BytesIO(data)).pages)


class Recorder(BaseHTTPRequestHandler):
    """Answers anything, and remembers that it was asked."""

    requests: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        Recorder.requests.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        return


@pytest.fixture
def local_server() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    Recorder.requests = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def test_markup_in_a_name_is_printed_as_text_and_fetches_nothing(local_server: int) -> None:
    name = (
        f'<img src="file:///etc/passwd"> <img src="http://127.0.0.1:{local_server}/x.png">'
        f' <link rel="stylesheet" href="http://127.0.0.1:{local_server}/s.css">'
    )
    fetcher = StaticOnlyFetcher()
    [data] = render_certificates([page(name)], fetcher=fetcher)
    text = " ".join(text_of(data).split())
    assert '<img src="file:///etc/passwd">' in text
    # A long address may wrap on the page: compare without the line breaks.
    assert f'<img src="http://127.0.0.1:{local_server}/x.png">' in text.replace("/ ", "/")
    assert Recorder.requests == []
    # Nothing but our own fonts and static files was even asked for.
    assert fetcher.refused == []
    assert b"root:" not in data


@pytest.mark.parametrize(
    ("name", "font"),
    [
        ("Zoë Ñúñez-Østergård", "CertDisplay"),
        ("Дмитрий Алексеевич Ковалёв", "CertDisplay"),
        ("محمد بن راشد آل مكتوم", "CertArabic"),
        ("王小明", "CertCJK"),
        ("김민준", "CertCJK"),
        ("יעל כהן", "CertHebrew"),
        ("अनन्या शर्मा", "CertDevanagari"),
    ],
)
def test_names_in_every_script_print_in_the_fonts_we_ship(name: str, font: str) -> None:
    [data] = render_certificates([page(name)])
    embedded = fonts_of(data)
    assert font in embedded
    # Only the fonts we ship, under the names our @font-face rules give them: the PDF looks
    # the same whatever the machine has installed.
    assert all(f.startswith("Cert") for f in embedded), embedded
    text = text_of(data)
    if font in ("CertArabic", "CertHebrew"):
        # Extraction gives right-to-left words in visual order: compare word by word.
        assert set(name.split()) <= set(text.split())
    elif font == "CertDevanagari":
        # Extraction reorders vowel signs as drawn; the first word comes out intact.
        assert name.split()[0] in text
    else:
        assert name in text


def test_a_very_long_name_still_fits_on_one_page() -> None:
    long_name = "Maria Fernanda de los Ángeles " + "Rodríguez-Villanueva y Castellanos " * 5
    pages = [page(long_name[:200]), page("W" * 200), page("王" * 100)]
    files = render_certificates(pages)
    assert [len(PdfReader(io.BytesIO(f)).pages) for f in files] == [1, 1, 1]
    assert name_layout("Ana Li")["name_size"] > name_layout(long_name[:200])["name_size"]


def test_the_page_states_the_modules_number_dates_signatories_and_version() -> None:
    [data] = render_certificates([page("Ama Banda", version=2)])
    text = " ".join(text_of(data).split())
    for module in MODULES:
        assert module in text
    for expected in (
        "Ama Banda",
        "MD24-7KQ3-9XWF-2HBN-A",
        "Barcelona, 18 to 22 November 2024",
        "22 November 2024, version 2",
        "Marta Vidal Soler",
        "Director of the Diploma",
    ):
        assert expected in text
    reader = PdfReader(io.BytesIO(data))
    width, height = reader.pages[0].mediabox.width, reader.pages[0].mediabox.height
    assert width > height  # A4 landscape
    assert round(float(width) * 25.4 / 72) == 297


@pytest.mark.skipif(shutil.which("pdftoppm") is None, reason="pdftoppm (poppler-utils) is missing")
def test_the_qr_code_holds_the_verification_address(tmp_path: Path) -> None:
    [data] = render_certificates([page("Ama Banda")])
    (tmp_path / "c.pdf").write_bytes(data)
    subprocess.run(
        [
            "pdftoppm",
            "-png",
            "-r",
            "150",
            "-singlefile",
            str(tmp_path / "c.pdf"),
            str(tmp_path / "c"),
        ],
        check=True,
    )
    found = zxingcpp.read_barcodes(Image.open(tmp_path / "c.png"))
    assert [r.text for r in found] == ["https://courses.example.org/verify/MD24-7KQ3-9XWF-2HBN-A"]
