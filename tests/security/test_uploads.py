"""Uploads: files are judged by content, bombs are never opened, big bodies never read.

- a renamed executable (ELF, PE) as a CV or a final work is refused by content;
- a zip bomb named `.pdf` is refused at once: nothing decompresses it;
- a PDF whose stream would inflate to hundreds of megabytes is handled without inflating;
- a body over the address's limit answers 413 before it is read: a declared length is
  refused without reading a byte, a chunked body is cut off as soon as it passes.
"""

import asyncio
import io
import time
import tracemalloc
import zipfile
import zlib
from collections.abc import MutableMapping
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from app.models import Application, Edition, FinalWork, StaffUser
from app.services.registrations.applications import CV_MAX_BYTES
from app.web.security import MAX_BODY_BYTES, upload_body_limit
from tests.conftest import ADMIN_PASSWORD
from tests.factories import application_payload, open_edition
from tests.routers.office.test_auth import login
from tests.security import Participant, csrf_for, two_participants

ELF = b"\x7fELF\x02\x01\x01\x00" + b"\x00" * 8 + b"\x02\x00\x3e\x00" + b"\x00" * 200
PE = b"MZ\x90\x00\x03\x00\x00\x00" + b"\x00" * 52 + b"\x80\x00\x00\x00" + b"PE\x00\x00" * 20
BOMB_BYTES = 200 * 1024 * 1024
FILE_PART_HEAD = (
    b'--x\r\nContent-Disposition: form-data; name="cv"; filename="cv.pdf"\r\n'
    b"Content-Type: application/pdf\r\n\r\n"
)


def zip_bomb() -> bytes:
    """A small zip holding 200 MB of zeros (a real archive: its directory says so)."""
    buffer = io.BytesIO()
    with (
        zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive,
        archive.open("cv.pdf", "w", force_zip64=True) as member,
    ):
        chunk = b"\x00" * (1024 * 1024)
        for _ in range(BOMB_BYTES // len(chunk)):
            member.write(chunk)
    data = buffer.getvalue()
    assert len(data) < 1024 * 1024
    return data


def pdf_bomb() -> bytes:
    """A well-formed one-page PDF whose content stream inflates to 200 MB."""
    stream = zlib.compress(b" " * BOMB_BYTES, 9)
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R >>",
        b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(stream) + stream + b"\nendstream",
    ]
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % number + body + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    for offset in offsets:
        out.write(b"%010d 00000 n \n" % offset)
    out.write(
        b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    )
    return out.getvalue()


def apply(client: TestClient, edition: Edition, cv: bytes, name: str = "cv.pdf") -> Any:
    csrf = csrf_for(client, f"/editions/{edition.slug}/apply")
    form = {k: str(v) for k, v in application_payload(email="upload@example.org").items()}
    form["consent"] = "on"
    return client.post(
        f"/editions/{edition.slug}/apply",
        data={**form, "csrf_token": csrf},
        files={"cv": (name, cv, "application/pdf")},
        follow_redirects=False,
    )


@pytest.mark.parametrize(("what", "data"), [("ELF", ELF), ("PE", PE)])
def test_a_renamed_executable_is_refused_as_a_cv(
    what: str, data: bytes, client: TestClient, session: Session
) -> None:
    edition = open_edition(session)
    response = apply(client, edition, data)
    assert response.status_code == 422, what
    assert "must be a PDF file" in response.text
    assert session.exec(select(Application)).all() == []


def test_a_zip_bomb_named_pdf_is_refused_at_once(client: TestClient, session: Session) -> None:
    edition = open_edition(session)
    bomb = zip_bomb()
    tracemalloc.start()
    started = time.monotonic()
    try:
        response = apply(client, edition, bomb)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert response.status_code == 422
    assert "must be a PDF file" in response.text
    assert time.monotonic() - started < 5
    assert peak < 50 * 1024 * 1024, "the archive was inflated"
    assert session.exec(select(Application)).all() == []


@pytest.fixture
def people(session: Session) -> tuple[Edition, Participant, Participant]:
    """Two participants who may upload a final work."""
    return two_participants(session)


def upload_final_work(client: TestClient, token: str, data: bytes, name: str) -> Any:
    csrf = csrf_for(client, f"/portal/{token}")
    return client.post(
        f"/portal/{token}/final-work",
        data={"csrf_token": csrf},
        files={"final_work": (name, data, "application/pdf")},
        follow_redirects=False,
    )


@pytest.mark.parametrize(("what", "data"), [("ELF", ELF), ("PE", PE), ("zip bomb", b"")])
def test_an_executable_or_a_zip_bomb_is_refused_as_a_final_work(
    what: str,
    data: bytes,
    client: TestClient,
    session: Session,
    people: tuple[Edition, Participant, Participant],
) -> None:
    _, attacker, _ = people
    stored = session.exec(
        select(FinalWork).where(FinalWork.application_id == attacker.application.id)
    ).one()
    key_before = stored.file_key
    started = time.monotonic()
    response = upload_final_work(client, attacker.token, data or zip_bomb(), "final-work.pdf")
    assert response.status_code == 422, (what, response.status_code)
    assert time.monotonic() - started < 5
    session.refresh(stored)
    assert stored.file_key == key_before


def test_a_pdf_that_would_inflate_to_200_mb_is_handled_without_inflating_it(
    client: TestClient, session: Session, people: tuple[Edition, Participant, Participant]
) -> None:
    _, attacker, _ = people
    bomb = pdf_bomb()
    assert len(bomb) < 1024 * 1024
    tracemalloc.start()
    started = time.monotonic()
    try:
        response = upload_final_work(client, attacker.token, bomb, "final-work.pdf")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert response.status_code in (303, 409, 422), response.status_code
    assert time.monotonic() - started < 5
    assert peak < 50 * 1024 * 1024, "the stream was inflated"


def test_an_executable_is_refused_as_a_cancellation_email(
    client: TestClient,
    session: Session,
    admin_user: StaffUser,
    people: tuple[Edition, Participant, Participant],
) -> None:
    _, attacker, _ = people
    assert login(client, "admin@example.org", ADMIN_PASSWORD).status_code == 303
    page = f"/admin/applications/{attacker.application.id}/cancellation"
    csrf = csrf_for(client, page)
    response = client.post(
        page,
        data={
            "csrf_token": csrf,
            "channel": "email",
            "received_at": "2026-01-05T10:00",
            "course_name": "Diploma",
            "full_name": "Ama Attacker",
            "registration_date": "2026-01-01",
            "contact": "ama.attacker@example.org",
        },
        files={"email_file": ("cancel.eml", ELF, "message/rfc822")},
        follow_redirects=False,
    )
    assert response.status_code == 422
    assert ".eml file" in response.text
    session.refresh(attacker.application)
    assert attacker.application.status == "confirmed"


# --- Bodies over the limit, at the ASGI level: what was read is counted ------------------


def send_body(
    app: FastAPI, path: str, *, declared: int | None, chunks: int, chunk_size: int = 64 * 1024
) -> tuple[int, int, bytes]:
    """POST `chunks` chunks to `path`; (status, chunks the application read, body)."""
    read = 0
    sent: list[MutableMapping[str, Any]] = []
    headers = [(b"content-type", b"multipart/form-data; boundary=x"), (b"host", b"testserver")]
    if declared is not None:
        headers.append((b"content-length", str(declared).encode()))
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
        "state": {},
    }

    async def receive() -> dict[str, Any]:
        nonlocal read
        if read >= chunks:
            return {"type": "http.request", "body": b"", "more_body": False}
        read += 1
        # A well-formed multipart body whose one file never ends: only the limit stops it.
        head = FILE_PART_HEAD if read == 1 else b""
        return {"type": "http.request", "body": head + b"x" * chunk_size, "more_body": True}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], read, body


def test_a_declared_body_over_the_limit_is_refused_without_reading_a_byte(
    test_app: FastAPI,
) -> None:
    for path, limit in (
        ("/editions/diploma-open/apply", upload_body_limit(CV_MAX_BYTES)),
        ("/admin/statements/import", MAX_BODY_BYTES),
        ("/api/v1/income-groups/2023", MAX_BODY_BYTES),
    ):
        status, read, body = send_body(test_app, path, declared=limit + 1, chunks=10_000)
        assert (status, read) == (413, 0), path
        assert b"at most" in body


def test_a_chunked_body_is_cut_off_once_it_passes_the_limit(test_app: FastAPI) -> None:
    chunk = 64 * 1024
    limit = upload_body_limit(CV_MAX_BYTES)
    # 1 GB on offer; the application stops reading just past the limit.
    status, read, body = send_body(
        test_app, "/editions/diploma-open/apply", declared=None, chunks=16_384, chunk_size=chunk
    )
    assert status == 413
    assert read <= limit // chunk + 2
    assert b"at most 5 MB" in body


def test_the_api_answers_a_body_over_the_limit_in_json(client: TestClient) -> None:
    response = client.put(
        "/api/v1/income-groups/2023",
        content=b"x" * (MAX_BODY_BYTES + 1),
        headers={"content-type": "text/csv"},
    )
    assert response.status_code == 413
    assert "at most 3 MB" in response.json()["detail"]
