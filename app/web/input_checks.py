"""Checks every request's text before any endpoint sees it: no NUL characters anywhere (SQLite
would store them, PostgreSQL refuses them) and no query value longer than a person types."""

import json
from collections.abc import Iterator
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from starlette.datastructures import UploadFile

# Longer than any search, slug or id a person or a script sends in a URL.
MAX_QUERY_CHARS = 1000
NUL_MESSAGE = "Text may not contain NUL characters."
_FORMS = ("application/x-www-form-urlencoded", "multipart/form-data")


def _fault(location: list[str | int], message: str) -> dict[str, Any]:
    return {"loc": location, "msg": message, "type": "value_error"}


def _nul_texts(value: Any, location: list[str | int]) -> Iterator[list[str | int]]:
    """Where, in a parsed JSON value, a text (or a key) holds a NUL."""
    if isinstance(value, str):
        if "\x00" in value:
            yield location
    elif isinstance(value, dict):
        for key, item in value.items():
            if "\x00" in key:
                yield [*location, key]
            yield from _nul_texts(item, [*location, key])
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _nul_texts(item, [*location, index])


async def refuse_unstorable_input(request: Request) -> None:
    """422 naming each field whose text holds a NUL, and each over-long query value."""
    faults = [
        _fault(["query", name], f"At most {MAX_QUERY_CHARS} characters.")
        for name, value in request.query_params.multi_items()
        if len(value) > MAX_QUERY_CHARS
    ]
    faults += [
        _fault(["query", name], NUL_MESSAGE)
        for name, value in request.query_params.multi_items()
        if "\x00" in value or "\x00" in name
    ]
    faults += [
        _fault(["path", name], NUL_MESSAGE)
        for name, value in request.path_params.items()
        if isinstance(value, str) and "\x00" in value
    ]
    content_type = request.headers.get("content-type", "")
    if content_type.startswith(_FORMS):
        form = await request.form()
        faults += [
            _fault(["body", name], NUL_MESSAGE)
            for name, value in form.multi_items()
            if not isinstance(value, UploadFile) and ("\x00" in value or "\x00" in name)
        ]
    elif "json" in content_type:
        body = await request.body()
        # Most bodies hold neither escape nor byte: they are not parsed a second time.
        if b"\\u0000" in body or b"\x00" in body:
            try:
                parsed = json.loads(body)
            except ValueError:
                parsed = None  # not JSON: the endpoint's own parsing says so
            faults += [_fault(["body", *where], NUL_MESSAGE) for where in _nul_texts(parsed, [])]
    if faults:
        raise RequestValidationError(faults)
