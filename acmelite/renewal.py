"""Renewal policy: when a certificate is due (RFC 9773 ARI, else its lifetime). No I/O.

Pure functions and values only: :func:`decide` is the decision, :class:`RenewalState` what
a certificate directory remembers between runs (``.renewal-state.json``; the files and the
requests are :mod:`acmelite.managed`'s job), and the ``ari_*`` functions turn a renewalInfo
answer, or its failure, into the record the next decision uses.

Theory of operation — one decision per run (hourly from cron is the design point):

1. A certificate whose last attempt failed is left alone until its back-off ends (about
   1 min, 10 min, 100 min, then once a day): no request reaches the CA at all.
2. With ARI (the directory has ``renewalInfo``) the suggested window is fetched at most
   once per ``Retry-After`` (held between 1 minute and 24 hours). One moment is picked
   uniformly at random inside the window — drawn from the certificate id, and stored —
   so repeated runs (and ``--dry-run``) agree while a fleet of certificates spreads its
   load over the window. The certificate is due once that moment has passed (RFC 9773
   §4.2); a new window (the CA moved it, say after a revocation) gets a new moment.
3. Without ARI, or when the ARI request fails, the certificate is due at a moment drawn
   in the *lifetime window*: the last twelfth of the lifetime before a third of it remains
   (half for certificates of ten days or less). The draw is seeded by the certificate's
   serial number, so it is stable per certificate like ARI's, and a fleet issued on one day
   (or given one expiry second, as some CAs do) does not renew in one burst. The lifetime
   is read from the certificate; 90 days is never assumed.
4. When a new ARI window starts before the stored one did, the CA asked for early renewal
   (a mass revocation moves every window into the past at once): the decision says so.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from .errors import AcmeliteError, InvalidInput, ProblemError
from .models import RenewalInfo, parse_timestamp

if TYPE_CHECKING:
    from cryptography import x509

__all__ = [
    "AriRecord",
    "Decision",
    "RenewalState",
    "ari_answered",
    "ari_failed",
    "ari_unsupported",
    "backoff_delay",
    "decide",
    "lifetime_threshold",
    "lifetime_window",
    "now_utc",
    "pick_moment",
    "refused_replaces",
    "shares_a_name",
    "when",
    "window_json",
]

log = logging.getLogger(__name__)

#: Waits after the 1st, 2nd, 3rd consecutive failure; every later one waits a day.
BACKOFF = (
    dt.timedelta(minutes=1),
    dt.timedelta(minutes=10),
    dt.timedelta(minutes=100),
    dt.timedelta(days=1),
)
#: Bounds on how long an ARI answer is trusted (RFC 9773 §4.3: limits on Retry-After).
ARI_MIN_RECHECK = dt.timedelta(minutes=1)
ARI_MAX_RECHECK = dt.timedelta(hours=24)
#: How long to wait before asking again after the ARI request failed without Retry-After.
ARI_RETRY_AFTER_FAILURE = dt.timedelta(hours=1)
#: Certificates this short-lived renew at half their lifetime instead of a third.
SHORT_LIVED = dt.timedelta(days=10)
#: The lifetime window spans this share of the lifetime, ending at :func:`lifetime_threshold`.
LIFETIME_WINDOW_SHARE = 12
#: How long the certificates of an account wait after a ``rateLimited`` problem that named
#: no ``Retry-After``.
RATE_LIMIT_WAIT = dt.timedelta(hours=1)


def now_utc() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _iso(value: dt.datetime | None) -> str | None:
    return None if value is None else value.astimezone(dt.timezone.utc).isoformat()


def window_json(window: RenewalInfo | None) -> dict[str, object] | None:
    """An ARI window as stored and printed (UTC ISO 8601), or None."""
    if window is None:
        return None
    return {
        "start": _iso(window.start),
        "end": _iso(window.end),
        "explanation_url": window.explanation_url or None,
    }


def _time(data: Mapping[str, object], key: str, source: str) -> dt.datetime | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidInput(f"{source}: {key!r} is not a timestamp")
    try:
        return parse_timestamp(value, f"{source}: {key}")
    except AcmeliteError as exc:
        raise InvalidInput(str(exc)) from None


@dataclass(frozen=True, slots=True, kw_only=True)
class AriRecord:
    """The last renewalInfo answer for one certificate, and the moment picked in it."""

    cert_id: str
    fetched: dt.datetime
    next_fetch: dt.datetime
    window: RenewalInfo | None = None  # None: no ARI at this CA, or the request failed
    renew_at: dt.datetime | None = None
    error: str = ""
    #: The window before this one, when the CA moved it earlier (an early-renewal request).
    moved_from: RenewalInfo | None = None

    def to_json(self) -> dict[str, object]:
        return {
            "cert_id": self.cert_id,
            "fetched": _iso(self.fetched),
            "next_fetch": _iso(self.next_fetch),
            "window": window_json(self.window),
            "renew_at": _iso(self.renew_at),
            "error": self.error or None,
            "moved_from": window_json(self.moved_from),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, object], *, source: str) -> AriRecord | None:
        fetched = _time(data, "fetched", source)
        next_fetch = _time(data, "next_fetch", source)
        cert_id = data.get("cert_id")
        if not isinstance(cert_id, str) or fetched is None or next_fetch is None:
            return None
        error = data.get("error")
        return cls(
            cert_id=cert_id,
            fetched=fetched,
            next_fetch=next_fetch,
            window=_window_from_json(data.get("window"), source),
            renew_at=_time(data, "renew_at", source),
            error=error if isinstance(error, str) else "",
            moved_from=_window_from_json(data.get("moved_from"), source),
        )


def _window_from_json(raw: object, source: str) -> RenewalInfo | None:
    if not isinstance(raw, Mapping):
        return None
    start, end = _time(raw, "start", source), _time(raw, "end", source)
    url = raw.get("explanation_url")
    if start is None or end is None:
        return None
    return RenewalInfo(start=start, end=end, explanation_url=url if isinstance(url, str) else "")


@dataclass(frozen=True, slots=True, kw_only=True)
class RenewalState:
    """``.renewal-state.json``: ARI cache, failures and back-off of one certificate."""

    ari: AriRecord | None = None
    failures: int = 0
    last_error: str = ""
    last_failure: dt.datetime | None = None
    next_attempt: dt.datetime | None = None
    deploy_pending: bool = False
    last_renewal: dt.datetime | None = None
    #: Why ``next_attempt`` is set when it is not a back-off after failures (a CA's rate
    #: limit on the account, say); "" after a failure.
    hold_reason: str = ""

    def failed(self, error: str, *, now: dt.datetime) -> RenewalState:
        """One more consecutive failure; the next attempt waits per :data:`BACKOFF`."""
        failures = self.failures + 1
        return replace(
            self,
            failures=failures,
            last_error=error,
            last_failure=now,
            next_attempt=now + backoff_delay(failures),
            hold_reason="",
        )

    def held(self, until: dt.datetime, reason: str) -> RenewalState:
        """No attempt before ``until``, for ``reason``; not a failure (the count stays)."""
        later = until if self.next_attempt is None else max(until, self.next_attempt)
        return replace(self, next_attempt=later, hold_reason=reason)

    @classmethod
    def from_json(cls, data: object, *, source: str) -> RenewalState:
        """Read a stored state; anything unusable in it is a fresh start (logged)."""
        if not isinstance(data, Mapping):
            log.warning("ignoring %s: not a JSON object", source)
            return cls()
        try:
            raw_ari = data.get("ari")
            ari = None
            if isinstance(raw_ari, Mapping):
                ari = AriRecord.from_json(raw_ari, source=source)
            failures = data.get("failures")
            error = data.get("last_error")
            return cls(
                ari=ari,
                failures=failures if isinstance(failures, int) and failures > 0 else 0,
                last_error=error if isinstance(error, str) else "",
                last_failure=_time(data, "last_failure", source),
                next_attempt=_time(data, "next_attempt", source),
                deploy_pending=data.get("deploy_pending") is True,
                last_renewal=_time(data, "last_renewal", source),
                hold_reason=hold if isinstance(hold := data.get("hold_reason"), str) else "",
            )
        except InvalidInput as exc:
            log.warning("ignoring %s: %s", source, exc)
            return cls()

    def to_json(self) -> dict[str, object]:
        return {
            "version": 1,
            "ari": None if self.ari is None else self.ari.to_json(),
            "failures": self.failures,
            "last_error": self.last_error or None,
            "last_failure": _iso(self.last_failure),
            "next_attempt": _iso(self.next_attempt),
            "deploy_pending": self.deploy_pending,
            "last_renewal": _iso(self.last_renewal),
            "hold_reason": self.hold_reason or None,
        }


# -- the decision -------------------------------------------------------------------------


def backoff_delay(failures: int) -> dt.timedelta:
    """The wait after ``failures`` consecutive failures: 1 min, 10 min, 100 min, 1 day, ..."""
    return BACKOFF[min(max(failures, 1), len(BACKOFF)) - 1]


def lifetime_threshold(cert: x509.Certificate) -> dt.datetime:
    """When a third of the lifetime remains (half for certificates of ten days or less)."""
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    share = 2 if lifetime <= SHORT_LIVED else 3
    return cert.not_valid_after_utc - lifetime / share


def lifetime_window(cert: x509.Certificate) -> RenewalInfo:
    """The due window of a certificate without ARI: the twelfth of its lifetime that ends
    at :func:`lifetime_threshold` (a 90-day certificate: days 52.5 to 60)."""
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    end = lifetime_threshold(cert)
    return RenewalInfo(start=end - lifetime / LIFETIME_WINDOW_SHARE, end=end)


def _lifetime_seed(cert: x509.Certificate) -> str:
    """Unique per certificate (a CA never reuses a serial), cheap to read."""
    return f"{cert.serial_number:x} {cert.not_valid_before_utc.timestamp():.0f}"


def pick_moment(window: RenewalInfo, *, seed: str = "") -> dt.datetime:
    """A uniformly random moment in ``window`` (RFC 9773 §4.2 step 1).

    With ``seed`` (the certificate id) the draw is repeatable: the same certificate and
    window always give the same moment, so ``--dry-run`` and a lost state file agree with
    the run that follows, while different certificates still spread over the window.
    """
    span = (window.end - window.start).total_seconds()
    if seed:
        material = f"{seed} {window.start.isoformat()} {window.end.isoformat()}".encode()
        draw = int.from_bytes(hashlib.sha256(material).digest()[:8], "big") / 2**64
    else:
        # Not for secrecy: the draw only spreads renewals over the window.
        draw = random.random()  # noqa: S311
    return window.start + dt.timedelta(seconds=draw * span)


def _recheck_after(retry_after: float | None, default: dt.timedelta) -> dt.timedelta:
    wait = default if retry_after is None else dt.timedelta(seconds=retry_after)
    return min(max(wait, ARI_MIN_RECHECK), ARI_MAX_RECHECK)


def ari_unsupported(cert_id: str, *, now: dt.datetime) -> AriRecord:
    """The record for a CA without ``renewalInfo``: the lifetime rule, looked at daily."""
    return AriRecord(cert_id=cert_id, fetched=now, next_fetch=now + ARI_MAX_RECHECK)


def ari_failed(
    cert_id: str, error: str, *, retry_after: float | None, now: dt.datetime
) -> AriRecord:
    """The record for a failed renewalInfo request: the lifetime rule until it is asked
    again, after ``retry_after`` (held to the ARI bounds) or an hour."""
    return AriRecord(
        cert_id=cert_id,
        fetched=now,
        next_fetch=now + _recheck_after(retry_after, ARI_RETRY_AFTER_FAILURE),
        error=error,
    )


def ari_answered(
    cert_id: str,
    window: RenewalInfo,
    *,
    retry_after: float | None,
    previous: AriRecord | None,
    now: dt.datetime,
) -> AriRecord:
    """The record for a renewalInfo answer: the moment picked before is kept while the
    window stands; a moved window (a revocation, say) gets a new one (RFC 9773 §4.2), and
    one moved earlier remembers where it was (``moved_from``)."""
    renew_at = None
    moved_from = None
    if previous is not None and previous.cert_id == cert_id and previous.window is not None:
        same = (previous.window.start, previous.window.end) == (window.start, window.end)
        renew_at = previous.renew_at if same else None
        if same:
            moved_from = previous.moved_from
        elif window.start < previous.window.start:
            moved_from = previous.window
    if renew_at is None:
        renew_at = pick_moment(window, seed=cert_id)
    default = ARI_MAX_RECHECK / 4  # 6 hours, as Let's Encrypt sends
    return AriRecord(
        cert_id=cert_id,
        fetched=now,
        next_fetch=now + _recheck_after(retry_after, default),
        window=window,
        renew_at=renew_at,
        moved_from=moved_from,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class Decision:
    """Whether a certificate is due now, why, and when to look at it again."""

    due: bool
    reason: str
    next_check: dt.datetime
    renew_at: dt.datetime | None = None
    window: RenewalInfo | None = None  # the ARI window, when the CA's answer decided
    lifetime_window: RenewalInfo | None = None  # the window of the lifetime rule, when it did


def _when(value: dt.datetime) -> str:
    """``2026-11-23 12:00 UTC``, cut from ``isoformat`` (in C: strftime, or formatting the
    fields in Python, costs twice as much, and a listing of 10,000 makes 40,000)."""
    if value.tzinfo is not dt.timezone.utc:
        value = value.astimezone(dt.timezone.utc)
    return f"{value.isoformat(' ', 'minutes')[:16]} UTC"


def _days(delta: dt.timedelta) -> str:
    days = delta.total_seconds() / 86400
    return f"{days:.0f} days" if days >= 2 else f"{delta.total_seconds() / 3600:.0f} hours"


#: The one format of a moment in reasons and listings.
when = _when


def decide(
    cert: x509.Certificate,
    *,
    now: dt.datetime,
    ari: AriRecord | None = None,
    force: bool = False,
) -> Decision:
    """Due or not (RFC 9773 §4.2 with ``ari``; else the lifetime rule); no I/O."""
    not_after = cert.not_valid_after_utc
    lifetime = not_after - cert.not_valid_before_utc
    window = ari.window if ari is not None else None
    if window is not None and not window.start < not_after:
        log.warning("ignoring an ARI window that starts after the certificate expires")
        window = None
    if force:
        return Decision(due=True, reason="forced", next_check=now, window=window)
    if now >= not_after:
        return Decision(due=True, reason=f"expired {_when(not_after)}", next_check=now)
    if window is not None and ari is not None and ari.renew_at is not None:
        span = f"ARI window {_when(window.start)} .. {_when(window.end)}"
        if ari.moved_from is not None:
            was = f"{_when(ari.moved_from.start)} .. {_when(ari.moved_from.end)}"
            span = f"the CA asked for early renewal: window now {_when(window.start)} .."
            span += f" {_when(window.end)} (was {was})"
            if window.explanation_url:
                span += f", see {window.explanation_url}"
        if now >= ari.renew_at:
            return Decision(
                due=True,
                reason=f"{span}; the moment picked in it, {_when(ari.renew_at)}, has come",
                next_check=now,
                renew_at=ari.renew_at,
                window=window,
            )
        return Decision(
            due=False,
            reason=f"{span}; renewing at {_when(ari.renew_at)}",
            next_check=min(ari.renew_at, ari.next_fetch),
            renew_at=ari.renew_at,
            window=window,
        )
    spread = lifetime_window(cert)
    moment = pick_moment(spread, seed=_lifetime_seed(cert))
    share = "half" if lifetime <= SHORT_LIVED else "a third"
    rule = (
        f"{_days(lifetime)} lifetime, due before {share} remains ({_when(spread.end)}),"
        f" at {_when(moment)}"
    )
    if ari is not None and ari.error:
        rule += "; ARI failed"
    if now >= moment:
        return Decision(
            due=True, reason=rule, next_check=now, renew_at=moment, lifetime_window=spread
        )
    next_check = moment
    if ari is not None and ari.error:
        next_check = min(next_check, ari.next_fetch)
    return Decision(
        due=False, reason=rule, next_check=next_check, renew_at=moment, lifetime_window=spread
    )


def shares_a_name(names: Sequence[str], cert_names: Sequence[str]) -> bool:
    """``replaces`` only makes sense when the new order keeps one of the old names."""
    return bool({n.lower() for n in names} & {n.lower() for n in cert_names})


def refused_replaces(exc: ProblemError) -> bool:
    """True for a newOrder problem about ``replaces`` (RFC 9773 §5: alreadyReplaced, ...).

    A CA that cannot find the certificate ``replaces`` names refused it as surely: Pebble
    answers "could not find an order for the given certificate" for a serial whose DER
    content octets start with the 0x00 that RFC 9773's certID keeps (a top bit set: about 1
    in 256 of its 63-bit serials) — it files certificates under their serial's minimal
    bytes — and an order without ``replaces`` goes through (docs/interop.md)."""
    problem = exc.problem
    if problem.short_type == "alreadyReplaced":
        return True
    text = f"{problem.detail} {problem.title}".lower()
    words = ("replace", "ari ", "certid", "renewal", "the given certificate")
    return any(word in text for word in words)
