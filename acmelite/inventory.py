"""The inventory of a certificate tree: find the directories, describe each from its files.

:func:`discover` turns directories and roots into the list of certificate directories (a
directory below a root counts when it holds a ``renewal.json``); :func:`record` describes one
directory as a :class:`CertificateRecord` — names, issuer, serial, validity, the renewal
window and the moment picked in it, failures, back-off, a pending deploy hook — from its
files alone, through :meth:`ManagedCertificate.inspect` (its status and state): no request, no lock,
so ``acmelite list`` is fast and safe while a renewal runs. :func:`inventory` does it for
many, and :func:`survey` finds and describes the directories of trees through each tree's
:class:`~acmelite.index.InventoryIndex` (``ROOT/.acmelite-inventory.json``), so a directory
that has not changed since the last list is neither read nor parsed again.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gc
import logging
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from .config import CONFIG_FILE, STATE_FILE
from .errors import AcmeliteError
from .index import InventoryIndex
from .models import RenewalInfo
from .renewal import lifetime_window, now_utc

if TYPE_CHECKING:
    from cryptography import x509

__all__ = ["CertificateRecord", "discover", "inventory", "record", "survey"]

log = logging.getLogger(__name__)


def discover(
    dirs: Iterable[str | os.PathLike[str]] = (), roots: Iterable[str | os.PathLike[str]] = ()
) -> list[Path]:
    """``dirs`` and every directory below each of ``roots`` that holds a ``renewal.json``,
    absolute, each once, in the order found (hidden directories are not searched)."""
    found = [os.path.abspath(d) for d in dirs]
    for root in roots:
        walker = InventoryIndex(root, context={}, files=(CONFIG_FILE,))  # not loaded or saved
        found += (here for here, _ in walker.walk())
    return [Path(p) for p in dict.fromkeys(found)]


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

    @classmethod
    def from_json(cls, data: Mapping[str, object], *, path: Path) -> CertificateRecord:
        """The record :meth:`to_json` wrote (for ``path``); ``TypeError``/``ValueError``
        for anything else."""
        return _from_row([data.get(key) for key in _ROW], path)

    def true_until(self, now: dt.datetime) -> dt.datetime | None:
        """Until when this record, made at ``now``, holds while its files stay the same: a
        ``backing-off`` one until the back-off ends; a ``not-due`` one until its renewal
        moment or expiry; a ``due`` one until it expires (the reason becomes "expired"); an
        ``unreadable`` or expired one as long as its files (None). (A stored ARI answer
        that should be asked again does not change the record: only a renewal's request
        can, and it rewrites the state file.)"""
        if self.status == "backing-off":
            return self.next_check
        if self.status == "unreadable" or (self.not_after is not None and now >= self.not_after):
            return None
        moments = [self.not_after]
        if self.status == "not-due":
            moments.append(self.renew_at)
        present = [m for m in moments if m is not None]
        return min(present) if present else None


def _common_name(cert: x509.Certificate) -> str:
    from cryptography.x509.oid import NameOID

    for attr in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME):
        return str(attr.value)
    return ""


def _name_attribute(name: x509.Name) -> str:
    from cryptography.x509.oid import NameOID

    for attr in name.get_attributes_for_oid(NameOID.COMMON_NAME):
        return str(attr.value)
    return name.rfc4514_string()


def record(
    path: str | os.PathLike[str], *, now: dt.datetime | None = None, default_account_key: str = ""
) -> CertificateRecord:
    """The :class:`CertificateRecord` of one directory, from its files (no request, no lock)."""
    # Imported here: a list whose records all come from the index needs neither the
    # managed layer (and with it the ACME client and requests) nor cryptography.
    from .managed import ManagedCertificate

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


#: The files a record is made of (``renewal.json`` first: without it there is no record).
_RECORD_FILES = (CONFIG_FILE, STATE_FILE, "cert.pem")
#: The ones :meth:`ManagedCertificate.open` requires to be trusted.
_TRUSTED_FILES = (CONFIG_FILE, STATE_FILE)
#: A record in the index: the values of :meth:`CertificateRecord.to_json` in this order
#: (a list, not an object: a third less to read, and JSON parsing is much of a warm list).
_ROW = (
    "status", "reason", "names", "server", "profile", "common_name", "issuer", "serial",
    "not_before", "not_after", "renewal_window", "renew_at", "next_check", "last_renewal",
    "failures", "last_error", "next_attempt", "deploy_pending", "error",
)  # fmt: skip


_fromiso = dt.datetime.fromisoformat


def _when_or_none(value: object) -> dt.datetime | None:
    if value is None:
        return None
    moment = _fromiso(value)  # type: ignore[arg-type]  # TypeError for a non-string
    if moment.tzinfo is None:
        raise ValueError(f"{value!r}: no time zone")
    return moment


def _str(value: object) -> str:
    if value is None:
        return ""
    if type(value) is not str:
        raise TypeError(f"{value!r}: not a string")
    return value


def _from_row(row: list[object], path: Path) -> CertificateRecord:
    """The record of an index row (the values of :meth:`CertificateRecord.to_json` in
    :data:`_ROW`'s order), each checked; ``TypeError``/``ValueError`` for anything else.
    Unrolled, without a dict: a warm list makes one per directory."""
    (status, reason, names, server, profile, common_name, issuer, serial, not_before,
     not_after, raw, renew_at, next_check, last_renewal, failures, last_error, next_attempt,
     pending, error) = row  # fmt: skip
    if type(status) is not str:
        raise TypeError("status: not a string")
    if not (profile is None or type(profile) is str) or not (serial is None or type(serial) is str):
        raise TypeError("profile/serial: not a string")
    if type(names) is not list or not all(type(n) is str for n in names):
        raise TypeError("names: not a list of strings")
    if type(failures) is not int or failures < 0 or type(pending) is not bool:
        raise TypeError("failures/deploy_pending")
    window, source = None, ""
    if raw is not None:
        if type(raw) is not dict:
            raise TypeError("renewal_window: not an object")
        start, end = _when_or_none(raw.get("start")), _when_or_none(raw.get("end"))
        url, source = raw.get("explanation_url") or "", raw.get("source") or ""
        if start is None or end is None or type(url) is not str or type(source) is not str:
            raise ValueError("renewal_window: no start or end")
        window = RenewalInfo(start=start, end=end, explanation_url=url)
    return CertificateRecord(
        path=path, status=status, reason=_str(reason), names=tuple(names),
        server=_str(server), profile=profile, common_name=_str(common_name),
        issuer=_str(issuer), serial=serial, not_before=_when_or_none(not_before),
        not_after=_when_or_none(not_after), window=window, window_source=source,
        renew_at=_when_or_none(renew_at), next_check=_when_or_none(next_check),
        last_renewal=_when_or_none(last_renewal), failures=failures,
        last_error=_str(last_error), next_attempt=_when_or_none(next_attempt),
        deploy_pending=pending, error=_str(error),
    )  # fmt: skip


def _indexed(
    path: Path, key: str, info: os.stat_result, index: InventoryIndex, *, now: dt.datetime,
    default_account_key: str,
) -> CertificateRecord:  # fmt: skip
    """:func:`record` through ``index``: the stored record while the files are unchanged
    and it still holds, else read from the files and stored."""
    probe = index.probe(key, info, now=now)
    row = probe.record
    if isinstance(row, list) and len(row) == len(_ROW):
        try:
            stored = _from_row(row, path)
        except (TypeError, ValueError) as exc:
            log.debug("%s: ignoring its index entry: %s", path, exc)
        else:
            # a due certificate is to be looked at now, whenever now is
            return replace(stored, next_check=now) if stored.status == "due" else stored
    fresh = record(path, now=now, default_account_key=default_account_key)
    data = fresh.to_json()
    index.store(probe, [data[k] for k in _ROW], since=now, until=fresh.true_until(now))
    return fresh


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """No cyclic garbage collection while a survey builds its records.

    A warm survey of 10,000 directories makes some 200,000 containers (the parsed index,
    the records), all of them kept: the collector's passes over the growing heap found
    nothing to free and took a fifth of the time. Reference counting still frees what
    dies; the collector resumes (if it ran before) when the block ends — and its first
    pass then walks every object made in the block once, which ``acmelite list`` spares
    by keeping it paused until the listing is printed.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


class _Paths:
    """``Path`` objects for the absolute, normalized paths of a walk, each made from its
    parent's (parsing a whole path again costs three times as much)."""

    def __init__(self) -> None:
        self._parents: dict[str, Path] = {}

    def __call__(self, key: str) -> Path:
        head, _, name = key.rpartition("/")
        parent = self._parents.get(head)
        if parent is None:
            parent = self._parents[head] = Path(head or "/")
        return parent / name


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


def survey(
    dirs: Iterable[str | os.PathLike[str]] = (),
    roots: Iterable[str | os.PathLike[str]] = (),
    *,
    now: dt.datetime | None = None,
    default_account_key: str = "",
) -> list[CertificateRecord]:
    """:func:`inventory` of :func:`discover`'s directories (the same records, in the same
    order), through each root's :class:`~acmelite.index.InventoryIndex`: a directory
    unchanged since the last survey is neither read nor parsed again, and the index is
    written back (where this user may). ``acmelite list`` is this call."""
    now = now or now_utc()
    found: dict[str, CertificateRecord] = {}
    for d in dirs:
        key = os.path.abspath(d)
        if key not in found:
            found[key] = record(key, now=now, default_account_key=default_account_key)
    context = {"euid": os.geteuid(), "account_key": default_account_key}
    paths = _Paths()
    with collector_paused():
        for root in roots:
            index = InventoryIndex.load(
                root, context=context, files=_RECORD_FILES, trusted=_TRUSTED_FILES
            )
            for key, info in index.walk():
                if key not in found:
                    found[key] = _indexed(
                        paths(key), key, info, index, now=now,
                        default_account_key=default_account_key,
                    )  # fmt: skip
            index.save()
    return list(found.values())
