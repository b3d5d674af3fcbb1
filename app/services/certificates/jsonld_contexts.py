"""The JSON-LD contexts the service ships, served to the JSON-LD processor without a network."""

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from pyld import jsonld

CONTEXTS_DIR = Path(__file__).resolve().parents[2] / "data" / "jsonld"

CREDENTIALS_V2 = "https://www.w3.org/ns/credentials/v2"
OPEN_BADGES_V3 = "https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.3.json"
DATA_INTEGRITY_V2 = "https://w3id.org/security/data-integrity/v2"
MULTIKEY_V1 = "https://w3id.org/security/multikey/v1"
DID_V1 = "https://www.w3.org/ns/did/v1"


@lru_cache(maxsize=1)
def shipped_contexts() -> dict[str, Any]:
    """Every shipped context by its published URL, read once."""
    index: dict[str, str] = json.loads((CONTEXTS_DIR / "index.json").read_text())
    return {url: json.loads((CONTEXTS_DIR / name).read_text()) for url, name in index.items()}


class UnknownContext(ValueError):
    """A document names a context the service does not ship."""


def document_loader(
    extra: dict[str, Any] | None = None,
) -> Any:
    """A pyld document loader over the shipped contexts (and `extra`); anything else fails.

    Fetching a context at run time would let whoever serves it change what a signature
    covers, so an unknown address is refused rather than looked up.
    """
    known = {**shipped_contexts(), **(extra or {})}

    def load(url: str, options: dict[str, Any] | None = None) -> dict[str, Any]:
        document = known.get(url)
        if document is None:
            raise jsonld.JsonLdError(
                f"The JSON-LD context {url} is not shipped with the service.",
                "jsonld.LoadDocumentError",
                {"url": url},
                code="loading document failed",
                cause=UnknownContext(url),
            )
        return {
            "contentType": "application/ld+json",
            "contextUrl": None,
            "documentUrl": url,
            "document": document,
        }

    return load
