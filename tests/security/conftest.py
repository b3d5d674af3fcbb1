"""Each attack gets its own file store.

Stored PDFs are keyed by invoice number, and numbers repeat from one rolled-back test to
the next: a shared store would serve one test's PDF to another.
"""

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI

from app.platform.storage import LocalStorage


@pytest.fixture(autouse=True)
def own_storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[None]:
    """The application under test keeps this test's files in a folder of its own."""
    if "test_app" not in request.fixturenames:
        yield
        return
    app: FastAPI = request.getfixturevalue("test_app")
    kept = app.state.storage
    app.state.storage = LocalStorage(tmp_path / "files")
    try:
        yield
    finally:
        app.state.storage = kept
