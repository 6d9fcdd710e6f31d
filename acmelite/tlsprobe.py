"""Where certificate chains come from: a live TLS endpoint, or PEM text.

:func:`fetch_chain` runs the handshake with verification off on purpose: the point is to
see what the server sends, and to judge it afterwards (``acmelite.diagnose``). Nothing is
sent after the handshake. Errors become :class:`NetworkError` with one line naming host,
port and cause. :func:`load_pem_chain` reads what ``kubectl get secret`` hands over.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import socket
import ssl

from cryptography import x509

from .errors import InvalidInput, NetworkError

__all__ = ["DEFAULT_PORT", "fetch_chain", "load_pem_chain", "split_host_port"]

DEFAULT_PORT = 443
_DER = 2  # _ssl.ENCODING_DER, for the private chain accessor of Python 3.10-3.12


def split_host_port(target: str, *, default_port: int = DEFAULT_PORT) -> tuple[str, int]:
    """``host``, ``host:port``, ``[v6]``, ``[v6]:port``, a bare IPv6 address, or an
    ``https://host[:port]/...`` URL (its path ignored) -> (host, port)."""
    text = target.strip()
    scheme, sep, rest = text.partition("://")
    if sep:
        if scheme.lower() != "https":
            raise InvalidInput(
                f"bad target {target!r}: only https:// URLs (or HOST[:PORT]) can be checked"
            )
        text = rest.split("/", 1)[0].split("?", 1)[0].rsplit("@", 1)[-1]
    host, port_text = text, ""
    if text.startswith("["):
        end = text.find("]")
        host, rest = text[1:end], text[end + 1 :]
        if end < 0 or (rest and not rest.startswith(":")):
            raise InvalidInput(f"bad target {target!r}: expected [IPv6] or [IPv6]:PORT")
        port_text = rest[1:]
        _require_ipv6(host, target)
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    elif text.count(":") > 1:
        _require_ipv6(text, target)
    if not host:
        raise InvalidInput(f"bad target {target!r}: no host")
    if not port_text and text.endswith(":"):
        raise InvalidInput(f"bad target {target!r}: empty port")
    if not port_text:
        return host, default_port
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise InvalidInput(f"bad target {target!r}: port must be a number from 1 to 65535")
    return host, int(port_text)


def _require_ipv6(host: str, target: str) -> None:
    try:
        ipaddress.IPv6Address(host)
    except ValueError:
        raise InvalidInput(f"bad target {target!r}: {host!r} is not an IPv6 address") from None


def fetch_chain(
    host: str, port: int = DEFAULT_PORT, *, sni: str | None, timeout: float = 10.0
) -> list[x509.Certificate]:
    """The certificates the server presents, leaf first, in the order it sent them.

    ``sni`` is sent as the TLS server name (an A-label; ``None`` sends none, as clients do
    for an IP address). The chain is collected even when it would not verify. On Python
    3.10-3.12 the whole chain comes from the private ``_sslobj.get_unverified_chain()``,
    public since 3.13; when neither exists only the leaf is returned.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    where = f"{host}:{port}" if ":" not in host else f"[{host}]:{port}"
    try:
        with (
            socket.create_connection((host, port), timeout=timeout) as raw,
            context.wrap_socket(raw, server_hostname=sni or None) as tls,
        ):
            ders = _presented_der(tls)
    except socket.gaierror as exc:
        raise NetworkError(f"cannot resolve {host}: {exc.strerror or exc}") from exc
    except ssl.SSLError as exc:
        reason = exc.reason or exc.strerror or str(exc)
        if reason in ("WRONG_VERSION_NUMBER", "HTTP_REQUEST", "UNEXPECTED_EOF_WHILE_READING"):
            raise NetworkError(
                f"{where} does not speak TLS ({reason}): is it a plain HTTP port?",
                code="not-tls",
            ) from exc
        raise NetworkError(f"TLS handshake with {where} failed: {reason}") from exc
    except TimeoutError as exc:
        raise NetworkError(f"{where}: no answer within {timeout:g} s") from exc
    except OSError as exc:
        raise NetworkError(f"cannot connect to {where}: {exc.strerror or exc}") from exc
    if not ders:
        raise NetworkError(f"{where} completed the handshake without sending a certificate")
    try:
        return [x509.load_der_x509_certificate(der) for der in ders]
    except ValueError as exc:
        raise NetworkError(f"{where} sent a certificate that cannot be parsed: {exc}") from exc


def _presented_der(tls: ssl.SSLSocket) -> list[bytes]:
    public = getattr(tls, "get_unverified_chain", None)  # Python >= 3.13
    if public is not None:
        return [bytes(der) for der in public() or []]
    private = getattr(getattr(tls, "_sslobj", None), "get_unverified_chain", None)
    if private is not None:
        return [bytes(cert.public_bytes(_DER)) for cert in private() or []]
    leaf = tls.getpeercert(binary_form=True)
    return [leaf] if leaf else []


def load_pem_chain(data: bytes, *, source: str = "input") -> list[x509.Certificate]:
    """Every certificate in PEM ``data``, in order; a single DER certificate is accepted too.

    Base64 of a PEM (a Kubernetes secret's ``data.tls.crt`` not yet decoded) is decoded
    first. Raises :class:`InvalidInput` naming ``source`` when there is no certificate.
    """
    text = data.strip()
    if text and b"-----BEGIN" not in text:
        try:
            decoded = base64.b64decode(b"".join(text.split()), validate=True)
        except (binascii.Error, ValueError):
            decoded = b""
        if b"-----BEGIN" in decoded:
            text = decoded.strip()
    if b"-----BEGIN CERTIFICATE-----" in text:
        try:
            return x509.load_pem_x509_certificates(text)
        except ValueError as exc:
            raise InvalidInput(f"{source}: a PEM certificate cannot be parsed: {exc}") from exc
    if data.startswith(b"\x30"):
        try:
            return [x509.load_der_x509_certificate(data)]
        except ValueError:
            pass
    what = "a private key" if b"PRIVATE KEY-----" in text else "no certificate"
    raise InvalidInput(
        f"{source}: expected PEM certificates (-----BEGIN CERTIFICATE-----), found {what}"
    )
