"""What the tls-alpn-01 handshake carries (RFC 8737; RFC 8738 §6): the validation
certificate a server shows, and the SNI and ALPN a ClientHello asks for.

:func:`validation_certificate` is for any solver — the built-in server of
:mod:`acmelite.solvers.tlsalpn`, or one that hands the certificate to a server of yours;
:func:`parse_client_hello` reads the first TLS record (RFC 8446 §4.1.2, RFC 6066 §3,
RFC 7301 §3.1) so a server can refuse a handshake before it shows any certificate.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ..challenges import ChallengeTask
from ..models import Identifier

__all__ = [
    "ACME_IDENTIFIER_OID",
    "ACME_TLS_ALPN",
    "ClientHello",
    "parse_client_hello",
    "sni_name",
    "validation_certificate",
]

#: The ALPN protocol of the validation handshake (RFC 8737 §6.2).
ACME_TLS_ALPN = "acme-tls/1"
#: id-pe-acmeIdentifier (RFC 8737 §6.1).
ACME_IDENTIFIER_OID = x509.ObjectIdentifier("1.3.6.1.5.5.7.1.31")


def sni_name(identifier: Identifier) -> str:
    """The SNI the CA sends for ``identifier``: the name, or an address's reverse-DNS name
    (RFC 8738 §6), lower case without a trailing dot."""
    if identifier.type == "ip":
        return ipaddress.ip_address(identifier.value).reverse_pointer
    return identifier.value.rstrip(".").lower()


def validation_certificate(
    task: ChallengeTask, key: ec.EllipticCurvePrivateKey | None = None
) -> tuple[bytes, bytes]:
    """``(certificate PEM, key PEM)`` of the validation certificate for ``task`` (RFC 8737
    §3): self-signed, one subjectAltName (the DNS name or the IP address), the critical
    acmeIdentifier extension with SHA-256 of the key authorization."""
    key = key or ec.generate_private_key(ec.SECP256R1())
    ident = task.identifier
    san: x509.GeneralName
    if ident.type == "ip":
        san = x509.IPAddress(ipaddress.ip_address(ident.value))
    else:
        san = x509.DNSName(ident.value)
    now = dt.datetime.now(dt.timezone.utc)
    digest = task.key_authorization_digest
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([]))
        .issuer_name(x509.Name([]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=7))
        .add_extension(x509.SubjectAlternativeName([san]), critical=True)
        .add_extension(
            # Authorization ::= OCTET STRING (SIZE (32)), DER: 04 20 <digest>.
            x509.UnrecognizedExtension(ACME_IDENTIFIER_OID, bytes([4, len(digest)]) + digest),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


@dataclass(frozen=True, slots=True)
class ClientHello:
    """What a ClientHello asks for: the SNI host name ("" without one) and ALPN protocols."""

    server_name: str
    protocols: tuple[str, ...]


class _BadHello(ValueError):
    pass


def parse_client_hello(data: bytes) -> ClientHello:
    """SNI and ALPN of the TLS record ``data`` (one ClientHello, RFC 8446 §4.1.2); a
    :class:`ValueError` when it is none or does not fit in that one record."""
    reader = _Reader(data)
    if reader.take(1) != b"\x16" or reader.take(1) != b"\x03":
        raise _BadHello("not a TLS handshake record")
    reader.take(1)
    record = _Reader(reader.vector(2))
    if record.take(1) != b"\x01":
        raise _BadHello("not a ClientHello")
    length = int.from_bytes(record.take(3), "big")
    if length > len(record.rest):
        raise _BadHello("the ClientHello spans several records")
    hello = _Reader(record.take(length))
    hello.take(2 + 32)  # legacy_version, random
    hello.vector(1)  # legacy_session_id
    hello.vector(2)  # cipher_suites
    hello.vector(1)  # legacy_compression_methods
    server_name = ""
    protocols: tuple[str, ...] = ()
    if hello.rest:
        extensions = _Reader(hello.vector(2))
        while extensions.rest:
            kind = int.from_bytes(extensions.take(2), "big")
            body = _Reader(extensions.vector(2))
            if kind == 0:  # server_name (RFC 6066 §3)
                names = _Reader(body.vector(2))
                while names.rest and not server_name:
                    name_type = names.take(1)
                    name = names.vector(2)
                    if name_type == b"\x00":
                        server_name = name.decode("ascii", "replace").rstrip(".").lower()
            elif kind == 16:  # application_layer_protocol_negotiation (RFC 7301 §3.1)
                listed = _Reader(body.vector(2))
                found = []
                while listed.rest:
                    found.append(listed.vector(1).decode("ascii", "replace"))
                protocols = tuple(found)
    return ClientHello(server_name=server_name, protocols=protocols)


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.rest = data

    def take(self, count: int) -> bytes:
        if count > len(self.rest):
            raise _BadHello("truncated ClientHello")
        out, self.rest = self.rest[:count], self.rest[count:]
        return out

    def vector(self, length_bytes: int) -> bytes:
        return self.take(int.from_bytes(self.take(length_bytes), "big"))
