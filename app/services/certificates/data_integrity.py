"""The W3C `eddsa-rdfc-2022` cryptosuite: Data Integrity proofs made and checked with Ed25519.

A proof signs the SHA-256 of the canonical proof options followed by the SHA-256 of the
canonical document, both canonicalised with RDF Dataset Canonicalization (RDFC-1.0, which
pyld implements as URDNA2015). Keys are Multikeys: multibase base58btc of a multicodec
prefix and the raw key. See https://www.w3.org/TR/vc-di-eddsa/ (section 3.3).
"""

import copy
import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from pyld import jsonld

from app.services.certificates.jsonld_contexts import document_loader

PROOF_TYPE = "DataIntegrityProof"
CRYPTOSUITE = "eddsa-rdfc-2022"
# Multicodec prefixes (varint) of an Ed25519 public key (0xed) and private key (0x1300).
ED25519_PUBLIC_PREFIX = b"\xed\x01"
ED25519_PRIVATE_PREFIX = b"\x80\x26"
BASE58_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


class ProofError(ValueError):
    """A proof cannot be made or does not check out; the message says why."""


def base58btc_encode(data: bytes) -> str:
    """Bitcoin's base58 alphabet; each leading zero byte becomes a leading '1'."""
    number = int.from_bytes(data, "big")
    digits = []
    while number:
        number, remainder = divmod(number, 58)
        digits.append(BASE58_ALPHABET[remainder])
    zeros = len(data) - len(data.lstrip(b"\0"))
    return "1" * zeros + "".join(reversed(digits))


def base58btc_decode(text: str) -> bytes:
    """The bytes of a base58btc string."""
    number = 0
    for char in text:
        position = BASE58_ALPHABET.find(char)
        if position < 0:
            raise ProofError(f"{char!r} is not a base58btc character.")
        number = number * 58 + position
    zeros = len(text) - len(text.lstrip("1"))
    body = number.to_bytes((number.bit_length() + 7) // 8, "big") if number else b""
    return b"\0" * zeros + body


def multibase_decode(value: str) -> bytes:
    """The bytes of a multibase base58btc value (prefix `z`)."""
    if not value.startswith("z"):
        raise ProofError("Only multibase base58btc values (starting with 'z') are accepted.")
    return base58btc_decode(value[1:])


def public_multikey(key: Ed25519PublicKey) -> str:
    """The Multikey `publicKeyMultibase` of an Ed25519 public key (`z6Mk...`)."""
    raw = key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return "z" + base58btc_encode(ED25519_PUBLIC_PREFIX + raw)


def public_key_from_multikey(value: str) -> Ed25519PublicKey:
    """The Ed25519 public key a `publicKeyMultibase` holds."""
    decoded = multibase_decode(value)
    if not decoded.startswith(ED25519_PUBLIC_PREFIX) or len(decoded) != 34:
        raise ProofError("The key is not an Ed25519 Multikey.")
    return Ed25519PublicKey.from_public_bytes(decoded[2:])


def private_key_from_multikey(value: str) -> Ed25519PrivateKey:
    """The Ed25519 private key a `secretKeyMultibase` holds."""
    decoded = multibase_decode(value)
    if not decoded.startswith(ED25519_PRIVATE_PREFIX) or len(decoded) != 34:
        raise ProofError("The key is not an Ed25519 private Multikey.")
    return Ed25519PrivateKey.from_private_bytes(decoded[2:])


def canonical_nquads(document: dict[str, Any], *, contexts: dict[str, Any] | None = None) -> str:
    """The document's RDF dataset, canonicalised (RDFC-1.0) as N-Quads."""
    try:
        result: str = jsonld.normalize(
            document,
            {
                "algorithm": "URDNA2015",
                "format": "application/n-quads",
                "documentLoader": document_loader(contexts),
            },
        )
    except jsonld.JsonLdError as exc:
        raise ProofError(f"The document is not valid JSON-LD here: {exc}") from exc
    return result


@dataclass(frozen=True)
class HashData:
    """The intermediate values of the algorithm, kept apart so a test can check each."""

    canonical_proof_config: str
    canonical_document: str

    @property
    def proof_config_hash(self) -> bytes:
        """SHA-256 of the canonical proof options."""
        return hashlib.sha256(self.canonical_proof_config.encode()).digest()

    @property
    def document_hash(self) -> bytes:
        """SHA-256 of the canonical document."""
        return hashlib.sha256(self.canonical_document.encode()).digest()

    @property
    def combined(self) -> bytes:
        """What is signed: the proof options' hash, then the document's."""
        return self.proof_config_hash + self.document_hash


def hash_data(
    unsecured: dict[str, Any],
    proof_config: dict[str, Any],
    *,
    contexts: dict[str, Any] | None = None,
) -> HashData:
    """Canonicalise proof options and document as the cryptosuite prescribes."""
    config = {key: value for key, value in proof_config.items() if key != "proofValue"}
    # The proof options are read in the document's context (section 3.3.5 of the suite).
    config["@context"] = unsecured.get("@context")
    return HashData(
        canonical_proof_config=canonical_nquads(config, contexts=contexts),
        canonical_document=canonical_nquads(unsecured, contexts=contexts),
    )


def _xsd_datetime(instant: datetime) -> str:
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def add_proof(
    document: dict[str, Any],
    *,
    private_key: Ed25519PrivateKey,
    verification_method: str,
    created: datetime,
    proof_purpose: str = "assertionMethod",
    contexts: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A copy of `document` secured with an `eddsa-rdfc-2022` DataIntegrityProof."""
    if "proof" in document:
        raise ProofError("The document already carries a proof.")
    proof: dict[str, Any] = {
        "type": PROOF_TYPE,
        "cryptosuite": CRYPTOSUITE,
        "created": _xsd_datetime(created),
        "verificationMethod": verification_method,
        "proofPurpose": proof_purpose,
    }
    data = hash_data(document, proof, contexts=contexts)
    proof["proofValue"] = "z" + base58btc_encode(private_key.sign(data.combined))
    secured = copy.deepcopy(document)
    secured["proof"] = proof
    return secured


@dataclass(frozen=True)
class Verification:
    """What checking a proof found: whether it holds, and the key it names."""

    verified: bool
    verification_method: str
    reason: str = ""


def verify_proof(
    secured: dict[str, Any],
    *,
    public_key_for: Any,
    expected_purpose: str = "assertionMethod",
    contexts: dict[str, Any] | None = None,
) -> Verification:
    """Check a document's single `eddsa-rdfc-2022` proof.

    `public_key_for(verification_method)` returns the Ed25519 public key the verifier
    trusts for that key id (or None): which keys to trust is the caller's decision.
    """
    proof = secured.get("proof")
    if not isinstance(proof, dict):
        return Verification(False, "", "The document carries no single proof.")
    method = str(proof.get("verificationMethod", ""))
    if proof.get("type") != PROOF_TYPE or proof.get("cryptosuite") != CRYPTOSUITE:
        return Verification(False, method, "The proof is not an eddsa-rdfc-2022 proof.")
    if proof.get("proofPurpose") != expected_purpose:
        return Verification(False, method, f"The proof's purpose is not {expected_purpose}.")
    if "@context" in proof and proof["@context"] != secured.get("@context"):
        return Verification(False, method, "The proof's context differs from the document's.")
    key = public_key_for(method)
    if key is None:
        return Verification(False, method, f"The key {method} is not one this issuer published.")
    unsecured = {name: value for name, value in secured.items() if name != "proof"}
    try:
        signature = multibase_decode(str(proof.get("proofValue", "")))
        data = hash_data(unsecured, proof, contexts=contexts)
        key.verify(signature, data.combined)
    except ProofError as exc:
        return Verification(False, method, str(exc))
    except InvalidSignature:
        return Verification(False, method, "The signature does not match the document.")
    return Verification(True, method)
