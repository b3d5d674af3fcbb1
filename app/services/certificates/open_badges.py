"""Open Badges 3.0: each certificate as a signed `OpenBadgeCredential`, and the revocation list.

Credentials are secured as JWTs (the VC-JWT format of Open Badges 3.0, section 8.2): the
payload is the credential itself with `iss`, `nbf` and `jti`, signed with the issuer's Ed25519
key (`EdDSA`). The public key is published as a JSON Web Key Set at
`/.well-known/jwks.json`, so anyone can check a badge with it alone. Revocation is a W3C
Bitstring Status List, also signed, whose bit `i` is the certificate with status index `i`.
"""

import base64
import gzip
import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_pem_private_key,
)

VC_CONTEXT = "https://www.w3.org/ns/credentials/v2"
OB_CONTEXT = "https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.3.json"
ALGORITHM = "EdDSA"
# The W3C recommends at least 16 KB of bits, so one list hides which credential is looked up.
STATUS_LIST_MIN_BITS = 131_072
JWKS_PATH = "/.well-known/jwks.json"
ISSUER_PATH = "/ob/issuer"
STATUS_LIST_PATH = "/ob/status/revocation"
ACHIEVEMENT_PATH = "/ob/achievements"
CRITERIA = (
    "Attended every session of the course's five modules in person (an excused absence does "
    "not count as attendance), presented a final work that the tutors accepted, and had the "
    "registration fee paid in full or waived."
)


@dataclass(frozen=True)
class Issuer:
    """Who awards the badges: name, public address, and the signing key in PEM."""

    name: str
    base_url: str
    private_key_pem: str

    @property
    def id(self) -> str:
        """The issuer profile's address, which is also the `iss` of every badge."""
        return self.url(ISSUER_PATH)

    def url(self, path: str) -> str:
        """An absolute address on the public site."""
        return self.base_url.rstrip("/") + path


@dataclass(frozen=True)
class BadgeFacts:
    """What one credential states, as plain values."""

    number: str
    version: int
    status_index: int
    email: str
    edition_slug: str
    course: str
    edition_label: str
    place: str
    dates: str
    issued_at: datetime
    verification_url: str


@lru_cache(maxsize=4)
def _private_key(pem: str) -> Ed25519PrivateKey:
    key = load_pem_private_key(pem.strip().encode(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError("The Open Badges key must be an Ed25519 private key.")
    return key


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def public_jwk(issuer: Issuer) -> dict[str, str]:
    """The public key as a JWK, with its RFC 7638 thumbprint as `kid`."""
    raw = (
        _private_key(issuer.private_key_pem)
        .public_key()
        .public_bytes(Encoding.Raw, PublicFormat.Raw)
    )
    x = _b64url(raw)
    canonical = json.dumps({"crv": "Ed25519", "kty": "OKP", "x": x}, separators=(",", ":"))
    thumbprint = _b64url(hashlib.sha256(canonical.encode()).digest())
    return {"kty": "OKP", "crv": "Ed25519", "x": x, "kid": thumbprint, "use": "sig", "alg": "EdDSA"}


def jwks(issuer: Issuer) -> dict[str, list[dict[str, str]]]:
    """The JSON Web Key Set published at the well-known address."""
    return {"keys": [public_jwk(issuer)]}


def key_id(issuer: Issuer) -> str:
    """The `kid` of every JWT: the key's entry in the published key set."""
    return f"{issuer.url(JWKS_PATH)}#{public_jwk(issuer)['kid']}"


def issuer_profile(issuer: Issuer) -> dict[str, Any]:
    """The issuer's Open Badges profile."""
    return {
        "@context": [VC_CONTEXT, OB_CONTEXT],
        "id": issuer.id,
        "type": ["Profile"],
        "name": issuer.name,
        "url": issuer.base_url.rstrip("/") + "/",
    }


def _issuer_reference(issuer: Issuer) -> dict[str, Any]:
    return {"id": issuer.id, "type": ["Profile"], "name": issuer.name}


def identity_hash(email: str, salt: str) -> str:
    """`sha256$` and the hex digest of the e-mail address followed by the salt (OB 3.0)."""
    digest = hashlib.sha256((email.strip().lower() + salt).encode()).hexdigest()
    return f"sha256${digest}"


def achievement(issuer: Issuer, facts: BadgeFacts) -> dict[str, Any]:
    """What was achieved: the course's edition, with its criteria."""
    edition = f", {facts.edition_label}" if facts.edition_label else ""
    return {
        "id": issuer.url(f"{ACHIEVEMENT_PATH}/{facts.edition_slug}"),
        "type": ["Achievement"],
        "achievementType": "Certificate",
        "name": f"{facts.course}{edition}",
        "description": (
            f"Completion of the {facts.course}{edition}, held in {facts.place}, {facts.dates}."
        ),
        "criteria": {"narrative": CRITERIA},
        "creator": _issuer_reference(issuer),
        "inLanguage": "en",
    }


def _iso(instant: datetime) -> str:
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def credential(issuer: Issuer, facts: BadgeFacts) -> dict[str, Any]:
    """The OpenBadgeCredential of one certificate version (no name: an identity hash instead)."""
    # The salt is public in the credential; it only has to differ between credentials so one
    # precomputed table cannot reverse every identity hash.
    salt = facts.number.replace("-", "")
    status_url = issuer.url(STATUS_LIST_PATH)
    # One identifier per certificate version, the same every time the badge is downloaded.
    credential_id = uuid.uuid5(uuid.NAMESPACE_URL, f"{facts.verification_url}#v{facts.version}")
    return {
        "@context": [VC_CONTEXT, OB_CONTEXT],
        "id": f"urn:uuid:{credential_id}",
        "type": ["VerifiableCredential", "OpenBadgeCredential"],
        "name": f"{facts.course}: certificate of completion",
        "issuer": _issuer_reference(issuer),
        "validFrom": _iso(facts.issued_at),
        "credentialSubject": {
            "type": ["AchievementSubject"],
            "identifier": [
                {
                    "type": "IdentityObject",
                    "identityHash": identity_hash(facts.email, salt),
                    "identityType": "emailAddress",
                    "hashed": True,
                    "salt": salt,
                }
            ],
            "achievement": achievement(issuer, facts),
        },
        "credentialStatus": {
            "id": f"{status_url}#{facts.status_index}",
            "type": "BitstringStatusListEntry",
            "statusPurpose": "revocation",
            "statusListIndex": str(facts.status_index),
            "statusListCredential": status_url,
        },
        "evidence": [
            {
                "id": facts.verification_url,
                "type": ["Evidence"],
                "name": f"Certificate {facts.number}",
                "description": "The certificate's public verification page.",
            }
        ],
    }


def sign(issuer: Issuer, payload: dict[str, Any]) -> str:
    """The credential as a compact JWS: its members with `iss`, `nbf` and `jti` claims."""
    claims = dict(payload)
    claims["iss"] = issuer.id
    claims["nbf"] = int(datetime.fromisoformat(payload["validFrom"]).timestamp())
    claims["jti"] = payload["id"]
    token: str = jwt.encode(
        claims,
        _private_key(issuer.private_key_pem),
        algorithm=ALGORITHM,
        headers={"kid": key_id(issuer), "typ": "JWT"},
    )
    return token


def badge_jwt(issuer: Issuer, facts: BadgeFacts) -> str:
    """The signed Open Badges 3.0 credential of one certificate."""
    return sign(issuer, credential(issuer, facts))


def encoded_list(revoked: set[int], *, size: int) -> str:
    """A Bitstring Status List `encodedList`: bit i (left-most first) set when i is revoked.

    Multibase base64url (prefix `u`) of the GZIP-compressed bitstring.
    """
    bits = bytearray(size // 8)
    for index in revoked:
        bits[index // 8] |= 0x80 >> (index % 8)
    # mtime=0 keeps the list byte-for-byte the same while nothing changes.
    return "u" + _b64url(gzip.compress(bytes(bits), mtime=0))


def list_size(highest_index: int) -> int:
    """Bits in the list: at least the W3C minimum, in whole bytes, room for every index."""
    needed = (highest_index // 8 + 1) * 8
    return max(STATUS_LIST_MIN_BITS, needed)


def status_list_credential(
    issuer: Issuer, *, revoked: set[int], highest_index: int, now: datetime
) -> dict[str, Any]:
    """The revocation list as a BitstringStatusListCredential."""
    url = issuer.url(STATUS_LIST_PATH)
    return {
        "@context": [VC_CONTEXT],
        "id": url,
        "type": ["VerifiableCredential", "BitstringStatusListCredential"],
        "issuer": _issuer_reference(issuer),
        "validFrom": _iso(now),
        "credentialSubject": {
            "id": f"{url}#list",
            "type": "BitstringStatusList",
            "statusPurpose": "revocation",
            "encodedList": encoded_list(revoked, size=list_size(highest_index)),
        },
    }


def is_set(encoded: str, index: int) -> bool:
    """Whether bit `index` of an `encodedList` is set (what a verifier checks)."""
    if not encoded.startswith("u"):
        raise ValueError("An encodedList is multibase base64url and starts with 'u'.")
    body = encoded[1:]
    bits = gzip.decompress(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    return bool(bits[index // 8] & (0x80 >> (index % 8)))
