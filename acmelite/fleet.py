"""Fleets of certificate directories: renew the due ones of a whole tree in one run.

A platform team's tree holds hundreds or thousands of certificate directories (each a
:class:`~acmelite.managed.ManagedCertificate`; :func:`acmelite.inventory.discover` finds
them, :func:`acmelite.inventory.inventory` describes them). :class:`Fleet` renews them::

    report = Fleet(discover(roots=["/var/lib/acmelite/certs"]), concurrency=4).renew()
    report.counts()     # {"renewed": 3, "not-due": 997, "failed": 0, ...}

Theory of operation — one :meth:`Fleet.renew`:

1. Every directory is opened; one that cannot be is a ``failed`` result, and the run goes
   on. Certificates of one CA account (directory URL and account key) share one
   :class:`~acmelite.client_pool.SharedClient`: one directory fetch, one nonce pool, one
   connection pool, opened only when a request is needed (a run where the stored ARI
   answers are fresh and nothing is due sends none). ``random_delay`` is slept before the
   first client opens, so fleets whose timers fire together spread their load.
2. *Plan*: ``concurrency`` threads run :meth:`ManagedCertificate.renew` with a
   ``before_order`` hook that holds every order back, so each directory refreshes a stale
   ARI answer, re-runs a pending deploy hook, stores its state and says ``due`` or not.
3. *Order*: the due ones, ARI-directed renewals first (Let's Encrypt exempts them from its
   rate limits), then by expiry, go to the same threads. Before each order the hook checks
   the account: once the CA answered ``rateLimited``, no new order goes to that account for
   the rest of the run, and every certificate it holds back records ``next_attempt`` at the
   end of the CA's ``Retry-After`` (``rate-limited``, not a failure); ``max_orders`` caps
   the orders of the run (the rest are ``deferred`` to the next run; a certificate held
   back before its order leaves its turn to the next most urgent). Failed validations
   back off per certificate, as for one directory.
4. Throughout, each CA account has a circuit breaker (:mod:`acmelite.breaker`): after
   ``breaker_threshold`` requests in a row failed at the transport (refused, TLS, a
   timeout, a 5xx answer — not a problem document about one order), nothing more is sent
   to that account in this run. A stale ARI answer is then not asked for (the lifetime
   rule decides, as when the request fails), and every due certificate of the account is
   ``ca-unavailable``: not tried, ``next_attempt`` after the breaker's wait, not counted as
   a failure of the certificate. The other accounts carry on.
5. The :class:`FleetReport` has one result per directory, in the order given, the
   requests sent, by endpoint, and the accounts whose breaker opened.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from .breaker import DEFAULT_THRESHOLD
from .client_pool import ClientPool
from .constants import DEFAULT_CONCURRENCY
from .errors import AcmeliteError
from .managed import Hold, ManagedCertificate, RenewalResult, unavailable
from .renewal import Decision, now_utc

__all__ = ["STATUSES", "Fleet", "FleetReport", "summary"]

log = logging.getLogger(__name__)

#: Every status a fleet run can give a directory, in the order summaries list them.
STATUSES = (
    "renewed",
    "not-due",
    "failed",
    "skipped",
    "backing-off",
    "rate-limited",
    "ca-unavailable",
    "deferred",
    "due",
)


# -- renewing a fleet ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class FleetReport:
    """The outcome of one :meth:`Fleet.renew`: ``results`` in the order of the paths,
    ``requests`` sent by endpoint (see :func:`~acmelite.client_pool.endpoint_name`),
    ``rate_limited`` the accounts (directory URL, key path) held back and until when,
    ``unavailable`` the accounts whose circuit breaker opened, with the last failure."""

    results: tuple[RenewalResult, ...]
    started: dt.datetime
    finished: dt.datetime
    requests: Mapping[str, int] = field(default_factory=dict)
    rate_limited: Mapping[tuple[str, str], dt.datetime] = field(default_factory=dict)
    unavailable: Mapping[tuple[str, str], str] = field(default_factory=dict)
    orders: int = 0

    def counts(self) -> dict[str, int]:
        """How many results have each status (every status of :data:`STATUSES`, 0 or more)."""
        seen = Counter(r.status for r in self.results)
        return {status: seen.get(status, 0) for status in (*STATUSES, *sorted(seen))}

    @property
    def failed(self) -> bool:
        """A directory failed, was renewed with an error (a cleanup that failed), or was due
        and not tried because its CA failed (``ca-unavailable``); a rate limit is no
        failure."""
        return any(
            r.status in ("failed", "ca-unavailable")
            or (r.error is not None and r.status != "rate-limited")
            for r in self.results
        )

    @property
    def renewed(self) -> bool:
        return any(r.status == "renewed" for r in self.results)


class _Gate:
    """The order budget and the rate-limited accounts of one run; thread-safe."""

    def __init__(self, max_orders: int | None) -> None:
        self.max_orders = max_orders
        self.orders = 0
        self.blocked: dict[tuple[str, str], dt.datetime] = {}
        self._lock = threading.Lock()

    def ask(self, account: tuple[str, str]) -> Hold | None:
        with self._lock:
            until = self.blocked.get(account)
            if until is not None and now_utc() < until:
                return Hold(
                    status="rate-limited",
                    reason=f"the CA rate-limited this account ({account[0]}) earlier in this"
                    f" run; no new order before {until:%Y-%m-%d %H:%M UTC}",
                    until=until,
                )
            if self.max_orders is not None and self.orders >= self.max_orders:
                return _deferred(self.max_orders)
            self.orders += 1
            return None

    def rate_limited(self, account: tuple[str, str], until: dt.datetime) -> None:
        with self._lock:
            self.blocked[account] = max(until, self.blocked.get(account, until))
        log.warning(
            "the CA rate-limited the account %s at %s: no new order to it before %s",
            account[1],
            account[0],
            f"{until:%Y-%m-%d %H:%M UTC}",
        )


def _hold_for_plan(cert: ManagedCertificate, decision: Decision) -> Hold:
    return Hold(status="due")


def _deferred(max_orders: int | None) -> Hold:
    return Hold(
        status="deferred",
        reason=f"due, but this run's limit of {max_orders} new order(s) is reached; the next"
        " run renews it",
    )


def _deferral(max_orders: int | None) -> Callable[[ManagedCertificate, Decision], Hold]:
    return lambda cert, decision: _deferred(max_orders)


def _urgency(result: RenewalResult) -> tuple[int, dt.datetime]:
    """ARI-directed renewals first, then the earliest expiry (no certificate: first)."""
    oldest = dt.datetime.min.replace(tzinfo=dt.timezone.utc)
    return (0 if result.window is not None else 1, result.not_after or oldest)


class Fleet:
    """Renews a tree of certificate directories in one run; see the module's docstring.

    ``concurrency`` threads (at least 1) work at once; ``max_orders`` caps the new orders
    of a run (None: no cap); ``random_delay`` seconds, at most, are slept before the first
    request; ``breaker_threshold`` transport failures in a row stop the requests to a CA
    account for the run (None: never). ``timeout`` bounds each certificate (default: its
    configuration's);
    ``environ`` supplies solver options (default ``os.environ``). ``sleep`` and ``rng``
    are for tests.
    """

    def __init__(
        self,
        paths: Iterable[str | os.PathLike[str]],
        *,
        concurrency: int = DEFAULT_CONCURRENCY,
        max_orders: int | None = None,
        random_delay: float = 0.0,
        breaker_threshold: int | None = DEFAULT_THRESHOLD,
        timeout: float | None = None,
        insecure: bool = False,
        environ: Mapping[str, str] | None = None,
        default_account_key: str = "",
        tree_roots: Mapping[Path, Path | None] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, not {concurrency}")
        if max_orders is not None and max_orders < 0:
            raise ValueError(f"max_orders must be 0 or more, not {max_orders}")
        if random_delay < 0:
            raise ValueError(f"random_delay must be 0 or more seconds, not {random_delay}")
        if breaker_threshold is not None and breaker_threshold < 1:
            raise ValueError(f"breaker_threshold must be 1 or more, not {breaker_threshold}")
        self.paths = [Path(os.path.abspath(p)) for p in paths]
        self.concurrency = concurrency
        self.max_orders = max_orders
        self.random_delay = random_delay
        self.breaker_threshold = breaker_threshold
        self.timeout = timeout
        self._insecure, self._environ = insecure, environ
        self._default_key = default_account_key
        #: Per directory, the tree root up to which its parents must be trusted
        #: (:meth:`ManagedCertificate.open`'s ``tree_root``); a directory not listed: itself.
        self._tree_roots = dict(tree_roots or {})
        self._sleep = sleep
        self._rng = rng or random.SystemRandom()

    def _delay(self) -> None:
        if self.random_delay <= 0:
            return
        wait = self._rng.uniform(0.0, self.random_delay)
        log.info("waiting %.1f s (random delay) before the first request", wait)
        self._sleep(wait)

    def renew(
        self,
        *,
        force: bool = False,
        dry_run: bool = False,
        reuse_key: bool = False,
        refresh_ari: bool = False,
    ) -> FleetReport:
        """Renew what is due; never raises for one directory's failure (its result says).
        ``refresh_ari`` asks every certificate's ARI window anew (in the planning step)."""
        started = now_utc()
        results: dict[int, RenewalResult] = {}
        certs: dict[int, ManagedCertificate] = {}
        for index, path in enumerate(self.paths):
            try:
                certs[index] = ManagedCertificate.open(
                    path, environ=self._environ, insecure=self._insecure,
                    default_account_key=self._default_key,
                    tree_root=self._tree_roots.get(path),
                )  # fmt: skip
            except AcmeliteError as exc:
                log.error("%s: %s", path, exc)
                results[index] = RenewalResult(
                    path=path, status="failed", reason=str(exc), error=exc
                )
        pool = ClientPool(insecure=self._insecure, on_first_open=self._delay,
                          breaker_threshold=self.breaker_threshold)  # fmt: skip
        gate = _Gate(self.max_orders)

        def one(
            index: int, before_order: Callable[..., Hold | None], *, refresh: bool = False
        ) -> RenewalResult:
            cert = certs[index]
            try:
                return cert.renew(
                    force=force, dry_run=dry_run, reuse_key=reuse_key, timeout=self.timeout,
                    refresh_ari=refresh, shared=pool.shared(cert.config),
                    before_order=before_order,
                )  # fmt: skip
            except Exception as exc:  # one directory never stops the others
                log.exception("%s: renewal crashed", cert.path)
                error = exc if isinstance(exc, AcmeliteError) else AcmeliteError(repr(exc))
                return RenewalResult(path=cert.path, status="failed", reason=str(error),
                                     names=cert.config.names, error=error)  # fmt: skip

        def order(cert: ManagedCertificate, decision: Decision) -> Hold | None:
            shared = pool.shared(cert.config)
            if shared.breaker is not None and shared.breaker.is_open:
                return unavailable(shared.breaker.error())  # no order spent on it
            return gate.ask(shared.account)

        def renew_one(index: int) -> RenewalResult:
            result = one(index, order)
            if result.status == "rate-limited" and result.error is not None:
                # The CA said so itself: hold back every later order to this account.
                until = result.next_check or now_utc()
                gate.rate_limited(pool.shared(certs[index].config).account, until)
            return result

        opened = sorted(certs)
        try:
            with ThreadPoolExecutor(max_workers=self.concurrency) as workers:
                plan = workers.map(lambda i: one(i, _hold_for_plan, refresh=refresh_ari), opened)
                planned = dict(zip(opened, plan, strict=True))
                results.update(planned)
                due = sorted((i for i in opened if planned[i].status == "due"),
                             key=lambda i: _urgency(planned[i]))  # fmt: skip
                if due and not dry_run:
                    log.info("%d of %d certificate(s) due", len(due), len(self.paths))
                    held = _spend_budget(due, gate, workers, renew_one, results)
                    defer = _deferral(self.max_orders)
                    results.update(zip(held, workers.map(lambda i: one(i, defer), held),
                                       strict=True))  # fmt: skip
            requests = dict(pool.request_counts())
            down = pool.unavailable()
        finally:
            pool.close()
        done = tuple(results[i] for i in range(len(self.paths)))
        return FleetReport(
            results=done, started=started, finished=now_utc(), requests=requests,
            rate_limited=dict(gate.blocked), unavailable=down, orders=gate.orders,
        )  # fmt: skip


def _spend_budget(
    due: list[int], gate: _Gate, workers: ThreadPoolExecutor,
    renew_one: Callable[[int], RenewalResult], results: dict[int, RenewalResult],
) -> list[int]:  # fmt: skip
    """Renew ``due`` (most urgent first) within the order budget; the ones left over.

    The budget goes to the most urgent, whichever thread is first: in waves of as many as
    there are orders left. A certificate held back before its order (its account
    rate-limited earlier in the run, its CA unavailable) spends none, and leaves its turn
    to the next wave, the next most urgent; one cleared to order counts, whatever follows."""
    pending = list(due)
    while pending:
        left = len(pending) if gate.max_orders is None else gate.max_orders - gate.orders
        if left <= 0:
            break
        wave, pending = pending[:left], pending[left:]
        results.update(zip(wave, workers.map(renew_one, wave), strict=True))
    return pending


def summary(report: FleetReport) -> str:
    """``3 renewed, 120 not-due, 1 failed`` (statuses that occurred, in :data:`STATUSES` order)."""
    counts = report.counts()
    return ", ".join(f"{n} {status}" for status, n in counts.items() if n) or "nothing"
