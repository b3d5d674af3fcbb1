"""Credentials checked by code this project did not write: Digital Bazaar's verifier, in Node.js.

The verifier gets the credential and what the service publishes (the DID document, the status
list credential), and only the JSON-LD contexts the service ships.
"""

import fcntl
import hashlib
import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.models import Application
from app.services.certificates.jsonld_contexts import CONTEXTS_DIR
from tests.conftest import require_in_ci
from tests.routers.certificates.test_certificates import issue_by_api
from tests.routers.certificates.test_credentials import BASE, edition, local, participant

VERIFIER = Path(__file__).resolve().parents[2] / "verifier"
STAMP = VERIFIER / "node_modules" / ".installed-from-lock"

__all__ = ["edition", "participant"]  # fixtures shared with the credential tests


def _lock_digest() -> str:
    return hashlib.sha256((VERIFIER / "package-lock.json").read_bytes()).hexdigest()


@pytest.fixture(scope="session")
def node() -> Iterator[str]:
    """Node.js with the verifier's packages installed from the lock (npm ci), once."""
    executable, npm = shutil.which("node"), shutil.which("npm")
    if executable is None or npm is None:
        require_in_ci("Node.js and npm are not installed: the independent verifier did not run")
    assert executable is not None and npm is not None
    # Two test workers may arrive together: one installs while the other waits.
    with (VERIFIER / ".install.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not STAMP.exists() or STAMP.read_text() != _lock_digest():
            subprocess.run(
                [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
                cwd=VERIFIER,
                check=True,
                timeout=300,
            )
            STAMP.write_text(_lock_digest())
    yield executable


def verify(node: str, credential: dict[str, Any], documents: dict[str, Any]) -> dict[str, Any]:
    """What Digital Bazaar's verifier says of the credential."""
    done = subprocess.run(
        [node, str(VERIFIER / "verify.mjs"), str(CONTEXTS_DIR)],
        input=json.dumps({"credential": credential, "documents": documents}),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def published(client: TestClient, credential: dict[str, Any]) -> dict[str, Any]:
    """What the service serves at the addresses the credential names."""
    did_document = client.get("/.well-known/did.json").json()
    status_url = credential["credentialStatus"]["statusListCredential"]
    return {
        did_document["id"]: did_document,
        status_url: client.get(local(status_url)).json(),
    }


def test_the_independent_verifier_accepts_a_fresh_credential_and_rejects_a_changed_one(
    node: str, client: TestClient, admin_headers: dict[str, str], participant: Application
) -> None:
    number = issue_by_api(client, admin_headers, participant).json()["number"]
    credential = client.get(f"/api/v1/certificates/{number}/credential").json()
    documents = published(client, credential)
    answer = verify(node, credential, documents)
    assert answer == {"verified": True, "revoked": False, "errors": []}
    # One changed character in what was achieved.
    tampered = json.loads(json.dumps(credential).replace("3rd edition", "3rd editiom", 1))
    assert tampered != credential
    answer = verify(node, tampered, documents)
    assert answer["verified"] is False
    assert any("Invalid signature" in error for error in answer["errors"]), answer


def test_the_independent_verifier_reads_a_revoked_credential_as_revoked(
    node: str, client: TestClient, admin_headers: dict[str, str], participant: Application
) -> None:
    number = issue_by_api(client, admin_headers, participant).json()["number"]
    credential = client.get(f"/api/v1/certificates/{number}/credential").json()
    revoked = client.post(
        f"/api/v1/certificates/{number}/revoke",
        json={"reason": "Issued to the wrong person."},
        headers=admin_headers,
    )
    assert revoked.status_code == 200
    answer = verify(node, credential, published(client, credential))
    assert answer["revoked"] is True, answer
    assert BASE in credential["credentialStatus"]["statusListCredential"]
