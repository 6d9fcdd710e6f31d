"""Certificate keys, CSRs (RFC 2986) and checks on issued certificates.

The CSR carries every name in subjectAltName (DNS and IP) and no extendedKeyUsage: some
CAs refuse a CSR that asks for client authentication, and all of them decide the usage.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID

from .errors import InvalidInput, ProtocolError
from .keys import PrivateKey, b64url
from .models import Identifier
from .trust import certificate_problem

__all__ = [
    "certificate_id",
    "certificate_names",
    "csr_identifiers",
    "load_csr",
    "make_csr",
    "public_keys_match",
    "split_pem_chain",
]


def make_csr(key: PrivateKey, identifiers: Sequence[Identifier]) -> x509.CertificateSigningRequest:
    """A CSR for ``identifiers``; the common name is the first DNS name that fits 64 chars."""
    sans: list[x509.GeneralName] = []
    for ident in identifiers:
        if ident.type == "ip":
            sans.append(x509.IPAddress(ipaddress.ip_address(ident.value)))
        else:
            sans.append(x509.DNSName(ident.value))
    if not sans:
        raise InvalidInput("a CSR needs at least one name")
    builder = x509.CertificateSigningRequestBuilder()
    common = next((i.value for i in identifiers if i.type == "dns" and len(i.value) <= 64), None)
    builder = builder.subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)] if common else [])
    )
    builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(key, hashes.SHA256())


def load_csr(data: bytes, *, source: str = "CSR") -> x509.CertificateSigningRequest:
    """A CSR from PEM or DER, with its signature checked."""
    try:
        if b"-----BEGIN" in data:
            csr = x509.load_pem_x509_csr(data)
        else:
            csr = x509.load_der_x509_csr(data)
    except ValueError:
        raise InvalidInput(f"{source}: not a PEM or DER certificate signing request") from None
    if not csr.is_signature_valid:
        raise InvalidInput(f"{source}: the CSR's signature does not verify")
    return csr


def csr_identifiers(csr: x509.CertificateSigningRequest) -> list[str]:
    """Every name a CSR asks for: SAN DNS names and IPs, else its common name."""
    names: list[str] = []
    try:
        ext = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        pass
    else:
        names += [str(n) for n in ext.value.get_values_for_type(x509.DNSName)]
        names += [str(ip) for ip in ext.value.get_values_for_type(x509.IPAddress)]
    if not names:
        names += [str(a.value) for a in csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    return names


def certificate_names(cert: x509.Certificate) -> list[str]:
    """The SAN DNS names and IP addresses of a certificate."""
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return []
    names = [str(n) for n in ext.value.get_values_for_type(x509.DNSName)]
    for ip in ext.value.get_values_for_type(x509.IPAddress):
        if isinstance(ip, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
            names.append(ip.compressed)
    return names


def _spki(obj: x509.Certificate | x509.CertificateSigningRequest | PrivateKey) -> bytes:
    public = obj.public_key()
    return public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def public_keys_match(
    a: x509.Certificate | x509.CertificateSigningRequest | PrivateKey,
    b: x509.Certificate | x509.CertificateSigningRequest | PrivateKey,
) -> bool:
    """True when both carry the same public key."""
    return _spki(a) == _spki(b)


_PEM_CERT = re.compile(rb"-----BEGIN CERTIFICATE-----[A-Za-z0-9+/=\s]*-----END CERTIFICATE-----")


def split_pem_chain(pem: bytes, *, source: str = "certificate") -> list[x509.Certificate]:
    """Parse a PEM chain (leaf first), refusing garbage and truncation."""
    marker = b"-----BEGIN CERTIFICATE-----"
    if marker not in pem:
        raise ProtocolError(f"{source}: no PEM certificate in the response")
    try:
        certs = x509.load_pem_x509_certificates(pem)
    except ValueError:
        raise ProtocolError(f"{source}: the PEM chain is truncated or corrupt") from None
    if len(certs) != pem.count(marker) or _PEM_CERT.sub(b"", pem).strip():
        # RFC 8555 §9.1: nothing but certificates; a cut-off "-----BEGIN CERT" is truncation.
        raise ProtocolError(f"{source}: the PEM chain is truncated or corrupt")
    for cert in certs:
        problem = certificate_problem(cert)
        if problem:
            raise ProtocolError(f"{source}: the CA sent an invalid certificate: {problem}")
    return certs


def certificate_id(cert: x509.Certificate) -> str:
    """RFC 9773 §4.1: base64url(AKI keyIdentifier) "." base64url(serial, DER content octets)."""
    try:
        aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    except x509.ExtensionNotFound:
        raise InvalidInput(
            "the certificate has no Authority Key Identifier (ARI needs it)"
        ) from None
    if aki.key_identifier is None:
        raise InvalidInput("the certificate's Authority Key Identifier has no keyIdentifier")
    serial = cert.serial_number
    der = serial.to_bytes((serial.bit_length() + 8) // 8, "big", signed=True)
    return f"{b64url(aki.key_identifier)}.{b64url(der)}"
