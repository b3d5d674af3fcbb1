"""Stored files (CVs, final works, PDFs) behind one interface, outside the web root.

Two places can hold them: a folder on the server's disk (`LocalStorage`, the default) or an
S3-compatible bucket (`S3Storage`: AWS S3, MinIO, Ceph, ...), which every app server on every
machine shares. `make_storage` picks one from the settings.
"""

import mimetypes
import secrets
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from app.services.errors import NotFound

if TYPE_CHECKING:
    from app.config import Settings

# S3 allows 1024 bytes a key; the rest is room for the prefix.
MAX_KEY_BYTES = 900

# A stored file is read or written whole (a CV is at most a few MB, a final work about 20);
# a stuck server must not hold a request for minutes, and a passing error is tried again.
S3_CONNECT_TIMEOUT_SECONDS = 5.0
S3_READ_TIMEOUT_SECONDS = 30.0
S3_MAX_ATTEMPTS = 4

AddressingStyle = Literal["auto", "path", "virtual"]


class Storage(Protocol):
    """Where the service keeps files; keys are relative paths such as `cv/ab12.pdf`."""

    def put(self, key: str, data: bytes) -> None:
        """Store `data` under `key`, replacing what was there."""

    def get(self, key: str) -> bytes:
        """The bytes stored under `key`; NotFound if there are none."""

    def delete(self, key: str) -> None:
        """Remove `key` if present."""

    def exists(self, key: str) -> bool:
        """Whether `key` is stored."""


def new_key(folder: str, suffix: str) -> str:
    """An unguessable key in a folder, e.g. `cv/3f9c...e1.pdf`."""
    return f"{folder}/{secrets.token_hex(16)}{suffix}"


def checked_key(key: str) -> str:
    """The key if it names one file inside the storage; NotFound for anything else.

    A key is a relative path of plain names: never empty, never absolute, no `.` or `..`,
    no empty segment, no backslash or control character. So no key reaches outside the
    storage folder, or outside the prefix of a bucket, whatever the backend.
    """
    segments = key.split("/")
    if (
        not key
        or len(key.encode()) > MAX_KEY_BYTES
        or "\\" in key
        or any(ord(character) < 32 or character == "\x7f" for character in key)
        or any(segment in ("", ".", "..") for segment in segments)
    ):
        raise NotFound(f"No stored file {key!r}.")
    return key


class StorageUnavailable(Exception):
    """The file store refused a write (disk full, read-only): an outage, not bad input."""


class LocalStorage:
    """Files in a folder of the server's disk (the default)."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def _path(self, key: str) -> Path:
        path = (self.root / checked_key(key)).resolve()
        # A symbolic link inside the folder can still point out of it.
        if not path.is_relative_to(self.root) or path == self.root:
            raise NotFound(f"No stored file {key!r}.")
        return path

    def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        # A name of its own: two writers of one key (a page and the mail sender rendering the
        # same invoice) must not rename each other's half-written file.
        temporary = path.with_name(f".{path.name}.{secrets.token_hex(6)}.part")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            temporary.write_bytes(data)
            temporary.replace(path)
        except OSError as exc:
            # A full or read-only disk: the half-written copy goes, the key keeps what it had.
            temporary.unlink(missing_ok=True)
            raise StorageUnavailable(
                "Files cannot be stored right now (the disk is full or cannot be written); "
                "nothing was saved. Try again later."
            ) from exc

    def get(self, key: str) -> bytes:
        path = self._path(key)
        if not path.is_file():
            raise NotFound(f"No stored file {key!r}.")
        return path.read_bytes()

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()


class S3Storage:
    """Objects in an S3-compatible bucket, under an optional prefix; shared by every server.

    One boto3 client per storage object: clients are thread-safe, so the web workers' threads
    and the background threads of one process share it.
    """

    def __init__(
        self,
        bucket: str,
        *,
        prefix: str = "",
        endpoint_url: str = "",
        region: str = "",
        access_key_id: str = "",
        secret_access_key: str = "",
        addressing_style: AddressingStyle = "auto",
    ) -> None:
        if not bucket:
            raise ValueError("An S3 storage needs a bucket.")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        if self.prefix:
            try:
                checked_key(self.prefix)
            except NotFound as exc:
                raise ValueError(f"The prefix {prefix!r} must be plain names and '/'.") from exc
        # A session of its own: boto3's default session is shared and not thread-safe.
        session = boto3.session.Session(
            aws_access_key_id=access_key_id or None,
            aws_secret_access_key=secret_access_key or None,
            region_name=region or None,
        )
        self.client: Any = session.client(
            "s3",
            endpoint_url=endpoint_url or None,
            config=Config(
                connect_timeout=S3_CONNECT_TIMEOUT_SECONDS,
                read_timeout=S3_READ_TIMEOUT_SECONDS,
                retries={"max_attempts": S3_MAX_ATTEMPTS, "mode": "standard"},
                s3={"addressing_style": addressing_style},
                # Checksums only where S3 requires them: several S3-compatible servers refuse
                # the newer default checksum headers.
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
            ),
        )

    def object_key(self, key: str) -> str:
        """The object's name in the bucket: the prefix, then the checked key."""
        checked = checked_key(key)
        return f"{self.prefix}/{checked}" if self.prefix else checked

    def put(self, key: str, data: bytes) -> None:
        content_type = mimetypes.guess_type(key)[0] or "application/octet-stream"
        # One PUT replaces the object at once: a reader sees the old bytes or the new ones.
        self.client.put_object(
            Bucket=self.bucket, Key=self.object_key(key), Body=data, ContentType=content_type
        )

    def get(self, key: str) -> bytes:
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self.object_key(key))
        except ClientError as exc:
            if _is_missing_object(exc):
                raise NotFound(f"No stored file {key!r}.") from exc
            raise
        body = response["Body"]
        try:
            data: bytes = body.read()
        finally:
            body.close()
        return data

    def delete(self, key: str) -> None:
        # Deleting a missing object succeeds in S3, as unlink(missing_ok=True) does on disk.
        self.client.delete_object(Bucket=self.bucket, Key=self.object_key(key))

    def exists(self, key: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=self.object_key(key))
        except ClientError as exc:
            if _is_missing_object(exc):
                return False
            raise
        return True


def _is_missing_object(exc: ClientError) -> bool:
    """Whether S3 answered that the object is not there (not: the bucket is missing)."""
    error = exc.response.get("Error", {})
    if error.get("Code") == "NoSuchBucket":
        return False
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return error.get("Code") in ("NoSuchKey", "NotFound", "404") or status == 404


def make_storage(settings: "Settings") -> Storage:
    """The storage the settings choose: the local folder, or the S3-compatible bucket."""
    if settings.storage_backend == "s3":
        return S3Storage(
            settings.s3_bucket,
            prefix=settings.s3_prefix,
            endpoint_url=settings.s3_endpoint_url,
            region=settings.s3_region,
            access_key_id=settings.s3_access_key_id,
            secret_access_key=settings.s3_secret_access_key,
            addressing_style=settings.s3_addressing_style,
        )
    return LocalStorage(settings.files_dir)
