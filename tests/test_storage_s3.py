"""Stored files on disk and in an S3-compatible bucket (moto on 127.0.0.1): one contract.

No test reaches AWS: every client names the local server and dummy credentials, and the
machine's AWS settings are hidden while each test runs.
"""

import secrets
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient
from moto.server import ThreadedMotoServer
from pydantic import ValidationError
from sqlmodel import Session, select

from app.config import Settings
from app.main import create_app
from app.models import Application, Invoice, StaffUser
from app.platform.storage import LocalStorage, S3Storage, Storage, make_storage
from app.services.billing import payments
from app.services.errors import NotFound
from app.web.sessions import get_read_session, get_session
from tests.conftest import ADMIN_PASSWORD
from tests.factories import open_edition
from tests.routers.office.test_auth import csrf_from, login
from tests.routers.registrations.test_apply import PDF, form_data, post_form

ACCESS_KEY = "diplomat-test-key"
SECRET_KEY = "diplomat-test-secret"
REGION = "us-east-1"
PREFIX = "diplomat"
ESCAPING_KEYS = [
    "",
    "/etc/passwd",
    "..",
    "../outside.pdf",
    "cv/../../outside.pdf",
    "cv/../cv/x.pdf",
    "cv/./x.pdf",
    "cv//x.pdf",
    "cv/",
    "cv\\..\\..\\outside.pdf",
    "cv/x\x00.pdf",
    "cv/x\n.pdf",
    "a" * 1000,
]


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """An S3-compatible server on 127.0.0.1, on a port the system picks."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture(autouse=True)
def no_real_aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Dummy credentials and no instance metadata: nothing here can reach AWS."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)


def s3_client(endpoint: str) -> Any:
    """A plain boto3 client of the local server, to look into buckets behind the storage."""
    return boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        config=Config(s3={"addressing_style": "path"}),
    )


def new_bucket(endpoint: str) -> str:
    """A fresh, empty bucket on the local server."""
    name = f"diplomat-{secrets.token_hex(6)}"
    s3_client(endpoint).create_bucket(Bucket=name)
    return name


def bucket_objects(endpoint: str, bucket: str) -> dict[str, bytes]:
    """Every object in a bucket, by its full name."""
    client = s3_client(endpoint)
    listing = client.list_objects_v2(Bucket=bucket)
    return {
        item["Key"]: client.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
        for item in listing.get("Contents", [])
    }


def s3_storage(endpoint: str, bucket: str, prefix: str = PREFIX) -> S3Storage:
    return S3Storage(
        bucket,
        prefix=prefix,
        endpoint_url=endpoint,
        region=REGION,
        access_key_id=ACCESS_KEY,
        secret_access_key=SECRET_KEY,
        addressing_style="path",
    )


def files_under(folder: Path) -> list[Path]:
    return [path for path in folder.rglob("*") if path.is_file()] if folder.exists() else []


@pytest.fixture(params=["local", "s3"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    """Each backend in turn, empty."""
    if request.param == "local":
        return LocalStorage(tmp_path / "files")
    endpoint = request.getfixturevalue("s3_endpoint")
    return s3_storage(endpoint, new_bucket(endpoint))


def stored_anything(storage: Storage, tmp_path: Path) -> bool:
    """Whether the backend holds any file at all, wherever it came from."""
    if isinstance(storage, S3Storage):
        listing = storage.client.list_objects_v2(Bucket=storage.bucket)
        return bool(listing.get("Contents"))
    return bool(files_under(tmp_path))


# The contract, on both backends


def test_a_stored_file_reads_back_and_exists(storage: Storage) -> None:
    storage.put("cv/ab12.pdf", PDF)
    assert storage.exists("cv/ab12.pdf")
    assert storage.get("cv/ab12.pdf") == PDF


def test_putting_again_replaces_the_file(storage: Storage) -> None:
    storage.put("invoices/invoice-2026-0001.pdf", b"%PDF-1.4 first")
    storage.put("invoices/invoice-2026-0001.pdf", b"%PDF-1.4 second, longer than the first")
    assert storage.get("invoices/invoice-2026-0001.pdf") == (
        b"%PDF-1.4 second, longer than the first"
    )


def test_a_deleted_file_is_gone_and_deleting_it_again_is_harmless(storage: Storage) -> None:
    storage.put("visa-letters/x.pdf", PDF)
    storage.delete("visa-letters/x.pdf")
    assert not storage.exists("visa-letters/x.pdf")
    with pytest.raises(NotFound):
        storage.get("visa-letters/x.pdf")
    storage.delete("visa-letters/x.pdf")


def test_a_missing_file_is_not_found_and_does_not_exist(storage: Storage) -> None:
    storage.put("cv/present.pdf", PDF)
    assert not storage.exists("cv/absent.pdf")
    assert not storage.exists("absent/present.pdf")
    with pytest.raises(NotFound, match="absent"):
        storage.get("cv/absent.pdf")


def test_files_with_neighbouring_names_stay_apart(storage: Storage) -> None:
    storage.put("certificates/a.pdf", b"a")
    storage.put("certificates/a.pdf.bak", b"b")
    storage.put("final-works/a.pdf", b"c")
    assert storage.get("certificates/a.pdf") == b"a"
    assert storage.get("certificates/a.pdf.bak") == b"b"
    storage.delete("certificates/a.pdf")
    assert storage.get("final-works/a.pdf") == b"c"
    assert storage.exists("certificates/a.pdf.bak")


@pytest.mark.parametrize(
    "data",
    [b"", bytes(range(256)) * 64, secrets.token_bytes(3 * 1024 * 1024 + 17)],
    ids=["empty", "every-byte", "three-megabytes"],
)
def test_binary_data_round_trips_byte_for_byte(storage: Storage, data: bytes) -> None:
    storage.put("final-works/work.pdf", data)
    assert storage.get("final-works/work.pdf") == data


@pytest.mark.parametrize("key", ESCAPING_KEYS, ids=repr)
def test_a_key_that_could_escape_the_storage_is_refused_and_nothing_is_written(
    storage: Storage, key: str, tmp_path: Path
) -> None:
    with pytest.raises(NotFound):
        storage.put(key, b"intruder")
    with pytest.raises(NotFound):
        storage.get(key)
    with pytest.raises(NotFound):
        storage.exists(key)
    with pytest.raises(NotFound):
        storage.delete(key)
    assert not stored_anything(storage, tmp_path)


def test_the_standard_keys_of_the_service_are_accepted(storage: Storage) -> None:
    for key in (
        "cv/3f9ce1.pdf",
        "invoices/credit_note-R2026-0003.pdf",
        "cancellation-emails/ab.eml",
        "fee-waivers/x.pdf",
    ):
        storage.put(key, key.encode())
        assert storage.get(key) == key.encode()


# The S3 backend


def test_s3_objects_live_under_the_prefix_with_their_content_type(s3_endpoint: str) -> None:
    bucket = new_bucket(s3_endpoint)
    storage = s3_storage(s3_endpoint, bucket, prefix="/office/diplomat/")
    storage.put("cv/ab.pdf", PDF)
    storage.put("cancellation-emails/cd.eml", b"Subject: x\r\n\r\nbody")
    assert bucket_objects(s3_endpoint, bucket) == {
        "office/diplomat/cv/ab.pdf": PDF,
        "office/diplomat/cancellation-emails/cd.eml": b"Subject: x\r\n\r\nbody",
    }
    head = s3_client(s3_endpoint).head_object(Bucket=bucket, Key="office/diplomat/cv/ab.pdf")
    assert head["ContentType"] == "application/pdf"


def test_two_prefixes_in_one_bucket_do_not_see_each_other(s3_endpoint: str) -> None:
    bucket = new_bucket(s3_endpoint)
    office = s3_storage(s3_endpoint, bucket, prefix="office")
    other = s3_storage(s3_endpoint, bucket, prefix="other")
    office.put("cv/a.pdf", PDF)
    assert not other.exists("cv/a.pdf")
    with pytest.raises(NotFound):
        other.get("cv/a.pdf")
    other.delete("cv/a.pdf")
    assert office.get("cv/a.pdf") == PDF


def test_a_prefix_that_climbs_is_refused(s3_endpoint: str) -> None:
    with pytest.raises(ValueError, match="prefix"):
        s3_storage(s3_endpoint, new_bucket(s3_endpoint), prefix="office/../other")


def test_a_missing_bucket_is_an_error_not_a_missing_file(s3_endpoint: str) -> None:
    storage = s3_storage(s3_endpoint, "diplomat-no-such-bucket")
    with pytest.raises(ClientError) as raised:
        storage.get("cv/a.pdf")
    assert raised.value.response["Error"]["Code"] == "NoSuchBucket"
    with pytest.raises(ClientError):
        storage.put("cv/a.pdf", PDF)


def test_one_s3_storage_serves_several_threads_at_once(s3_endpoint: str) -> None:
    storage = s3_storage(s3_endpoint, new_bucket(s3_endpoint))
    failures: list[BaseException] = []

    def work(number: int) -> None:
        try:
            for round_ in range(5):
                key = f"certificates/{number}-{round_}.pdf"
                data = f"{number}:{round_}".encode() * 100
                storage.put(key, data)
                assert storage.get(key) == data
                assert storage.exists(key)
        except BaseException as exc:  # pragma: no cover - reported below
            failures.append(exc)

    threads = [threading.Thread(target=work, args=(number,)) for number in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not failures
    assert len(bucket_objects(s3_endpoint, storage.bucket)) == 40


# Settings


def test_local_storage_is_the_default(tmp_path: Path) -> None:
    settings = Settings(var_dir=tmp_path)
    storage = make_storage(settings)
    assert isinstance(storage, LocalStorage)
    assert storage.root == (tmp_path / "files").resolve()


def test_the_s3_backend_is_chosen_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, s3_endpoint: str
) -> None:
    bucket = new_bucket(s3_endpoint)
    for name, value in {
        "DIPLOMAT_STORAGE_BACKEND": "s3",
        "DIPLOMAT_S3_BUCKET": bucket,
        "DIPLOMAT_S3_PREFIX": "/office/",
        "DIPLOMAT_S3_ENDPOINT_URL": s3_endpoint,
        "DIPLOMAT_S3_REGION": REGION,
        "DIPLOMAT_S3_ACCESS_KEY_ID": ACCESS_KEY,
        "DIPLOMAT_S3_SECRET_ACCESS_KEY": SECRET_KEY,
        "DIPLOMAT_S3_ADDRESSING_STYLE": "path",
    }.items():
        monkeypatch.setenv(name, value)
    storage = make_storage(Settings(var_dir=tmp_path))
    assert isinstance(storage, S3Storage)
    storage.put("cv/a.pdf", PDF)
    assert bucket_objects(s3_endpoint, bucket) == {"office/cv/a.pdf": PDF}
    assert not files_under(tmp_path / "files")


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({}, "DIPLOMAT_S3_BUCKET is missing"),
        ({"s3_bucket": "Not_A_Bucket"}, "is not a bucket name"),
        ({"s3_bucket": "ab"}, "is not a bucket name"),
        ({"s3_bucket": "office", "s3_prefix": "a/../b"}, "DIPLOMAT_S3_PREFIX"),
        ({"s3_bucket": "office", "s3_endpoint_url": "minio:9000"}, "DIPLOMAT_S3_ENDPOINT_URL"),
        ({"s3_bucket": "office", "s3_access_key_id": "key"}, "DIPLOMAT_S3_SECRET_ACCESS_KEY"),
        ({"s3_bucket": "office", "s3_secret_access_key": "secret"}, "DIPLOMAT_S3_ACCESS_KEY_ID"),
    ],
)
def test_an_incomplete_s3_configuration_stops_the_start_with_a_clear_message(
    tmp_path: Path, settings: dict[str, str], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        Settings(var_dir=tmp_path, storage_backend="s3", **settings)  # type: ignore[arg-type]


def test_s3_settings_are_ignored_by_the_local_backend(tmp_path: Path) -> None:
    settings = Settings(var_dir=tmp_path, s3_bucket="Not_A_Bucket", s3_access_key_id="key")
    assert isinstance(make_storage(settings), LocalStorage)


# The application with its files in a bucket


@pytest.fixture(scope="module")
def s3_app(
    database_url: str, s3_endpoint: str, tmp_path_factory: pytest.TempPathFactory
) -> tuple[FastAPI, str, Path]:
    """An application whose stored files go to a bucket of the local server."""
    bucket = new_bucket(s3_endpoint)
    var_dir = tmp_path_factory.mktemp("s3-var")
    settings = Settings(
        environment="test",
        database_url=database_url,
        secret_key="test-secret-key-" + "x" * 32,
        var_dir=var_dir,
        mail_worker_in_process=False,
        storage_backend="s3",
        s3_bucket=bucket,
        s3_prefix=PREFIX,
        s3_endpoint_url=s3_endpoint,
        s3_region=REGION,
        s3_access_key_id=ACCESS_KEY,
        s3_secret_access_key=SECRET_KEY,
        s3_addressing_style="path",
    )
    return create_app(settings), bucket, var_dir


@pytest.fixture
def s3_client_app(s3_app: tuple[FastAPI, str, Path], session: Session) -> Iterator[TestClient]:
    """A client of the bucket-backed application, on the test's session."""
    app = s3_app[0]

    def _session(_: Request) -> Iterator[Session]:
        yield session

    app.dependency_overrides[get_session] = _session
    app.dependency_overrides[get_read_session] = _session
    try:
        with TestClient(app, base_url="http://testserver") as test_client:
            yield test_client
    finally:
        app.dependency_overrides.clear()


def test_a_cv_and_an_invoice_go_to_the_bucket_and_are_served_from_it(
    s3_app: tuple[FastAPI, str, Path],
    s3_client_app: TestClient,
    s3_endpoint: str,
    session: Session,
    admin_user: StaffUser,
) -> None:
    app, bucket, var_dir = s3_app
    client = s3_client_app
    assert isinstance(app.state.storage, S3Storage)
    open_edition(session)
    # Binary bytes inside, the end marker last: still a PDF to the form.
    cv = b"%PDF-1.4\n%" + secrets.token_bytes(4096) + b"\ntrailer<<>>\n%%EOF\n"

    # An applicant sends the form with a CV: it lands in the bucket, not on the disk.
    response = post_form(client, form_data(), files={"cv": ("cv.pdf", cv, "application/pdf")})
    assert response.status_code == 303, response.text
    application = session.exec(select(Application)).one()
    assert application.cv_key is not None
    objects = bucket_objects(s3_endpoint, bucket)
    assert objects[f"{PREFIX}/{application.cv_key}"] == cv

    # An administrator downloads it from the application's page.
    assert login(client, "admin@example.org", ADMIN_PASSWORD).status_code == 303
    page = client.get(f"/admin/applications/{application.id}")
    assert f'href="/admin/applications/{application.id}/cv"' in page.text
    download = client.get(f"/admin/applications/{application.id}/cv")
    assert download.status_code == 200
    assert download.content == cv

    # Admitting a paying applicant issues the invoice; its PDF is stored in the bucket.
    decision = client.post(
        f"/admin/applications/{application.id}/decision",
        data={
            "csrf_token": csrf_from(page.text),
            "version": str(application.version),
            "decision": "admit",
        },
        follow_redirects=False,
    )
    assert decision.status_code == 303, decision.text
    invoice: Invoice = payments.participant_invoices(session, application.id or 0)[0]
    pdf = client.get(f"/admin/invoices/{invoice.number}.pdf")
    assert pdf.status_code == 200
    assert pdf.content.startswith(b"%PDF")
    session.refresh(invoice)
    objects = bucket_objects(s3_endpoint, bucket)
    assert objects[f"{PREFIX}/{invoice.pdf_key}"] == pdf.content
    assert all(name.startswith(f"{PREFIX}/") for name in objects)
    assert not files_under(var_dir / "files")


def test_a_file_missing_from_the_bucket_is_a_404_page(
    s3_app: tuple[FastAPI, str, Path],
    s3_client_app: TestClient,
    s3_endpoint: str,
    session: Session,
    admin_user: StaffUser,
) -> None:
    _, bucket, _ = s3_app
    client = s3_client_app
    open_edition(session)
    response = post_form(
        client,
        form_data(email="gone@example.org"),
        files={"cv": ("cv.pdf", PDF, "application/pdf")},
    )
    assert response.status_code == 303, response.text
    application = session.exec(select(Application)).one()
    s3_client(s3_endpoint).delete_object(Bucket=bucket, Key=f"{PREFIX}/{application.cv_key}")
    assert login(client, "admin@example.org", ADMIN_PASSWORD).status_code == 303
    assert client.get(f"/admin/applications/{application.id}/cv").status_code == 404
