"""Flattened JWS for ACME requests (RFC 8555 §6.2, RFC 7515 §7.2.2).

Every request carries exactly one signature over ``{alg, nonce, url}`` plus either
``jwk`` (before the account exists, and for revocation by certificate key) or ``kid``
(the account URL). The external account binding (§7.3.4) and key-change (§7.3.5)
inner objects are JWS too, without nonce.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Mapping

from .errors import InvalidInput
from .keys import AccountKey, b64url

__all__ = ["eab_jws", "eab_mac_key", "sign_request", "signed_object"]

JsonObject = Mapping[str, object]

_HMAC = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}


def _encode(obj: object) -> str:
    return b64url(json.dumps(obj, separators=(",", ":")).encode("utf-8"))


def signed_object(key: AccountKey, protected: JsonObject, payload: object | None) -> dict[str, str]:
    """Sign ``payload`` (``None`` -> empty payload: POST-as-GET, RFC 8555 §6.3)."""
    header = {"alg": key.alg, **protected}
    protected_b64 = _encode(header)
    payload_b64 = "" if payload is None else _encode(payload)
    signature = key.sign(f"{protected_b64}.{payload_b64}".encode("ascii"))
    return {"protected": protected_b64, "payload": payload_b64, "signature": b64url(signature)}


def sign_request(
    key: AccountKey,
    *,
    url: str,
    nonce: str,
    payload: object | None,
    kid: str | None = None,
) -> bytes:
    """The body of one ACME POST: ``kid`` when the account URL is known, else ``jwk``."""
    protected: dict[str, object] = {"nonce": nonce, "url": url}
    if kid:
        protected["kid"] = kid
    else:
        protected["jwk"] = key.public_jwk()
    return json.dumps(signed_object(key, protected, payload)).encode("utf-8")


def eab_jws(
    account_key: AccountKey, *, kid: str, hmac_key_b64: str, url: str, alg: str = "HS256"
) -> dict[str, str]:
    """The ``externalAccountBinding`` object of newAccount (RFC 8555 §7.3.4).

    The payload is the account's public JWK, MAC-ed with the CA-issued key.
    """
    mac_key = eab_mac_key(hmac_key_b64, alg)
    digest = _HMAC[alg.upper()]
    protected_b64 = _encode({"alg": alg.upper(), "kid": kid, "url": url})
    payload_b64 = _encode(account_key.public_jwk())
    mac = hmac.new(mac_key, f"{protected_b64}.{payload_b64}".encode("ascii"), digest).digest()
    return {"protected": protected_b64, "payload": payload_b64, "signature": b64url(mac)}


def eab_mac_key(hmac_key_b64: str, alg: str) -> bytes:
    """The EAB MAC key, decoded, once it is fit for ``alg`` (else :class:`InvalidInput`)."""
    digest = _HMAC.get(alg.upper())
    if digest is None:
        raise InvalidInput(f"unknown EAB MAC algorithm {alg!r}; use HS256, HS384 or HS512")
    try:
        mac_key = _b64url_decode(hmac_key_b64)
    except ValueError:
        raise InvalidInput("the EAB HMAC key is not valid base64url") from None
    if not mac_key:
        raise InvalidInput("the EAB HMAC key is empty")
    # RFC 7518 §3.2: the key must be at least as long as the hash output; CAs check it.
    min_size = digest().digest_size
    if len(mac_key) < min_size:
        raise InvalidInput(
            f"the EAB HMAC key has {len(mac_key)} bytes, {alg.upper()} needs at least {min_size}"
            " (RFC 7518 §3.2)",
            code="eab-key-length",
        )
    return mac_key


def _b64url_decode(text: str) -> bytes:
    cleaned = text.strip()
    if any(c not in _B64URL_CHARS for c in cleaned.rstrip("=")):
        raise ValueError("not base64url")
    try:
        return base64.urlsafe_b64decode(cleaned + "=" * (-len(cleaned) % 4))
    except binascii.Error as exc:
        raise ValueError(str(exc)) from exc


_B64URL_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
