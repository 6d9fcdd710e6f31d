"""Does a presented chain lead to a trust anchor, and if not, why not (RFC 5280 §6)?

Theory of operation: we first walk the chain ourselves, from the leaf, choosing at each
step a certificate (sent by the server, or from the bundle) whose subject is the current
issuer *and* whose key verifies the signature. The walk ends in one of: a bundle
certificate (a path exists), a self-signed certificate not in the bundle (``self-signed``
for the leaf, ``untrusted-root`` above it), or an issuer found nowhere. An issuer found
nowhere right above the leaf is reported as ``missing-intermediate`` (the server sent the
leaf alone); above a sent CA certificate, as ``untrusted-root``: from the outside the two
look alike, and this is the likelier reading of each. Only when a path exists do we check
each certificate's validity window (``expired``, ``not-yet-valid``), and last run
cryptography's path validation (``cryptography.x509.verification``, cryptography >= 42)
for everything else (``invalid``, with its message). The walk exists because that
validator says only that no path was found, not why.
"""

from __future__ import annotations

import datetime as dt
import enum
import os
import re
import ssl
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.utils import CryptographyDeprecationWarning
from cryptography.x509 import verification

from .errors import InvalidInput

__all__ = [
    "ChainCheck",
    "ChainVerdict",
    "certificate_problem",
    "check_chain",
    "dn",
    "load_ca_bundle",
]

_MAX_DEPTH = 8
_SHA256 = hashes.SHA256()
_PEM_BLOCK = re.compile(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.DOTALL)


class ChainVerdict(str, enum.Enum):
    """The chain verdict; the value is what ``--json`` prints."""

    OK = "ok"
    UNTRUSTED_ROOT = "untrusted-root"
    MISSING_INTERMEDIATE = "missing-intermediate"
    SELF_SIGNED = "self-signed"
    EXPIRED = "expired"
    NOT_YET_VALID = "not-yet-valid"
    INVALID = "invalid"


@dataclass(frozen=True, slots=True, kw_only=True)
class ChainCheck:
    """The chain verdict, one sentence on it, and the trust anchor reached (if any)."""

    verdict: ChainVerdict
    detail: str
    anchor: str | None = None

    @property
    def ok(self) -> bool:
        return self.verdict is ChainVerdict.OK

    def to_json(self) -> dict[str, object]:
        return {"verdict": self.verdict.value, "detail": self.detail, "anchor": self.anchor}


def load_ca_bundle(path: str | os.PathLike[str] | None = None) -> list[x509.Certificate]:
    """The trust anchors in a PEM bundle; None means the system's default bundle."""
    if path is not None:
        return _read_bundle(Path(path))
    paths = ssl.get_default_verify_paths()
    for candidate in (paths.cafile, paths.openssl_cafile):
        if candidate and Path(candidate).is_file():
            return _read_bundle(Path(candidate))
    for folder in (paths.capath, paths.openssl_capath):
        if folder and Path(folder).is_dir():
            found: dict[bytes, x509.Certificate] = {}
            for entry in sorted(Path(folder).iterdir()):
                if entry.is_file() and entry.suffix in (".pem", ".crt", ".0", ""):
                    for cert in _read_bundle(entry, strict=False):
                        found.setdefault(cert.fingerprint(_SHA256), cert)
            if found:
                return list(found.values())
    raise InvalidInput("no system CA bundle found: pass one with --ca-bundle PATH")


def _read_bundle(path: Path, *, strict: bool = True) -> list[x509.Certificate]:
    """Every parsable certificate in a PEM bundle; one odd anchor must not hide the rest."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        if not strict:
            return []
        raise InvalidInput(f"cannot read CA bundle {path}: {exc.strerror or exc}") from exc
    blocks = _PEM_BLOCK.findall(data)
    certs = []
    with warnings.catch_warnings():
        # System bundles carry a few old roots that cryptography warns about (a negative
        # serial number, say); they are still anchors.
        warnings.simplefilter("ignore", CryptographyDeprecationWarning)
        for block in blocks:
            try:
                certs.append(x509.load_pem_x509_certificate(block))
            except ValueError:
                continue
    if certs or not strict:
        return certs
    found = f"none of its {len(blocks)} can be parsed" if blocks else "found none"
    raise InvalidInput(
        f"CA bundle {path}: expected PEM certificates (-----BEGIN CERTIFICATE-----), {found}"
    )


def check_chain(
    chain: Sequence[x509.Certificate],
    anchors: Sequence[x509.Certificate],
    *,
    now: dt.datetime,
) -> ChainCheck:
    """The chain verdict for ``chain`` (leaf first) against ``anchors``; see the module doc.

    A certificate cryptography cannot fully parse (a malformed extension, an unknown key) is
    the verdict ``invalid``, never an exception.
    """
    for position, cert in enumerate(chain):
        problem = certificate_problem(cert)
        if problem:
            where = "" if position == 0 else f" in its chain (number {position + 1})"
            return ChainCheck(
                verdict=ChainVerdict.INVALID,
                detail=f"the server presents an invalid certificate{where}: {problem}",
            )
    leaf, sent = chain[0], list(chain[1:])
    anchor_ders = {c.fingerprint(_SHA256) for c in anchors}
    if leaf.fingerprint(_SHA256) in anchor_ders:
        return ChainCheck(
            verdict=ChainVerdict.OK,
            detail="trusted directly: the certificate itself is in the CA bundle",
            anchor=dn(leaf.subject),
        )
    path = [leaf]
    anchor: x509.Certificate | None = None
    while anchor is None:
        current = path[-1]
        anchor = _find_issuer(current, anchors)
        if anchor is not None:
            break
        if _self_signed(current):
            if current is leaf:
                return ChainCheck(
                    verdict=ChainVerdict.SELF_SIGNED,
                    detail="the certificate is self-signed and is not in the CA bundle",
                )
            return ChainCheck(
                verdict=ChainVerdict.UNTRUSTED_ROOT,
                detail=f"the chain ends at the root {dn(current.subject)}, which is not "
                "in the CA bundle (pass its PEM with --ca-bundle if it is your private CA)",
            )
        issuer = _find_issuer(current, [c for c in sent if c not in path])
        if issuer is None or len(path) >= _MAX_DEPTH:
            return _dead_end(current, is_leaf=current is leaf, sent=sent)
        path.append(issuer)
    return _check_path([*path, anchor], now=now, anchors=anchors)


def _dead_end(
    current: x509.Certificate, *, is_leaf: bool, sent: Sequence[x509.Certificate]
) -> ChainCheck:
    issuer = dn(current.issuer)
    if any(c.subject == current.issuer for c in sent):
        return ChainCheck(
            verdict=ChainVerdict.INVALID,
            detail=f"the server sent a certificate for {issuer}, but its key did not sign "
            f"{dn(current.subject)}: a wrong or outdated intermediate",
        )
    if is_leaf:
        return ChainCheck(
            verdict=ChainVerdict.MISSING_INTERMEDIATE,
            detail=f"the server sent only the leaf, and its issuer {issuer} is not in the CA "
            "bundle: serve the full chain (fullchain.pem); if the issuer is your private "
            "CA, pass its root with --ca-bundle",
        )
    return ChainCheck(
        verdict=ChainVerdict.UNTRUSTED_ROOT,
        detail=f"the chain ends at {dn(current.subject)}, issued by {issuer}, which is not in "
        "the CA bundle (pass that root with --ca-bundle if it is your private CA)",
    )


def _check_path(
    path: Sequence[x509.Certificate], *, now: dt.datetime, anchors: Sequence[x509.Certificate]
) -> ChainCheck:
    root = dn(path[-1].subject)
    for position, cert in enumerate(path):
        role = "the certificate" if position == 0 else f"the chain's {dn(cert.subject)}"
        if now > cert.not_valid_after_utc:
            day = cert.not_valid_after_utc.strftime("%Y-%m-%d")
            return ChainCheck(
                verdict=ChainVerdict.EXPIRED, detail=f"{role} expired on {day}", anchor=root
            )
        if now < cert.not_valid_before_utc:
            day = cert.not_valid_before_utc.strftime("%Y-%m-%d")
            return ChainCheck(
                verdict=ChainVerdict.NOT_YET_VALID,
                detail=f"{role} is not valid before {day}",
                anchor=root,
            )
    problem = _policy_problem(path, anchors, now=now)
    if problem:
        return ChainCheck(verdict=ChainVerdict.INVALID, detail=problem, anchor=root)
    return ChainCheck(verdict=ChainVerdict.OK, detail=f"verifies to {root}", anchor=root)


def _policy_problem(
    path: Sequence[x509.Certificate], anchors: Sequence[x509.Certificate], *, now: dt.datetime
) -> str:
    """cryptography's RFC 5280 path validation of the path we found; "" when it passes."""
    leaf = path[0]
    subjects = _probe_subjects(leaf)
    if not subjects:
        return "the certificate has no subjectAltName, which TLS clients require"
    builder = verification.PolicyBuilder().store(verification.Store(list(anchors))).time(now)
    problem = ""
    for subject in subjects:
        try:
            builder.build_server_verifier(subject).verify(leaf, list(path[1:-1]))
        except verification.VerificationError as exc:
            return f"path validation failed: {exc}"
        except ValueError as exc:  # a SAN the validator cannot take as a server name
            problem = f"path validation refused the SAN {subject.value}: {exc}"
            continue
        return ""
    return problem


def _probe_subjects(leaf: x509.Certificate) -> list[verification.Subject]:
    """Names the leaf covers, so the validator judges the path and not the name."""
    try:
        ext = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    subjects: list[verification.Subject] = []
    for dns in ext.get_values_for_type(x509.DNSName):
        subjects.append(x509.DNSName("probe" + dns[1:] if dns.startswith("*.") else dns))
    subjects += [x509.IPAddress(ip) for ip in ext.get_values_for_type(x509.IPAddress)]
    return subjects


def _find_issuer(
    cert: x509.Certificate, candidates: Sequence[x509.Certificate]
) -> x509.Certificate | None:
    for candidate in candidates:
        if candidate.subject != cert.issuer:
            continue
        try:
            cert.verify_directly_issued_by(candidate)
        except (ValueError, TypeError, InvalidSignature):
            continue
        return candidate
    return None


def _self_signed(cert: x509.Certificate) -> bool:
    return cert.subject == cert.issuer and _find_issuer(cert, [cert]) is not None


def certificate_problem(cert: x509.Certificate) -> str:
    """Why ``cert`` cannot be judged — its extensions, names or key do not parse; "" if fine.

    cryptography parses these lazily, so a certificate that loaded may still raise here.
    """
    parts: tuple[tuple[str, Callable[[], object]], ...] = (
        ("its extensions", lambda: cert.extensions),
        ("its subject", lambda: dn(cert.subject)),
        ("its issuer", lambda: dn(cert.issuer)),
        ("its public key", cert.public_key),
    )
    for what, parse in parts:
        try:
            parse()
        except (ValueError, UnsupportedAlgorithm) as exc:
            reason = " ".join(str(exc).split())[:200] or type(exc).__name__
            return f"{what} cannot be parsed ({reason})"
    return ""


def dn(name: x509.Name) -> str:
    """RFC 4514 text of a distinguished name."""
    return name.rfc4514_string() or "(empty name)"
