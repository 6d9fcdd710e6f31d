"""Is the new certificate what the live endpoint serves? Closing the loop after deployment.

:func:`verify_deployment` connects to the endpoint once per name (the name as SNI, as a
client would send it) and checks, for each, that:

* the served leaf *is* the new certificate: same serial number and same public key;
* the served chain verifies against the CA bundle (:func:`acmelite.trust.check_chain`);
* a SAN of the certificate covers the name (:func:`acmelite.diagnose.check_name`).

A server usually needs a moment to pick up new files (a reload, a rolling restart, a
Kubernetes Secret to propagate), so a name that is unreachable or still served another
certificate is tried again until ``timeout``. The report keeps, per name, what was served
last: "the server still presents serial X from <date>: reload missing?" is the answer to
the oldest complaint about renewals.
"""

from __future__ import annotations

import datetime as dt
import enum
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from .diagnose import CertSummary, check_name
from .errors import InvalidInput, NetworkError
from .names import covering_sans, is_ip, is_wildcard
from .tlsprobe import DEFAULT_PORT, fetch_chain
from .trust import ChainCheck, certificate_problem, check_chain, load_ca_bundle

__all__ = [
    "NameVerification",
    "VerifyReport",
    "VerifyStatus",
    "verify_deployment",
    "wildcard_probe",
]

#: The label put in front of a wildcard's base to make a server name to send as SNI.
PROBE_LABEL = "acmelite-verify"
#: The longest pause between two attempts at one name.
MAX_INTERVAL = 5.0


class VerifyStatus(str, enum.Enum):
    """One name's verdict; the value is what ``to_json`` gives."""

    OK = "ok"
    STALE = "stale"  # the endpoint serves another certificate
    UNTRUSTED = "untrusted-chain"  # the new certificate, but its chain does not verify
    NAME_MISMATCH = "name-mismatch"  # the new certificate, but no SAN covers the name
    UNREACHABLE = "unreachable"  # no TLS handshake at all


#: Verdicts that a reload still in progress explains, so worth another attempt.
_WAIT_FOR = frozenset({VerifyStatus.STALE, VerifyStatus.UNREACHABLE})


@dataclass(frozen=True, slots=True, kw_only=True)
class NameVerification:
    """What the endpoint served for one name, after ``attempts`` tries over ``seconds``."""

    name: str
    sni: str | None
    status: VerifyStatus
    detail: str
    served: CertSummary | None
    chain_check: ChainCheck | None
    attempts: int
    seconds: float

    @property
    def ok(self) -> bool:
        return self.status is VerifyStatus.OK

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "sni": self.sni,
            "ok": self.ok,
            "status": self.status.value,
            "detail": self.detail,
            "served": None if self.served is None else self.served.to_json(),
            "trust": None if self.chain_check is None else self.chain_check.to_json(),
            "attempts": self.attempts,
            "seconds": round(self.seconds, 3),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class VerifyReport:
    """The verdict for every name at ``host:port``, for the certificate ``expected``."""

    host: str
    port: int
    expected: CertSummary
    results: tuple[NameVerification, ...]

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.results)

    @property
    def where(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def to_json(self) -> dict[str, object]:
        return {
            "host": self.host,
            "port": self.port,
            "ok": self.ok,
            "expected": {"serial": self.expected.serial, "sha256": self.expected.sha256},
            "names": [r.to_json() for r in self.results],
        }


def wildcard_probe(name: str) -> str:
    """The server name sent for a wildcard: ``*.example.com`` -> ``acmelite-verify.example.com``."""
    return f"{PROBE_LABEL}.{name[2:]}" if is_wildcard(name) else name


def verify_deployment(
    certificate: x509.Certificate,
    names: Sequence[str],
    host: str,
    port: int = DEFAULT_PORT,
    *,
    ca_bundle: str | os.PathLike[str] | Sequence[x509.Certificate] | None = None,
    timeout: float = 30.0,
    poll_interval: float = 0.5,
    connect_timeout: float = 10.0,
) -> VerifyReport:
    """Check that ``host:port`` serves ``certificate`` for every name in ``names``.

    ``names`` are DNS names (a wildcard is probed with :func:`wildcard_probe`) or IP
    addresses (sent without SNI, as clients do). ``ca_bundle`` is a PEM file or loaded
    certificates; None means the system bundle. ``timeout`` bounds the whole run; each name
    is tried at least once. Raises :class:`InvalidInput` for a bad name or CA bundle; every
    network failure ends up in the report, never as an exception.
    """
    if not names:
        raise InvalidInput("nothing to verify: no names given")
    if timeout < 0 or poll_interval <= 0:
        raise InvalidInput("timeout must be >= 0 and poll_interval > 0")
    if isinstance(ca_bundle, Sequence) and not isinstance(ca_bundle, str):
        anchors = list(ca_bundle)
    else:
        anchors = load_ca_bundle(ca_bundle)
    for name in names:
        covering_sans(name)  # raises InvalidInput for a bad name, before any connection
    expected = _Expected(certificate)
    deadline = time.monotonic() + timeout
    results = tuple(
        _verify_name(
            expected,
            name,
            host,
            port,
            anchors=anchors,
            deadline=deadline,
            poll_interval=poll_interval,
            connect_timeout=connect_timeout,
        )
        for name in names
    )
    return VerifyReport(host=host, port=port, expected=expected.summary, results=results)


class _Expected:
    """The new certificate, and how to tell it apart: serial number and public key."""

    def __init__(self, cert: x509.Certificate) -> None:
        self.cert = cert
        self.summary = CertSummary.from_certificate(cert)
        self.spki = _spki(cert)

    def is_served_by(self, leaf: x509.Certificate) -> bool:
        if leaf.serial_number != self.cert.serial_number or certificate_problem(leaf):
            return False
        return _spki(leaf) == self.spki


def _spki(cert: x509.Certificate) -> bytes:
    return cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


# Theory of operation: one name at a time, all against one deadline. An attempt is one TLS
# handshake. Serving the new certificate settles the name: its chain and names are judged
# once, since waiting cannot change them. Anything else (no handshake, another certificate)
# may be a reload still in progress, so we sleep and try again, starting at poll_interval
# and growing by half each time up to MAX_INTERVAL, never sleeping past the deadline. Once
# the deadline has passed, each remaining name still gets its one attempt: the report must
# say something about every name, and after a slow first name the rest are usually ready.
def _verify_name(
    expected: _Expected,
    name: str,
    host: str,
    port: int,
    *,
    anchors: Sequence[x509.Certificate],
    deadline: float,
    poll_interval: float,
    connect_timeout: float,
) -> NameVerification:
    sni = None if is_ip(name) else wildcard_probe(name)
    started = time.monotonic()
    interval = poll_interval
    attempts = 0
    while True:
        attempts += 1
        remaining = deadline - time.monotonic()
        limit = min(connect_timeout, max(remaining, 1.0))
        verdict = _attempt(expected, name, host, port, sni=sni, anchors=anchors, limit=limit)
        if verdict.status not in _WAIT_FOR:
            break
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        time.sleep(min(interval, remaining))
        interval = min(interval * 1.5, MAX_INTERVAL)
    return NameVerification(
        name=name,
        sni=sni,
        status=verdict.status,
        detail=verdict.detail,
        served=verdict.served,
        chain_check=verdict.chain_check,
        attempts=attempts,
        seconds=time.monotonic() - started,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class _Verdict:
    status: VerifyStatus
    detail: str
    served: CertSummary | None = None
    chain_check: ChainCheck | None = None


def _attempt(
    expected: _Expected,
    name: str,
    host: str,
    port: int,
    *,
    sni: str | None,
    anchors: Sequence[x509.Certificate],
    limit: float,
) -> _Verdict:
    try:
        chain = fetch_chain(host, port, sni=sni, timeout=limit)
    except NetworkError as exc:
        return _Verdict(status=VerifyStatus.UNREACHABLE, detail=str(exc))
    served = CertSummary.from_certificate(chain[0])
    if served.invalid:
        return _Verdict(
            status=VerifyStatus.STALE,
            detail=f"the server presents an invalid certificate: {served.invalid} (the new"
            f" certificate is serial {expected.summary.serial})",
            served=served,
        )
    if not expected.is_served_by(chain[0]):
        since = served.not_before.strftime("%Y-%m-%d %H:%M UTC")
        return _Verdict(
            status=VerifyStatus.STALE,
            detail=f"the server still presents serial {served.serial} from {since}: reload"
            f" missing? (the new certificate is serial {expected.summary.serial})",
            served=served,
        )
    trust = check_chain(chain, anchors, now=dt.datetime.now(dt.timezone.utc))
    if not trust.ok:
        return _Verdict(
            status=VerifyStatus.UNTRUSTED,
            detail=f"the new certificate is served, but its chain fails: {trust.verdict.value}:"
            f" {trust.detail}",
            served=served,
            chain_check=trust,
        )
    name_check = check_name(served, name)
    if not name_check.matched:
        return _Verdict(
            status=VerifyStatus.NAME_MISMATCH,
            detail=f"the new certificate is served, but no SAN covers {name_check.name}",
            served=served,
            chain_check=trust,
        )
    return _Verdict(
        status=VerifyStatus.OK,
        detail=f"serves the new certificate, serial {served.serial}; {trust.detail}",
        served=served,
        chain_check=trust,
    )
