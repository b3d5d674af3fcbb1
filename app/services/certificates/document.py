"""Certificate PDFs: plain values per page, many pages rendered as one document, then split.

WeasyPrint pays a fixed price for every document (loading and subsetting the embedded fonts,
setting up the document, writing the file). A bulk run therefore renders its certificates in
batches, each batch as one document, and splits the result into one PDF per certificate:
the fixed price is paid once per batch instead of once per certificate. Batches can also be
rendered in several processes at once (`render_batches`), one per core.

Nothing here touches the database: the functions take and return plain values, so they run
the same in a worker process.
"""

import base64
import io
import math
import mimetypes
import re
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import asdict, dataclass
from functools import lru_cache
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import segno
from pypdf import PdfReader, PdfWriter
from pypdf.generic import DictionaryObject, NameObject

from app.platform.pdf import StaticOnlyFetcher, render_pdf

TEMPLATE = "certificate.html"
# A batch large enough that the per-document price is small beside the pages, small enough
# that progress moves often and a failed batch costs little.
BATCH_SIZE = 50
SIGNATURE_TYPES = {"image/svg+xml", "image/png", "image/jpeg"}
SIGNATURE_MAX_BYTES = 512 * 1024
_FONT_USE = re.compile(rb"/([^\s/\[\]()<>{}%]+)\s+[-\d.]+\s+Tf")
_RIGHT_TO_LEFT = {"R", "AL"}


@dataclass(frozen=True)
class SignatoryMark:
    """A signatory as printed: name, title and the signature image as a data: URL."""

    name: str
    title: str
    image: str


@dataclass(frozen=True)
class CertificatePage:
    """Everything one certificate page shows, as plain values (no ORM objects)."""

    number: str
    holder: str
    issuer: str
    course: str
    edition: str
    place: str
    dates: str
    modules: tuple[str, ...]
    signatories: tuple[SignatoryMark, ...]
    issued_on: str
    version: int
    verification_url: str
    # The holder's language: the page's words, and the course texts and dates above in it.
    language: str = "en"


_NARROW = frozenset("fijlrtI.,;:'’-‐ ")
_WIDE = frozenset("MWmwÆŒæœ")


def _letters(text: str) -> float:
    """Width of `text` in average lowercase letters of the display face.

    Ideographs and kana take about two letters, capitals more than one, i, l and spaces
    about half: close enough to choose a size without laying the text out twice.
    """
    width = 0.0
    for character in text:
        if unicodedata.east_asian_width(character) in ("W", "F"):
            width += 1.9
        elif character in _WIDE:
            width += 1.55
        elif character in _NARROW:
            width += 0.55
        elif character.isupper():
            width += 1.3
        else:
            width += 1.0
    return width


def _direction(text: str) -> str:
    """`rtl` when the first letter with a direction is Arabic or Hebrew, else `ltr`."""
    for character in text:
        kind = unicodedata.bidirectional(character)
        if kind in _RIGHT_TO_LEFT:
            return "rtl"
        if kind == "L":
            return "ltr"
    return "ltr"


def _language(text: str) -> str:
    """A language tag that picks the right glyph forms for CJK names; empty otherwise."""
    for character in text:
        name = unicodedata.name(character, "")
        if name.startswith(("HIRAGANA", "KATAKANA")):
            return "ja"
        if name.startswith("HANGUL"):
            return "ko"
    if any(unicodedata.name(c, "").startswith("CJK UNIFIED") for c in text):
        return "zh"
    return ""


NAME_BOX_WIDTH_MM = 233.0
NAME_BOX_HEIGHT_MM = 28.0
NAME_SIZES_PT = (34.0, 30.0, 26.0, 22.0, 19.0, 16.5, 14.5, 12.5, 11.0)
# The width of an average letter of the display face, in em; generous, so names never clip.
LETTER_EM = 0.52
LINE_HEIGHT = 1.18
# Lines break between words, so a line holds less than the box's width of letters.
WRAP_FILL = 0.85
PT_MM = 25.4 / 72


def name_layout(name: str) -> dict[str, Any]:
    """Font size and top padding (mm) that keep any name inside its fixed box on one page.

    The largest size at which the name's lines fit the box's height wins (the 200 letters a
    name may have fit at the smallest), and the lines are centred in the box.
    """
    letters = max(_letters(name), 1.0)
    size, lines = NAME_SIZES_PT[-1], 1
    for size in NAME_SIZES_PT:
        lines = math.ceil(letters / (WRAP_FILL * NAME_BOX_WIDTH_MM / (size * LETTER_EM * PT_MM)))
        if lines * size * LINE_HEIGHT * PT_MM <= NAME_BOX_HEIGHT_MM - 2:
            break
    height = lines * size * LINE_HEIGHT * PT_MM
    return {"name_size": size, "name_top": round(max(0.0, (NAME_BOX_HEIGHT_MM - height) / 2), 1)}


def qr_data_uri(url: str) -> str:
    """The verification address as a QR code, an SVG data: URL (vector, sharp in print)."""
    # Medium error correction survives a fold or a smudge; the border is the page's margin.
    # A fixed mask spares choosing among all eight (two thirds of the work); every mask
    # gives a valid code that readers decode alike.
    code = segno.make(url, error="m", micro=False, mask=0)
    uri: str = code.svg_data_uri(border=0, dark="#111826")
    return uri


@lru_cache(maxsize=16)
def _image_data_uri(path: str, modified: float) -> str:
    file = Path(path)
    content_type = mimetypes.guess_type(file.name)[0] or ""
    if content_type not in SIGNATURE_TYPES:
        raise ValueError(f"A signature image must be SVG, PNG or JPEG: {file.name}")
    data = file.read_bytes()
    if len(data) > SIGNATURE_MAX_BYTES:
        raise ValueError(f"The signature image {file.name} is larger than 512 KB.")
    return f"data:{content_type};base64,{base64.b64encode(data).decode()}"


def signature_image(path: Path | None) -> str:
    """A signature file from the settings as a data: URL; empty when none is set."""
    if path is None:
        return ""
    # Read by our code from a path an administrator configured, and handed to WeasyPrint as
    # data: the document itself can still fetch nothing.
    return _image_data_uri(str(path), path.stat().st_mtime)


def page_context(page: CertificatePage) -> dict[str, Any]:
    """The template's values for one page."""
    values = asdict(page)
    values["signatories"] = [asdict(s) for s in page.signatories]
    values["direction"] = _direction(page.holder)
    values["name_lang"] = _language(page.holder)
    values["qr"] = qr_data_uri(page.verification_url)
    values.update(name_layout(page.holder))
    return values


def _used_fonts(content: bytes) -> set[str]:
    return {"/" + match.decode("latin-1") for match in _FONT_USE.findall(content)}


def split_pages(pdf: bytes) -> list[bytes]:
    """One PDF per page of `pdf`, each keeping only the fonts its page uses."""
    reader = PdfReader(io.BytesIO(pdf))
    documents: list[bytes] = []
    for page in reader.pages:
        found = page.get("/Resources")
        resources = found.get_object() if found is not None else None
        fonts = resources.get("/Font") if isinstance(resources, DictionaryObject) else None
        if isinstance(resources, DictionaryObject) and fonts is not None:
            contents = page.get_contents()
            used = _used_fonts(contents.get_data()) if contents is not None else set()
            # The batch's pages share one font dictionary; this page gets its own, with
            # only its fonts, so other scripts' fonts stay out of its file.
            own = DictionaryObject(
                {NameObject(k): v for k, v in fonts.get_object().items() if k in used}
            )
            page_resources = DictionaryObject(resources)
            page_resources[NameObject("/Font")] = own
            page[NameObject("/Resources")] = page_resources
        writer = PdfWriter()
        writer.add_page(page)
        if reader.metadata:
            writer.add_metadata({k: v for k, v in reader.metadata.items() if k != "/Title"})
        buffer = io.BytesIO()
        writer.write(buffer)
        documents.append(buffer.getvalue())
    return documents


def render_certificates(
    pages: Sequence[CertificatePage], *, fetcher: StaticOnlyFetcher | None = None
) -> list[bytes]:
    """One PDF per certificate, rendered together as one document and split."""
    if not pages:
        return []
    # A document is rendered in one language; a batch whose holders chose different ones is
    # rendered as one document per language and put back in the batch's order.
    positions: dict[str, list[int]] = {}
    for index, page in enumerate(pages):
        positions.setdefault(page.language, []).append(index)
    documents: list[bytes] = [b""] * len(pages)
    for language, indexes in positions.items():
        rendered = _render_one_language([pages[i] for i in indexes], language, fetcher)
        for index, pdf in zip(indexes, rendered, strict=True):
            documents[index] = pdf
    return documents


def _render_one_language(
    pages: Sequence[CertificatePage], language: str, fetcher: StaticOnlyFetcher | None
) -> list[bytes]:
    """One PDF per certificate of pages in the same language, as one document split."""
    contexts = [page_context(page) for page in pages]
    pdf = render_pdf(TEMPLATE, {"certificates": contexts}, fetcher=fetcher, language=language)
    if len(pages) == 1:
        return [pdf]
    documents = split_pages(pdf)
    if len(documents) != len(pages):
        # Every certificate is a fixed one-page box, so this does not happen; if it ever
        # did, page i would no longer be certificate i: render each on its own instead.
        return [
            render_pdf(TEMPLATE, {"certificates": [c]}, fetcher=fetcher, language=language)
            for c in contexts
        ]
    return documents


def batches(items: Sequence[Any], size: int = BATCH_SIZE) -> Iterator[Sequence[Any]]:
    """`items` in consecutive slices of at most `size`."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def process_count(setting: int, cpu_count: int | None) -> int:
    """How many processes render a run: the setting, or one per core (at most 4)."""
    if setting > 0:
        return setting
    return max(1, min(4, cpu_count or 1))


def render_batches(
    work: Iterable[Sequence[CertificatePage]], *, processes: int
) -> Iterator[list[bytes]]:
    """Render batches in order, each into one PDF per certificate, in up to `processes`.

    With one process the batches are rendered here, one after the other. With more, a pool
    of fresh processes (spawned, never forked from a threaded server) renders them while
    results are handed back in the order of `work`.
    """
    queue = list(work)
    if processes <= 1 or len(queue) <= 1:
        for batch in queue:
            yield render_certificates(batch)
        return
    context = get_context("spawn")
    with ProcessPoolExecutor(max_workers=min(processes, len(queue)), mp_context=context) as pool:
        pending: list[Future[list[bytes]]] = []
        # Keep every process busy with one batch ahead, without queueing the whole run.
        ahead = 2 * processes
        index = 0
        while index < len(queue) and len(pending) < ahead:
            pending.append(pool.submit(render_certificates, queue[index]))
            index += 1
        while pending:
            result = pending.pop(0).result()
            if index < len(queue):
                pending.append(pool.submit(render_certificates, queue[index]))
                index += 1
            yield result
