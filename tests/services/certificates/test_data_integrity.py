"""The eddsa-rdfc-2022 cryptosuite against the W3C specification's published test vectors."""

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from app.services.certificates import data_integrity as di
from app.services.certificates.jsonld_contexts import shipped_contexts

VECTORS = Path(__file__).parent / "vectors"
SUITE = VECTORS / "eddsa-rdfc-2022"
EXAMPLES = {
    "https://www.w3.org/ns/credentials/examples/v2": json.loads(
        (VECTORS / "credentials-examples-v2.jsonld").read_text()
    )
}


def _json(path: Path) -> Any:
    return json.loads(path.read_text())


def _text(name: str) -> str:
    return (SUITE / name).read_text()


@pytest.fixture
def key_pair() -> dict[str, str]:
    return _json(VECTORS / "keyPair.json")  # type: ignore[no-any-return]


@pytest.fixture
def vector_hashes() -> di.HashData:
    return di.hash_data(
        _json(VECTORS / "unsigned.json"),
        _json(SUITE / "proofConfigDataInt.json"),
        contexts=EXAMPLES,
    )


def test_the_canonical_document_is_the_published_one(vector_hashes: di.HashData) -> None:
    assert vector_hashes.canonical_document == _text("canonDocDataInt.txt")


def test_the_canonical_proof_options_are_the_published_ones(vector_hashes: di.HashData) -> None:
    assert vector_hashes.canonical_proof_config == _text("proofCanonDataInt.txt")


def test_the_hashes_are_the_published_ones(vector_hashes: di.HashData) -> None:
    assert vector_hashes.document_hash.hex() == _text("docHashDataInt.txt").strip()
    assert vector_hashes.proof_config_hash.hex() == _text("proofHashDataInt.txt").strip()
    assert vector_hashes.combined.hex() == _text("combinedHashDataInt.txt").strip()


def test_the_multikeys_round_trip_to_the_published_key_pair(key_pair: dict[str, str]) -> None:
    private = di.private_key_from_multikey(key_pair["privateKeyMultibase"])
    assert di.public_multikey(private.public_key()) == key_pair["publicKeyMultibase"]


def test_signing_the_vector_gives_the_published_signed_credential(
    key_pair: dict[str, str],
) -> None:
    config = _json(SUITE / "proofConfigDataInt.json")
    signed = di.add_proof(
        _json(VECTORS / "unsigned.json"),
        private_key=di.private_key_from_multikey(key_pair["privateKeyMultibase"]),
        verification_method=config["verificationMethod"],
        created=datetime.fromisoformat(config["created"]),
        contexts=EXAMPLES,
    )
    assert signed == _json(SUITE / "signedDataInt.json")
    assert signed["proof"]["proofValue"] == _text("sigBTC58DataInt.txt").strip()
    assert di.multibase_decode(signed["proof"]["proofValue"]).hex() == (
        _text("sigHexDataInt.txt").strip()
    )


def _published_key(key_pair: dict[str, str]) -> Any:
    public = di.public_key_from_multikey(key_pair["publicKeyMultibase"])
    method = _json(SUITE / "proofConfigDataInt.json")["verificationMethod"]
    return lambda vm: public if vm == method else None


def test_the_published_signed_credential_verifies(key_pair: dict[str, str]) -> None:
    result = di.verify_proof(
        _json(SUITE / "signedDataInt.json"),
        public_key_for=_published_key(key_pair),
        contexts=EXAMPLES,
    )
    assert result.verified, result.reason


def test_one_changed_character_breaks_the_proof(key_pair: dict[str, str]) -> None:
    signed = _json(SUITE / "signedDataInt.json")
    signed["credentialSubject"]["alumniOf"] = "The School of Examplez"
    result = di.verify_proof(signed, public_key_for=_published_key(key_pair), contexts=EXAMPLES)
    assert not result.verified
    assert result.reason == "The signature does not match the document."


def test_a_proof_by_a_key_the_issuer_did_not_publish_fails(key_pair: dict[str, str]) -> None:
    signed = _json(SUITE / "signedDataInt.json")
    result = di.verify_proof(signed, public_key_for=lambda vm: None, contexts=EXAMPLES)
    assert not result.verified
    other = Ed25519PrivateKey.generate().public_key()
    result = di.verify_proof(signed, public_key_for=lambda vm: other, contexts=EXAMPLES)
    assert not result.verified


def test_a_context_the_service_does_not_ship_is_refused_not_fetched() -> None:
    # Without the examples context, the vector names a URL the service does not ship.
    with pytest.raises(di.ProofError, match="not shipped"):
        di.canonical_nquads(_json(VECTORS / "unsigned.json"))


def test_the_shipped_contexts_are_the_ones_credentials_and_did_documents_name() -> None:
    assert set(shipped_contexts()) == {
        "https://www.w3.org/ns/credentials/v2",
        "https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.3.json",
        "https://w3id.org/security/data-integrity/v2",
        "https://w3id.org/security/multikey/v1",
        "https://www.w3.org/ns/did/v1",
    }


def test_base58btc_keeps_leading_zero_bytes() -> None:
    for data in (b"", b"\0", b"\0\0\x01", b"\xff" * 40):
        assert di.base58btc_decode(di.base58btc_encode(data)) == data
