"""Why a certificate chain fails for a hostname, and which certificate would fix it.

The library side of ``acmelite check``: :func:`diagnose` takes a presented chain (from
:func:`acmelite.tlsprobe.fetch_chain`, or PEM via :func:`acmelite.tlsprobe.load_pem_chain`)
and a name, and returns a :class:`Report` with three independent verdicts:

* name: does a SAN cover the name (RFC 9525 §6.3, via :func:`acmelite.names.matches`)?
* validity: is the leaf inside its validity window, and for how long still?
* chain: does the chain lead to a trust anchor in the CA bundle (:mod:`acmelite.trust`)?

Nothing here does I/O except reading the CA bundle.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import shlex
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa

from .errors import InvalidInput
from .names import covering_sans, explain_miss, is_ip, is_wildcard, matches
from .trust import ChainCheck, ChainVerdict, certificate_problem, check_chain, dn, load_ca_bundle

__all__ = [
    "CertSummary",
    "ChainCheck",
    "ChainVerdict",
    "NameCheck",
    "NearMiss",
    "Report",
    "Validity",
    "check_name",
    "check_validity",
    "diagnose",
    "issue_command",
]

_SHA256 = hashes.SHA256()


@dataclass(frozen=True, slots=True, kw_only=True)
class CertSummary:
    """What a person wants to see of one certificate. ``serial`` and ``sha256`` are hex."""

    subject: str
    common_name: str
    issuer: str
    serial: str
    dns_sans: tuple[str, ...]
    ip_sans: tuple[str, ...]
    not_before: dt.datetime
    not_after: dt.datetime
    key_type: str
    key_size: int
    key_detail: str
    sha256: str
    is_ca: bool
    #: Why the certificate cannot be fully read (``trust.certificate_problem``); "" if it can.
    invalid: str = ""

    @classmethod
    def from_certificate(cls, cert: x509.Certificate) -> CertSummary:
        """The summary; a part that does not parse is left empty and named in ``invalid``."""
        invalid = certificate_problem(cert)
        dns: tuple[str, ...] = ()
        ips: tuple[str, ...] = ()
        is_ca = False
        cns: list[x509.NameAttribute[str | bytes]] = []
        key_type, key_size, key_detail = "unknown", 0, ""
        if not invalid:
            try:
                san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
                dns = tuple(san.get_values_for_type(x509.DNSName))
                ips = tuple(ip.compressed for ip in san.get_values_for_type(x509.IPAddress))
            except x509.ExtensionNotFound:
                pass
            with contextlib.suppress(x509.ExtensionNotFound):
                is_ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
            cns = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
            key_type, key_size, key_detail = _describe_key(cert.public_key())
        return cls(
            subject=_dn_or(cert, "subject"),
            common_name=str(cns[0].value) if cns else "",
            issuer=_dn_or(cert, "issuer"),
            serial=_hex_serial(cert.serial_number),
            dns_sans=dns,
            ip_sans=ips,
            not_before=cert.not_valid_before_utc,
            not_after=cert.not_valid_after_utc,
            key_type=key_type,
            key_size=key_size,
            key_detail=key_detail,
            sha256=cert.fingerprint(_SHA256).hex(),
            is_ca=is_ca,
            invalid=invalid,
        )

    def to_json(self) -> dict[str, object]:
        doc: dict[str, object] = {
            "subject": self.subject,
            "issuer": self.issuer,
            "serial": self.serial,
            "sans": {"dns": list(self.dns_sans), "ip": list(self.ip_sans)},
            "not_before": self.not_before.isoformat(),
            "not_after": self.not_after.isoformat(),
            "key": {"type": self.key_type, "size": self.key_size, "detail": self.key_detail},
            "sha256": self.sha256,
            "is_ca": self.is_ca,
        }
        if self.invalid:
            doc["invalid"] = self.invalid
        return doc


def _dn_or(cert: x509.Certificate, which: str) -> str:
    try:
        return dn(cert.subject if which == "subject" else cert.issuer)
    except ValueError:
        return f"(a {which} that cannot be parsed)"


def _hex_serial(number: int) -> str:
    text = f"{number:x}"
    return text if len(text) % 2 == 0 else "0" + text


def _describe_key(key: object) -> tuple[str, int, str]:
    if isinstance(key, rsa.RSAPublicKey):
        return "RSA", key.key_size, ""
    if isinstance(key, ec.EllipticCurvePublicKey):
        return "EC", key.curve.key_size, key.curve.name
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "Ed25519", 256, ""
    if isinstance(key, ed448.Ed448PublicKey):
        return "Ed448", 456, ""
    if isinstance(key, dsa.DSAPublicKey):
        return "DSA", key.key_size, ""
    return type(key).__name__, 0, ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Validity:
    """The leaf's validity window seen at ``now``; ``days_left`` < 0 once expired."""

    state: str  # "valid" | "expired" | "not-yet-valid"
    days_left: int
    expiring_soon: bool
    warn_days: int
    detail: str

    @property
    def ok(self) -> bool:
        return self.state == "valid"

    def to_json(self) -> dict[str, object]:
        return {
            "state": self.state,
            "days_left": self.days_left,
            "expiring_soon": self.expiring_soon,
            "warn_days": self.warn_days,
            "detail": self.detail,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class NearMiss:
    san: str
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class NameCheck:
    """Whether the leaf covers ``name`` (an A-label or an IP), and what would fix it."""

    name: str
    requested: str
    matched: bool
    matched_by: str | None
    near_misses: tuple[NearMiss, ...]
    fixing_sans: tuple[str, ...]
    note: str

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "requested": self.requested,
            "matched": self.matched,
            "matched_by": self.matched_by,
            "near_misses": [{"san": m.san, "reason": m.reason} for m in self.near_misses],
            "fixing_sans": list(self.fixing_sans),
            "note": self.note,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Report:
    """Everything ``acmelite check`` knows about one chain and one name."""

    leaf: CertSummary
    chain: tuple[CertSummary, ...]
    name_check: NameCheck
    validity: Validity
    chain_check: ChainCheck
    suggested_command: str | None

    @property
    def problems(self) -> tuple[str, ...]:
        """``name-mismatch``, ``validity``, ``trust``: the failures, in that order."""
        found = []
        if not self.name_check.matched and not self.leaf.invalid:
            found.append("name-mismatch")  # unknowable when the leaf's names do not parse
        time_verdicts = (ChainVerdict.EXPIRED, ChainVerdict.NOT_YET_VALID)
        if not self.validity.ok or self.chain_check.verdict in time_verdicts:
            found.append("validity")
        if not self.chain_check.ok and self.chain_check.verdict not in time_verdicts:
            found.append("trust")
        return tuple(found)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name_check.name,
            "ok": self.ok,
            "problems": list(self.problems),
            "certificate": self.leaf.to_json(),
            "chain": [c.to_json() for c in self.chain],
            "name_match": self.name_check.to_json(),
            "validity": self.validity.to_json(),
            "trust": self.chain_check.to_json(),
            "suggested_command": self.suggested_command,
        }


def diagnose(
    chain: Sequence[x509.Certificate],
    name: str,
    *,
    ca_bundle: str | os.PathLike[str] | Sequence[x509.Certificate] | None = None,
    now: dt.datetime | None = None,
    warn_days: int = 14,
) -> Report:
    """Judge ``chain`` (leaf first, as presented) for ``name``, a DNS name or an IP address.

    ``ca_bundle`` is a PEM file or already loaded certificates; None means the system
    bundle. Raises :class:`InvalidInput` for a bad name, an empty chain or an unusable bundle.
    """
    if not chain:
        raise InvalidInput("no certificate to check: the chain is empty")
    when = now or dt.datetime.now(dt.timezone.utc)
    if isinstance(ca_bundle, Sequence) and not isinstance(ca_bundle, str):
        anchors = list(ca_bundle)
    else:
        anchors = load_ca_bundle(ca_bundle)
    summaries = tuple(CertSummary.from_certificate(c) for c in chain)
    leaf = summaries[0]
    name_check = check_name(leaf, name)
    validity = check_validity(leaf, now=when, warn_days=warn_days)
    chain_check = check_chain(chain, anchors, now=when)
    command = None
    expired_chain = chain_check.verdict in (ChainVerdict.EXPIRED, ChainVerdict.NOT_YET_VALID)
    if not name_check.matched or not validity.ok or expired_chain:
        names = [*leaf.dns_sans, *leaf.ip_sans]
        if not name_check.matched:
            names.append(name_check.name)
        command = issue_command(names)
    return Report(
        leaf=leaf,
        chain=summaries,
        name_check=name_check,
        validity=validity,
        chain_check=chain_check,
        suggested_command=command,
    )


def issue_command(names: Sequence[str]) -> str:
    """An ``acmelite issue`` command line for ``names`` (dns-01 when a wildcard is among them)."""
    unique = list(dict.fromkeys(names))
    parts = ["acmelite", "issue"]
    for item in unique:
        parts += ["-d", shlex.quote(item)]
    if any(is_wildcard(n) for n in unique):
        parts += ["--challenge", "dns-01"]
    return " ".join(parts)


def check_name(leaf: CertSummary, name: str) -> NameCheck:
    """RFC 9525 §6.3 against the SANs of the right type; the subject CN is never used."""
    ip = is_ip(name)
    exact, wildcard = covering_sans(name)
    if leaf.invalid:
        return NameCheck(
            name=exact,
            requested=name.strip(),
            matched=False,
            matched_by=None,
            near_misses=(),
            fixing_sans=(exact,) if wildcard is None else (exact, wildcard),
            note=f"cannot tell: the certificate is invalid, {leaf.invalid}",
        )
    sans = leaf.ip_sans if ip else leaf.dns_sans
    winner = next((s for s in sans if matches(exact, s)), None)
    requested = name.strip()
    if winner is not None:
        return NameCheck(
            name=exact,
            requested=requested,
            matched=True,
            matched_by=winner,
            near_misses=(),
            fixing_sans=(),
            note="",
        )
    misses = []
    for san in (*leaf.dns_sans, *leaf.ip_sans):
        reason = explain_miss(exact, san)
        if reason is not None:
            misses.append(NearMiss(san=san, reason=reason))
    if ip and exact in leaf.dns_sans:
        misses.append(
            NearMiss(san=exact, reason=f"{exact} is a DNS SAN; an IP address needs an IP SAN")
        )
    return NameCheck(
        name=exact,
        requested=requested,
        matched=False,
        matched_by=None,
        near_misses=tuple(misses),
        fixing_sans=(exact,) if wildcard is None else (exact, wildcard),
        note=_miss_note(leaf, exact, has_near_miss=bool(misses)),
    )


def _miss_note(leaf: CertSummary, name: str, *, has_near_miss: bool) -> str:
    if not leaf.dns_sans and not leaf.ip_sans:
        return "the certificate has no subjectAltName at all; clients ignore the subject CN"
    if leaf.common_name and matches(name, leaf.common_name):
        return (
            f"the subject CN {leaf.common_name} would match, but clients check only the "
            "SANs (RFC 9525 §6.3): the name must be a SAN"
        )
    if not has_near_miss:
        return "none of the certificate's SANs is for this name or a name near it"
    return ""


def check_validity(leaf: CertSummary, *, now: dt.datetime, warn_days: int = 14) -> Validity:
    """RFC 5280 §4.1.2.5: valid from ``not_before`` through ``not_after``, inclusive."""
    left = leaf.not_after - now
    # Whole days, truncated toward zero: 0 in the last day, -3 three days after expiry.
    days_left = left.days if left >= dt.timedelta(0) else -(-left).days
    date = leaf.not_after.strftime("%Y-%m-%d %H:%M UTC")
    if now > leaf.not_after:
        state, detail = "expired", f"expired {_days(-days_left, 'ago')} ({date})"
    elif now < leaf.not_before:
        start = leaf.not_before.strftime("%Y-%m-%d %H:%M UTC")
        state, detail = "not-yet-valid", f"not valid before {start} (is the clock right?)"
    else:
        state, detail = "valid", f"expires {_days(days_left, 'in')} ({date})"
    soon = state == "valid" and left <= dt.timedelta(days=warn_days)
    if soon:
        detail += f", within the {warn_days}-day warning window: renew"
    return Validity(
        state=state, days_left=days_left, expiring_soon=soon, warn_days=warn_days, detail=detail
    )


def _days(count: int, word: str) -> str:
    if count == 0:
        return "in less than a day" if word == "in" else "less than a day ago"
    amount = f"{count} day{'s' if count != 1 else ''}"
    return f"in {amount}" if word == "in" else f"{amount} ago"
