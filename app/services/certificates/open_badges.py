"""Open Badges 3.0: each certificate as an `OpenBadgeCredential`, and the revocation list.

This module writes the documents; `credentials.py` secures them (a Data Integrity proof, or
the JWT form) with the issuer's keys. The issuer is a `did:web` identifier of the public
site, so a verifier finds its keys in the DID document the site publishes. Revocation is a
W3C Bitstring Status List whose bit `i` is the certificate with status index `i`.
"""

import base64
import gzip
import hashlib
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlsplit

VC_CONTEXT = "https://www.w3.org/ns/credentials/v2"
OB_CONTEXT = "https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.3.json"
# The W3C recommends at least 16 KB of bits, so one list hides which credential is looked up.
STATUS_LIST_MIN_BITS = 131_072
JWKS_PATH = "/.well-known/jwks.json"
DID_DOCUMENT_PATH = "/.well-known/did.json"
KEYS_PATH = "/ob/keys"
ISSUER_PATH = "/ob/issuer"
STATUS_LIST_PATH = "/ob/status/revocation"
ACHIEVEMENT_PATH = "/ob/achievements"
BADGE_IMAGE_PATH = "/static/img/course-badge.png"


@dataclass(frozen=True)
class Issuer:
    """Who awards the badges: name, public address, and the signing keys in PEM."""

    name: str
    base_url: str
    private_key_pem: str
    rsa_private_key_pem: str = ""
    # Keys used before a rotation, public halves only: still published so old badges verify.
    past_public_keys: tuple[str, ...] = field(default_factory=tuple)

    @property
    def did(self) -> str:
        """The issuer's `did:web` identifier, derived from the public address."""
        parts = urlsplit(self.base_url)
        # did:web percent-encodes the port's colon; a path becomes colon-separated segments.
        host = quote(parts.netloc, safe="")
        segments = [quote(s, safe="") for s in parts.path.strip("/").split("/") if s]
        return ":".join(["did:web", host, *segments])

    @property
    def did_document_url(self) -> str:
        """Where did:web resolution looks for the DID document."""
        path = urlsplit(self.base_url).path.strip("/")
        return self.url("/did.json" if path else DID_DOCUMENT_PATH)

    @property
    def id(self) -> str:
        """The identifier in every credential's `issuer`, and the `iss` of every JWT."""
        return self.did

    @property
    def profile_url(self) -> str:
        """The issuer's Open Badges profile on the public site."""
        return self.url(ISSUER_PATH)

    def url(self, path: str) -> str:
        """An absolute address on the public site."""
        return self.base_url.rstrip("/") + path


@dataclass(frozen=True)
class ModuleFacts:
    """One module of the edition, as the criteria name it."""

    position: int
    title: str
    sessions: int


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
    modules: tuple[ModuleFacts, ...] = ()
    attendance_min_percent: int = 100


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _sessions(count: int) -> str:
    return "1 session" if count == 1 else f"{count} sessions"


def criteria_narrative(modules: tuple[ModuleFacts, ...], attendance_min_percent: int) -> str:
    """The criteria in words, from the edition's own modules and attendance rule."""
    count = len(modules)
    listed = "; ".join(f"Lesson {m.position}, {m.title} ({_sessions(m.sessions)})" for m in modules)
    programme = (
        f"The edition's programme has {count} module{'s' if count != 1 else ''}: {listed}."
        if modules
        else "The edition's programme lists no modules yet."
    )
    if attendance_min_percent >= 100:
        attendance = "Present at every session of every module"
    else:
        attendance = (
            f"Present at no fewer than {attendance_min_percent} % of each module's sessions "
            "(rounded up to a whole session)"
        )
    return (
        f"{programme} {attendance}; an excused absence does not count as attendance. "
        "A final work presented and accepted by the tutors. "
        "The registration fee paid in full, or waived."
    )


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
    return {
        "id": issuer.id,
        "type": ["Profile"],
        "name": issuer.name,
        "url": issuer.base_url.rstrip("/") + "/",
    }


def identity_hash(email: str, salt: str) -> str:
    """`sha256$` and the hex digest of the e-mail address followed by the salt (OB 3.0)."""
    digest = hashlib.sha256((email.strip().lower() + salt).encode()).hexdigest()
    return f"sha256${digest}"


def achievement(issuer: Issuer, facts: BadgeFacts) -> dict[str, Any]:
    """What was achieved: the course's edition, with its criteria and image."""
    edition = f", {facts.edition_label}" if facts.edition_label else ""
    name = f"{facts.course}{edition}"
    return {
        "id": issuer.url(f"{ACHIEVEMENT_PATH}/{facts.edition_slug}"),
        "type": ["Achievement"],
        "achievementType": "Certificate",
        "name": name,
        "description": (
            f"Completion of the {facts.course}{edition}, held in {facts.place}, {facts.dates}."
        ),
        "criteria": {
            "id": issuer.url(f"/editions/{facts.edition_slug}"),
            "narrative": criteria_narrative(facts.modules, facts.attendance_min_percent),
        },
        "image": {
            "id": issuer.url(BADGE_IMAGE_PATH),
            "type": "Image",
            "caption": f"Badge of the {facts.course}",
        },
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
        "issuer": issuer.id,
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
