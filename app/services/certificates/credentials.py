"""The issuer's keys and the two ways a credential is secured: a Data Integrity proof and a JWT.

- JSON-LD with a `DataIntegrityProof` (`eddsa-rdfc-2022`), signed with the Ed25519 key whose
  Multikey is listed in the issuer's `did:web` document: what the Learner Credential Wallet
  and other Data Integrity verifiers check.
- A VC-JWT (Open Badges 3.0, section 8.2): the credential's members with `iss`, `nbf` and
  `jti`, signed RS256 (the specification's baseline) or EdDSA; its `kid` is an address that
  answers with that one JWK.

Keys are named by themselves (the Multikey for the DID, the RFC 7638 thumbprint for JWKs), so
adding a key never renames another, and the public halves of past keys stay published.
"""

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

import jwt
import segno
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_pem_private_key,
    load_pem_public_key,
)

from app.platform.i18n import gettext
from app.services.certificates import data_integrity
from app.services.certificates.jsonld_contexts import DID_V1, MULTIKEY_V1
from app.services.certificates.open_badges import KEYS_PATH, Issuer

JWT_ALGORITHMS = ("RS256", "EdDSA")
PublicKey = Ed25519PublicKey | RSAPublicKey


class UnreadableKey(ValueError):
    """A configured key cannot be read."""


@lru_cache(maxsize=8)
def _private_key(pem: str) -> Ed25519PrivateKey | RSAPrivateKey:
    key = load_pem_private_key(pem.strip().encode(), password=None)
    if not isinstance(key, Ed25519PrivateKey | RSAPrivateKey):
        raise UnreadableKey("An Open Badges key must be an Ed25519 or RSA private key.")
    return key


@lru_cache(maxsize=16)
def _public_key(pem: str) -> PublicKey:
    key = load_pem_public_key(pem.strip().encode())
    if not isinstance(key, Ed25519PublicKey | RSAPublicKey):
        raise UnreadableKey("A past Open Badges key must be an Ed25519 or RSA public key.")
    return key


def _b64url_uint(number: int) -> str:
    return jwt.utils.base64url_encode(
        number.to_bytes((number.bit_length() + 7) // 8, "big")
    ).decode()


def _jwk_members(key: PublicKey) -> dict[str, str]:
    if isinstance(key, Ed25519PublicKey):
        raw = key.public_bytes(Encoding.Raw, PublicFormat.Raw)
        return {"crv": "Ed25519", "kty": "OKP", "x": jwt.utils.base64url_encode(raw).decode()}
    numbers = key.public_numbers()
    return {"e": _b64url_uint(numbers.e), "kty": "RSA", "n": _b64url_uint(numbers.n)}


def thumbprint(key: PublicKey) -> str:
    """The RFC 7638 thumbprint: SHA-256 of the required members in lexical order."""
    canonical = json.dumps(_jwk_members(key), separators=(",", ":"), sort_keys=True)
    return jwt.utils.base64url_encode(hashlib.sha256(canonical.encode()).digest()).decode()


@dataclass(frozen=True)
class PublishedKey:
    """One public key the issuer publishes, and whether it still signs."""

    key: PublicKey
    current: bool

    @property
    def algorithm(self) -> str:
        """The JWS algorithm the key signs with."""
        return "EdDSA" if isinstance(self.key, Ed25519PublicKey) else "RS256"

    @property
    def kid(self) -> str:
        """The key's name among JWKs."""
        return thumbprint(self.key)

    def jwk(self) -> dict[str, str]:
        """The public key as a JWK (never the private part)."""
        return {**_jwk_members(self.key), "kid": self.kid, "use": "sig", "alg": self.algorithm}

    @property
    def multikey(self) -> str | None:
        """The Multikey of an Ed25519 key (what a DID document lists); None for RSA."""
        if isinstance(self.key, Ed25519PublicKey):
            return data_integrity.public_multikey(self.key)
        return None


def published_keys(issuer: Issuer) -> list[PublishedKey]:
    """Every key the issuer publishes: the signing keys first, then the ones retired."""
    keys = [PublishedKey(_private_key(issuer.private_key_pem).public_key(), current=True)]
    if issuer.rsa_private_key_pem.strip():
        keys.append(PublishedKey(_private_key(issuer.rsa_private_key_pem).public_key(), True))
    seen = {k.kid for k in keys}
    for pem in issuer.past_public_keys:
        past = PublishedKey(_public_key(pem), current=False)
        if past.kid not in seen:
            seen.add(past.kid)
            keys.append(past)
    return keys


def verification_method_id(issuer: Issuer, multikey: str) -> str:
    """A key's id in the DID document: the DID with the Multikey as fragment."""
    return f"{issuer.did}#{multikey}"


def did_document(issuer: Issuer) -> dict[str, Any]:
    """The issuer's DID document: every Ed25519 key, current and past, may assert credentials."""
    methods = [
        {
            "id": verification_method_id(issuer, key.multikey),
            "type": "Multikey",
            "controller": issuer.did,
            "publicKeyMultibase": key.multikey,
        }
        for key in published_keys(issuer)
        if key.multikey is not None
    ]
    return {
        "@context": [DID_V1, MULTIKEY_V1],
        "id": issuer.did,
        "alsoKnownAs": [issuer.profile_url],
        "verificationMethod": methods,
        "assertionMethod": [m["id"] for m in methods],
    }


def key_url(issuer: Issuer, kid: str) -> str:
    """The address that answers with one JWK: every JWT's `kid`."""
    return issuer.url(f"{KEYS_PATH}/{kid}")


def jwk(issuer: Issuer, kid: str) -> dict[str, str] | None:
    """The published JWK named `kid`, or None."""
    return next((k.jwk() for k in published_keys(issuer) if k.kid == kid), None)


def jwks(issuer: Issuer) -> dict[str, list[dict[str, str]]]:
    """Every published key as a JSON Web Key Set."""
    return {"keys": [k.jwk() for k in published_keys(issuer)]}


def secure(issuer: Issuer, document: dict[str, Any], *, now: datetime) -> dict[str, Any]:
    """The document with an eddsa-rdfc-2022 proof by the issuer's current Ed25519 key."""
    private = _private_key(issuer.private_key_pem)
    assert isinstance(private, Ed25519PrivateKey)
    multikey = data_integrity.public_multikey(private.public_key())
    return data_integrity.add_proof(
        document,
        private_key=private,
        verification_method=verification_method_id(issuer, multikey),
        created=now,
    )


def verify(issuer: Issuer, secured: dict[str, Any]) -> data_integrity.Verification:
    """Check a document's proof against the keys in the issuer's DID document."""
    by_method: dict[str, Ed25519PublicKey] = {}
    for key in published_keys(issuer):
        if key.multikey is not None and isinstance(key.key, Ed25519PublicKey):
            by_method[verification_method_id(issuer, key.multikey)] = key.key
    return data_integrity.verify_proof(secured, public_key_for=by_method.get)


def vc_jwt(issuer: Issuer, credential: dict[str, Any], *, algorithm: str = "RS256") -> str:
    """The credential as a compact JWS: its members with `iss`, `nbf` and `jti` claims."""
    if algorithm not in JWT_ALGORITHMS:
        raise ValueError(f"Credentials are signed with {' or '.join(JWT_ALGORITHMS)}.")
    pem = issuer.private_key_pem if algorithm == "EdDSA" else issuer.rsa_private_key_pem
    private = _private_key(pem)
    claims = dict(credential)
    claims["iss"] = issuer.id
    claims["nbf"] = int(datetime.fromisoformat(credential["validFrom"]).timestamp())
    claims["jti"] = credential["id"]
    token: str = jwt.encode(
        claims,
        private,
        algorithm=algorithm,
        headers={"kid": key_url(issuer, thumbprint(private.public_key())), "typ": "JWT"},
    )
    return token


@dataclass(frozen=True)
class WalletOffer:
    """What the portal offers a wallet: the credential's public address and its QR code (SVG)."""

    url: str
    qr_svg: str


def wallet_offer(base_url: str, number: str) -> WalletOffer:
    """The offer of certificate `number`'s credential to a wallet app."""
    url = f"{base_url}/api/v1/certificates/{number}/credential"
    svg: str = segno.make(url, error="m").svg_inline(
        scale=1,
        border=2,
        omitsize=True,
        title=gettext("QR code of your credential's address, for a wallet app"),
        svgclass="qr-code",
        lineclass="qr-line",
    )
    # A role and the <title> give screen readers a name for the picture.
    return WalletOffer(url=url, qr_svg=svg.replace("<svg ", '<svg role="img" ', 1))
