"""The inventory of a certificate tree: find the directories, describe each from its files.

:func:`discover` turns directories and roots into the list of certificate directories (a
directory below a root counts when it holds a ``renewal.json``); :func:`record` describes one
directory as a :class:`CertificateRecord` — names, issuer, serial, validity, the renewal
window and the moment picked in it, failures, back-off, a pending deploy hook — from its
files alone, through :meth:`ManagedCertificate.inspect` (its status and state): no request, no lock,
so ``acmelite list`` is fast and safe while a renewal runs. :func:`inventory` does it for
many.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.x509.oid import NameOID

from .config import CONFIG_FILE
from .errors import AcmeliteError
from .managed import ManagedCertificate
from .models import RenewalInfo
from .renewal import lifetime_window, now_utc

__all__ = ["CertificateRecord", "discover", "inventory", "record"]


def discover(
    dirs: Iterable[str | os.PathLike[str]] = (), roots: Iterable[str | os.PathLike[str]] = ()
) -> list[Path]:
    """``dirs`` and every directory below each of ``roots`` that holds a ``renewal.json``,
    absolute, each once, in the order found (hidden directories are not searched)."""
    found = [Path(os.path.abspath(d)) for d in dirs]
    for root in roots:
        for here, subdirs, files in os.walk(root):
            subdirs[:] = sorted(s for s in subdirs if not s.startswith("."))
            if CONFIG_FILE in files:
                found.append(Path(os.path.abspath(here)))
    return list(dict.fromkeys(found))


# -- the inventory ------------------------------------------------------------------------------


def _iso(value: dt.datetime | None) -> str | None:
    return None if value is None else value.isoformat()


@dataclass(frozen=True, slots=True, kw_only=True)
class CertificateRecord:
    """One certificate directory as its files describe it (see :func:`record`).

    ``status`` is ``due``, ``not-due`` or ``backing-off`` (what a renewal would do with the
    stored ARI answer), or ``unreadable`` (``error`` says why: no usable ``renewal.json``).
    ``common_name`` is the subject's CN, else the first name (ACME CAs may leave it out).
    ``window`` is the ARI window (``window_source`` ``"ari"``) or, without one, the window
    of the lifetime rule (``"lifetime"``); ``renew_at`` the moment picked in it.
    """

    path: Path
    status: str
    reason: str = ""
    names: tuple[str, ...] = ()
    server: str = ""
    profile: str | None = None
    common_name: str = ""
    issuer: str = ""
    serial: str | None = None
    not_before: dt.datetime | None = None
    not_after: dt.datetime | None = None
    window: RenewalInfo | None = None
    window_source: str = ""
    renew_at: dt.datetime | None = None
    next_check: dt.datetime | None = None
    last_renewal: dt.datetime | None = None
    failures: int = 0
    last_error: str = ""
    next_attempt: dt.datetime | None = None
    deploy_pending: bool = False
    error: str = ""

    def expires_within(self, days: float, *, now: dt.datetime) -> bool:
        """True when the certificate expires in less than ``days`` (or none is readable)."""
        return self.not_after is None or self.not_after - now < dt.timedelta(days=days)

    def to_json(self) -> dict[str, object]:
        window = None
        if self.window is not None:
            window = {
                "start": _iso(self.window.start),
                "end": _iso(self.window.end),
                "source": self.window_source,
                "explanation_url": self.window.explanation_url or None,
            }
        return {
            "dir": str(self.path),
            "status": self.status,
            "reason": self.reason,
            "names": list(self.names),
            "server": self.server or None,
            "profile": self.profile,
            "common_name": self.common_name or None,
            "issuer": self.issuer or None,
            "serial": self.serial,
            "not_before": _iso(self.not_before),
            "not_after": _iso(self.not_after),
            "renewal_window": window,
            "renew_at": _iso(self.renew_at),
            "next_check": _iso(self.next_check),
            "last_renewal": _iso(self.last_renewal),
            "failures": self.failures,
            "last_error": self.last_error or None,
            "next_attempt": _iso(self.next_attempt),
            "deploy_pending": self.deploy_pending,
            "error": self.error or None,
        }


def _common_name(cert: x509.Certificate) -> str:
    for attr in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME):
        return str(attr.value)
    return ""


def _name_attribute(name: x509.Name) -> str:
    for attr in name.get_attributes_for_oid(NameOID.COMMON_NAME):
        return str(attr.value)
    return name.rfc4514_string()


def record(
    path: str | os.PathLike[str], *, now: dt.datetime | None = None, default_account_key: str = ""
) -> CertificateRecord:
    """The :class:`CertificateRecord` of one directory, from its files (no request, no lock)."""
    now = now or now_utc()
    try:
        cert = ManagedCertificate.open(path, default_account_key=default_account_key)
    except AcmeliteError as exc:
        return CertificateRecord(
            path=Path(os.path.abspath(path)), status="unreadable", reason=str(exc), error=str(exc)
        )
    seen = cert.inspect(now=now)
    status, state, leaf = seen.result, seen.state, seen.certificate
    window, source = status.window, "ari" if status.window is not None else ""
    if window is None and seen.decision is not None and seen.decision.lifetime_window:
        window, source = seen.decision.lifetime_window, "lifetime"
    elif window is None and leaf is not None:
        window, source = lifetime_window(leaf), "lifetime"
    names = cert.config.names
    return CertificateRecord(
        path=cert.path,
        status=status.status,
        reason=status.reason,
        names=names,
        server=cert.config.server,
        profile=cert.config.profile,
        common_name=(_common_name(leaf) if leaf is not None else "") or names[0],
        issuer=_name_attribute(leaf.issuer) if leaf is not None else "",
        serial=status.serial,
        not_before=leaf.not_valid_before_utc if leaf is not None else None,
        not_after=status.not_after,
        window=window,
        window_source=source,
        renew_at=status.renew_at,
        next_check=status.next_check,
        last_renewal=state.last_renewal,
        failures=state.failures,
        last_error=state.last_error or state.hold_reason,
        next_attempt=state.next_attempt,
        deploy_pending=state.deploy_pending,
    )


def inventory(
    paths: Iterable[str | os.PathLike[str]],
    *,
    now: dt.datetime | None = None,
    default_account_key: str = "",
) -> list[CertificateRecord]:
    """One :func:`record` per directory, in order; files only, so it is fast and safe
    while a renewal runs (a record may be one renewal old)."""
    now = now or now_utc()
    return [record(p, now=now, default_account_key=default_account_key) for p in paths]
