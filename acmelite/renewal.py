"""Renewal: when a certificate is due (RFC 9773 ARI, else its lifetime), and what an
output directory remembers between runs.

Two files sit beside the certificate in an output directory:

``renewal.json``
    how the certificate was issued — server, names, key type, challenge settings,
    profile, preferred chain, deploy hook, Kubernetes Secret — and never a secret;
``.renewal-state.json``
    what ``renew`` learned: the ARI window and the moment picked in it, consecutive
    failures and when the next attempt may run.

Theory of operation — one decision per run (hourly from cron is the design point):

1. A certificate whose last attempt failed is left alone until its back-off ends (about
   1 min, 10 min, 100 min, then once a day): no request reaches the CA at all.
2. With ARI (the directory has ``renewalInfo``) the suggested window is fetched at most
   once per ``Retry-After`` (held between 1 minute and 24 hours). One moment is picked
   uniformly at random inside the window — drawn from the certificate id, and stored —
   so repeated runs (and ``--dry-run``) agree while a fleet of certificates spreads its
   load over the window. The certificate is due once that moment has passed (RFC 9773
   §4.2); a new window (the CA moved it, say after a revocation) gets a new moment.
3. Without ARI, or when the ARI request fails, the certificate is due once a third of
   its lifetime remains — half for certificates of ten days or less. The lifetime is read
   from the certificate; 90 days is never assumed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography import x509

from .errors import AcmeliteError, InvalidInput, ProblemError
from .keys import b64url
from .models import RenewalInfo, parse_timestamp
from .storage import atomic_write

if TYPE_CHECKING:
    from .client import AcmeClient

__all__ = [
    "CONFIG_FILE",
    "STATE_FILE",
    "AriRecord",
    "Decision",
    "RenewalConfig",
    "RenewalState",
    "backoff_delay",
    "certificate_id",
    "decide",
    "fetch_renewal_info",
    "lifetime_threshold",
    "load_config",
    "load_state",
    "now_utc",
    "pick_moment",
    "refresh_ari",
    "refused_replaces",
    "save_config",
    "save_state",
    "shares_a_name",
]

log = logging.getLogger(__name__)

CONFIG_FILE = "renewal.json"
STATE_FILE = ".renewal-state.json"

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

#: The challenge settings ``renewal.json`` may hold: an allowlist, so no secret (a TSIG
#: secret, an EAB key) can reach the file whatever the caller passes.
#: The dns-01 options of ``issue`` that ``renewal.json`` keeps (never ``tsig_secret``).
DNS_KEYS = (
    "dns",
    "dns_server",
    "dns_zone",
    "dns_hook",
    "dns_resolver",
    "dns_propagation_timeout",
    "tsig_key_name",
    "tsig_algorithm",
    "tsig_secret_file",
)
CHALLENGE_KEYS = ("type", "http_port", "http_address", "webroot", *DNS_KEYS)


def now_utc() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _iso(value: dt.datetime | None) -> str | None:
    return None if value is None else value.astimezone(dt.timezone.utc).isoformat()


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


# -- the certificate identifier and the renewalInfo request (RFC 9773 §4.1) ---------------


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


def fetch_renewal_info(
    client: AcmeClient, cert: x509.Certificate
) -> tuple[RenewalInfo, float | None]:
    """GET ``<renewalInfo>/<certID>`` (RFC 9773 §4.2): the window and its ``Retry-After``."""
    base = client.directory.renewal_info
    if not base:
        raise InvalidInput(f"{client.directory_url} offers no renewalInfo (ARI)")
    resp = client.transport.get(f"{base.rstrip('/')}/{certificate_id(cert)}")
    return RenewalInfo.from_json(resp.json()), resp.retry_after


# -- what the directory remembers ---------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class RenewalConfig:
    """``renewal.json``: everything ``renew`` needs to issue again as ``issue`` did."""

    server: str
    names: tuple[str, ...]
    key_type: str = "ec256"
    account_key: str = ""
    ca_bundle: str = ""
    challenge: Mapping[str, object] = field(default_factory=lambda: {"type": "http-01"})
    profile: str = ""
    preferred_chain: str = ""
    deploy_hook: str = ""
    k8s_secret: str = ""
    csr: str = ""

    def to_json(self) -> dict[str, object]:
        return {
            "version": 1,
            "server": self.server,
            "names": list(self.names),
            "key_type": self.key_type,
            "account_key": self.account_key,
            "ca_bundle": self.ca_bundle or None,
            "challenge": {k: self.challenge[k] for k in CHALLENGE_KEYS if k in self.challenge},
            "profile": self.profile or None,
            "preferred_chain": self.preferred_chain or None,
            "deploy_hook": self.deploy_hook or None,
            "k8s_secret": self.k8s_secret or None,
            "csr": self.csr or None,
        }

    @classmethod
    def from_json(cls, data: object, *, source: str) -> RenewalConfig:
        if not isinstance(data, Mapping):
            raise InvalidInput(f"{source}: not a JSON object")
        names = data.get("names")
        server = data.get("server")
        if not isinstance(server, str) or not server:
            raise InvalidInput(f"{source}: 'server' missing")
        if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
            raise InvalidInput(f"{source}: 'names' must be a non-empty list of names")
        challenge = data.get("challenge") or {"type": "http-01"}
        if not isinstance(challenge, Mapping):
            raise InvalidInput(f"{source}: 'challenge' is not an object")

        def text(key: str) -> str:
            value = data.get(key)
            return value if isinstance(value, str) else ""

        return cls(
            server=server,
            names=tuple(names),
            key_type=text("key_type") or "ec256",
            account_key=text("account_key"),
            ca_bundle=text("ca_bundle"),
            challenge={k: challenge[k] for k in CHALLENGE_KEYS if k in challenge},
            profile=text("profile"),
            preferred_chain=text("preferred_chain"),
            deploy_hook=text("deploy_hook"),
            k8s_secret=text("k8s_secret"),
            csr=text("csr"),
        )


def save_config(out: str | Path, config: RenewalConfig) -> None:
    data = json.dumps(config.to_json(), indent=2).encode() + b"\n"
    atomic_write(Path(out) / CONFIG_FILE, data, mode=0o600)


def load_config(out: str | Path) -> RenewalConfig:
    path = Path(out) / CONFIG_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InvalidInput(
            f"{path} not found: only directories written by 'acmelite issue --out' can be renewed"
        ) from None
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"cannot read {path}: {exc}") from None
    return RenewalConfig.from_json(data, source=str(path))


@dataclass(frozen=True, slots=True, kw_only=True)
class AriRecord:
    """The last renewalInfo answer for one certificate, and the moment picked in it."""

    cert_id: str
    fetched: dt.datetime
    next_fetch: dt.datetime
    window: RenewalInfo | None = None  # None: no ARI at this CA, or the request failed
    renew_at: dt.datetime | None = None
    error: str = ""

    def to_json(self) -> dict[str, object]:
        window = None
        if self.window is not None:
            window = {
                "start": _iso(self.window.start),
                "end": _iso(self.window.end),
                "explanation_url": self.window.explanation_url or None,
            }
        return {
            "cert_id": self.cert_id,
            "fetched": _iso(self.fetched),
            "next_fetch": _iso(self.next_fetch),
            "window": window,
            "renew_at": _iso(self.renew_at),
            "error": self.error or None,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, object], *, source: str) -> AriRecord | None:
        fetched = _time(data, "fetched", source)
        next_fetch = _time(data, "next_fetch", source)
        cert_id = data.get("cert_id")
        if not isinstance(cert_id, str) or fetched is None or next_fetch is None:
            return None
        window = None
        raw = data.get("window")
        if isinstance(raw, Mapping):
            start, end = _time(raw, "start", source), _time(raw, "end", source)
            url = raw.get("explanation_url")
            if start is not None and end is not None:
                window = RenewalInfo(
                    start=start, end=end, explanation_url=url if isinstance(url, str) else ""
                )
        error = data.get("error")
        return cls(
            cert_id=cert_id,
            fetched=fetched,
            next_fetch=next_fetch,
            window=window,
            renew_at=_time(data, "renew_at", source),
            error=error if isinstance(error, str) else "",
        )


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

    def failed(self, error: str, *, now: dt.datetime) -> RenewalState:
        """One more consecutive failure; the next attempt waits per :data:`BACKOFF`."""
        failures = self.failures + 1
        return replace(
            self,
            failures=failures,
            last_error=error,
            last_failure=now,
            next_attempt=now + backoff_delay(failures),
        )

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
        }


def save_state(out: str | Path, state: RenewalState) -> None:
    data = json.dumps(state.to_json(), indent=2).encode() + b"\n"
    atomic_write(Path(out) / STATE_FILE, data, mode=0o600)


def load_state(out: str | Path) -> RenewalState:
    """The stored state; a missing or unreadable file is a fresh start (logged)."""
    path = Path(out) / STATE_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return RenewalState()
    except (OSError, ValueError) as exc:
        log.warning("ignoring unreadable %s: %s", path, exc)
        return RenewalState()
    if not isinstance(data, Mapping):
        return RenewalState()
    source = str(path)
    try:
        raw_ari = data.get("ari")
        ari = AriRecord.from_json(raw_ari, source=source) if isinstance(raw_ari, Mapping) else None
        failures = data.get("failures")
        error = data.get("last_error")
        return RenewalState(
            ari=ari,
            failures=failures if isinstance(failures, int) and failures > 0 else 0,
            last_error=error if isinstance(error, str) else "",
            last_failure=_time(data, "last_failure", source),
            next_attempt=_time(data, "next_attempt", source),
            deploy_pending=data.get("deploy_pending") is True,
            last_renewal=_time(data, "last_renewal", source),
        )
    except InvalidInput as exc:
        log.warning("ignoring %s: %s", path, exc)
        return RenewalState()


# -- the decision -------------------------------------------------------------------------


def backoff_delay(failures: int) -> dt.timedelta:
    """The wait after ``failures`` consecutive failures: 1 min, 10 min, 100 min, 1 day, ..."""
    return BACKOFF[min(max(failures, 1), len(BACKOFF)) - 1]


def lifetime_threshold(cert: x509.Certificate) -> dt.datetime:
    """When a third of the lifetime remains (half for certificates of ten days or less)."""
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    share = 2 if lifetime <= SHORT_LIVED else 3
    return cert.not_valid_after_utc - lifetime / share


def pick_moment(window: RenewalInfo, *, seed: str = "") -> dt.datetime:
    """A uniformly random moment in ``window`` (RFC 9773 §4.2 step 1).

    With ``seed`` (the certificate id) the draw is repeatable: the same certificate and
    window always give the same moment, so ``--dry-run`` and a lost state file agree with
    the run that follows, while different certificates still spread over the window.
    """
    span = (window.end - window.start).total_seconds()
    material = f"{seed} {window.start.isoformat()} {window.end.isoformat()}".encode()
    # Not for secrecy: the draw only spreads renewals over the window.
    draw = random.Random(hashlib.sha256(material).digest()) if seed else random.Random()  # noqa: S311
    return window.start + dt.timedelta(seconds=draw.uniform(0.0, span))


def _recheck_after(retry_after: float | None, default: dt.timedelta) -> dt.timedelta:
    wait = default if retry_after is None else dt.timedelta(seconds=retry_after)
    return min(max(wait, ARI_MIN_RECHECK), ARI_MAX_RECHECK)


def refresh_ari(
    client: AcmeClient,
    cert: x509.Certificate,
    *,
    previous: AriRecord | None,
    now: dt.datetime,
) -> AriRecord:
    """Ask the CA for ``cert``'s window; keep the picked moment while the window stands.

    A failed request is logged and recorded (``window`` None, ``error`` set) so the caller
    falls back to the lifetime rule; it is asked again after ``Retry-After`` or an hour.
    """
    cert_id = certificate_id(cert)
    if not client.directory.renewal_info:
        return AriRecord(cert_id=cert_id, fetched=now, next_fetch=now + ARI_MAX_RECHECK)
    try:
        window, retry_after = fetch_renewal_info(client, cert)
    except AcmeliteError as exc:
        log.warning("renewalInfo for %s failed (%s); using the lifetime rule", cert_id, exc)
        wait = exc.retry_after if isinstance(exc, ProblemError) else None
        return AriRecord(
            cert_id=cert_id,
            fetched=now,
            next_fetch=now + _recheck_after(wait, ARI_RETRY_AFTER_FAILURE),
            error=str(exc),
        )
    renew_at = None
    if previous is not None and previous.cert_id == cert_id and previous.window is not None:
        same = (previous.window.start, previous.window.end) == (window.start, window.end)
        renew_at = previous.renew_at if same else None
    if renew_at is None:
        renew_at = pick_moment(window, seed=cert_id)
    default = ARI_MAX_RECHECK / 4  # 6 hours, as Let's Encrypt sends
    return AriRecord(
        cert_id=cert_id,
        fetched=now,
        next_fetch=now + _recheck_after(retry_after, default),
        window=window,
        renew_at=renew_at,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class Decision:
    """Whether a certificate is due now, why, and when to look at it again."""

    due: bool
    reason: str
    next_check: dt.datetime
    renew_at: dt.datetime | None = None
    window: RenewalInfo | None = None


def _when(value: dt.datetime) -> str:
    return value.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def _days(delta: dt.timedelta) -> str:
    days = delta.total_seconds() / 86400
    return f"{days:.0f} days" if days >= 2 else f"{delta.total_seconds() / 3600:.0f} hours"


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
        return Decision(due=True, reason="forced (--force)", next_check=now, window=window)
    if now >= not_after:
        return Decision(due=True, reason=f"expired {_when(not_after)}", next_check=now)
    if window is not None and ari is not None and ari.renew_at is not None:
        span = f"ARI window {_when(window.start)} .. {_when(window.end)}"
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
    threshold = lifetime_threshold(cert)
    share = "half" if lifetime <= SHORT_LIVED else "a third"
    rule = f"{_days(lifetime)} lifetime, due when {share} remains ({_when(threshold)})"
    if ari is not None and ari.error:
        rule += "; ARI failed"
    if now >= threshold:
        return Decision(due=True, reason=rule, next_check=now, renew_at=threshold)
    next_check = threshold
    if ari is not None and ari.error:
        next_check = min(next_check, ari.next_fetch)
    return Decision(due=False, reason=rule, next_check=next_check, renew_at=threshold)


def shares_a_name(names: Sequence[str], cert_names: Sequence[str]) -> bool:
    """``replaces`` only makes sense when the new order keeps one of the old names."""
    return bool({n.lower() for n in names} & {n.lower() for n in cert_names})


def refused_replaces(exc: ProblemError) -> bool:
    """True for a newOrder problem about ``replaces`` (RFC 9773 §5: alreadyReplaced, ...)."""
    problem = exc.problem
    if problem.short_type == "alreadyReplaced":
        return True
    text = f"{problem.detail} {problem.title}".lower()
    return any(word in text for word in ("replace", "ari ", "certid", "renewal"))
