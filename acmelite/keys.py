"""Account keys: generate, load, save; JWK, thumbprint (RFC 7638) and key authorization.

Keys are loaded with ``cryptography`` and wrapped explicitly in :class:`AccountKey`, so a
file that holds something other than an EC or RSA private key is refused with a clear
message instead of turning into an unexpected key type.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from josepy import jwa, jwk

from .constants import KEY_TYPES
from .errors import InvalidInput
from .storage import atomic_write, ensure_private_dir

__all__ = [
    "AccountKey",
    "PrivateKey",
    "b64url",
    "generate_private_key",
    "jwk_thumbprint",
    "load_private_key",
    "private_key_pem",
]

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey

#: Key types for account and certificate keys, by their CLI names.


def b64url(data: bytes) -> str:
    """Unpadded base64url (RFC 7515 §2)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def generate_private_key(key_type: str = "ec256") -> PrivateKey:
    """A new private key: ``ec256`` (default), ``ec384``, ``rsa2048``, ``rsa3072``, ``rsa4096``."""
    if key_type == "ec256":
        return ec.generate_private_key(ec.SECP256R1())
    if key_type == "ec384":
        return ec.generate_private_key(ec.SECP384R1())
    if key_type in ("rsa2048", "rsa3072", "rsa4096"):
        return rsa.generate_private_key(public_exponent=65537, key_size=int(key_type[3:]))
    raise InvalidInput(f"unknown key type {key_type!r}; choose one of {', '.join(KEY_TYPES)}")


def private_key_pem(key: PrivateKey) -> bytes:
    """PKCS#8 PEM, unencrypted (file permissions protect it)."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def load_private_key(data: bytes, *, source: str = "key") -> PrivateKey:
    """Load an EC (P-256, P-384, P-521) or RSA (>= 2048 bits) private key, PEM or DER."""
    key: object
    try:
        if b"-----BEGIN" in data:
            key = serialization.load_pem_private_key(data, password=None)
        else:
            key = serialization.load_der_private_key(data, password=None)
    except TypeError:
        raise InvalidInput(
            f"{source}: the key is encrypted; acmelite needs it unencrypted"
        ) from None
    except ValueError:
        raise InvalidInput(f"{source}: not a PEM or DER private key") from None
    if isinstance(key, rsa.RSAPrivateKey):
        if key.key_size < 2048:
            raise InvalidInput(f"{source}: RSA key of {key.key_size} bits; at least 2048 needed")
        return key
    if isinstance(key, ec.EllipticCurvePrivateKey):
        if key.curve.name not in ("secp256r1", "secp384r1", "secp521r1"):
            raise InvalidInput(f"{source}: EC curve {key.curve.name} is not supported by ACME CAs")
        return key
    raise InvalidInput(f"{source}: {type(key).__name__} keys are not supported; use EC or RSA")


def jwk_thumbprint(public_jwk: Mapping[str, str]) -> str:
    """RFC 7638 §3: SHA-256 over the required members, sorted, no white space; base64url."""
    required = ("e", "kty", "n") if public_jwk.get("kty") == "RSA" else ("crv", "kty", "x", "y")
    try:
        members = {k: public_jwk[k] for k in required}
    except KeyError as exc:
        raise InvalidInput(f"JWK lacks the member {exc.args[0]!r}") from None
    canonical = json.dumps(members, separators=(",", ":"), sort_keys=True)
    return b64url(hashlib.sha256(canonical.encode("ascii")).digest())


_EC_ALGS: dict[str, jwa.JWASignature] = {
    "secp256r1": jwa.ES256,
    "secp384r1": jwa.ES384,
    "secp521r1": jwa.ES512,
}


@dataclass(frozen=True, slots=True)
class AccountKey:
    """An ACME account key and what RFC 8555 derives from it.

    The JWS algorithm follows the key: ES256 for P-256, ES384 for P-384, RS256 for RSA.
    """

    key: PrivateKey

    @classmethod
    def generate(cls, key_type: str = "ec256") -> AccountKey:
        return cls(generate_private_key(key_type))

    @classmethod
    def from_pem(cls, data: bytes, *, source: str = "account key") -> AccountKey:
        return cls(load_private_key(data, source=source))

    @classmethod
    def load(cls, path: str | Path) -> AccountKey:
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise InvalidInput(f"cannot read account key {path}: {exc.strerror}") from None
        return cls.from_pem(data, source=f"account key {path}")

    def to_pem(self) -> bytes:
        return private_key_pem(self.key)

    def save(self, path: str | Path) -> None:
        """Write the key (PKCS#8 PEM) to ``path`` atomically, mode 0600 from the first byte,
        creating a missing directory 0700. Raises :class:`InvalidInput` when the path
        cannot be written."""
        target = Path(path)
        ensure_private_dir(target.parent)
        try:
            atomic_write(target, self.to_pem(), mode=0o600)
        except OSError as exc:
            raise InvalidInput(f"cannot write the account key {target}: {exc.strerror}") from None

    @property
    def alg(self) -> str:
        """The JWS ``alg`` for this key (RFC 7518 §3.1)."""
        name: str = self._jwa().name
        return name

    def _jwa(self) -> jwa.JWASignature:
        if isinstance(self.key, rsa.RSAPrivateKey):
            return jwa.RS256
        return _EC_ALGS[self.key.curve.name]

    def public_jwk(self) -> dict[str, str]:
        """The public key as a JWK (RFC 7517), for the ``jwk`` header and thumbprints."""
        wrapped: jwk.JWK = (
            jwk.JWKRSA(key=self.key)
            if isinstance(self.key, rsa.RSAPrivateKey)
            else jwk.JWKEC(key=self.key)
        )
        public: dict[str, str] = wrapped.public_key().to_partial_json()
        return {k: str(v) for k, v in public.items()}

    def thumbprint(self) -> str:
        """RFC 7638 JWK thumbprint (SHA-256), base64url."""
        return jwk_thumbprint(self.public_jwk())

    def key_authorization(self, token: str) -> str:
        """RFC 8555 §8.1: ``token || '.' || base64url(JWK thumbprint)``."""
        return f"{token}.{self.thumbprint()}"

    def sign(self, message: bytes) -> bytes:
        """The JWS signature of ``message`` (raw R||S for ECDSA, RFC 7518 §3.4)."""
        signature: bytes = self._jwa().sign(self.key, message)
        return signature

    def __repr__(self) -> str:
        return f"AccountKey(alg={self.alg}, thumbprint={self.thumbprint()})"
