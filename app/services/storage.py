"""Stored files (CVs, final works, PDFs) behind one interface, outside the web root."""

import secrets
from pathlib import Path
from typing import Protocol

from app.services.errors import NotFound


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


class LocalStorage:
    """Files in a folder of the server's disk (the default)."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        # A key can never climb out of the storage folder.
        if not path.is_relative_to(self.root) or path == self.root:
            raise NotFound(f"No stored file {key!r}.")
        return path

    def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(path.suffix + ".part")
        temporary.write_bytes(data)
        temporary.replace(path)

    def get(self, key: str) -> bytes:
        path = self._path(key)
        if not path.is_file():
            raise NotFound(f"No stored file {key!r}.")
        return path.read_bytes()

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()
