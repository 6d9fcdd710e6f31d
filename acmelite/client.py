"""The ACME flow (RFC 8555 §7): directory -> account -> order -> solve -> finalize -> download.

:meth:`AcmeClient.issue` tells the whole story in order; every step it takes is a public
method too, so an integrator can drive a custom flow. One client object is safe to share
between threads: one HTTP session, one nonce pool, one directory fetch.

The solve step (RFC 8555 §7.5) — why an order of N names costs about one validation:

1. fetch every authorization of the order (they are needed for the challenge tokens);
2. hand all pending challenges to the solver in one batch (a DNS solver waits for
   propagation once, for all names);
3. answer every challenge back to back, so the CA validates them all at once;
4. poll the *order*, not each authorization: one request per round tells whether all
   authorizations are valid (status ``ready``) or one failed (``invalid``), so polling
   costs the same for 1 name and for 100. Only when the order fails are the
   authorizations fetched again, to name each failed identifier and its cause.

Polling (§7.5.1) follows ``Retry-After`` when the server sends it, up to
``poll_max_retry_after`` (:data:`~acmelite.transport.MAX_POLL_WAIT`, 60 s) and never past
the deadline (a wait that would end after it ends the polling at once); otherwise it starts
at ``poll_interval`` (50 ms) and doubles up to ``poll_max_interval``, never a tight loop.
A solver that sees the CA fetch its answers (the standalone HTTP-01 server, a
``ValidationWatcher``) cuts a wait short: the order is fetched right after every answer
was fetched, and again after each later fetch (§7.5.1: don't poll before the validation
request; a CA that validates from several vantage points fetches each answer several
times), so validations that take 0-3 s end in a poll just after the last fetch, not on a
doubling schedule that may overshoot by seconds.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from . import csr as csrmod
from .accounts import AccountClient, ExternalAccountBinding
from .challenges import ChallengeTask, OrderPlan, PreflightSolver, Solver, ValidationWatcher
from .constants import DNS_CHALLENGE_TYPES
from .errors import (
    AcmeliteError,
    AuthorizationFailed,
    CleanupFailed,
    DeadlineExceeded,
    IdentifierLimitExceeded,
    InvalidInput,
    Problem,
    ProblemError,
    ProtocolError,
    SolverError,
)
from .keys import PrivateKey, b64url, generate_private_key, private_key_pem
from .models import Authorization, Challenge, Identifier, Order
from .names import is_wildcard, matches, parse_identifiers
from .storage import write_output_dir
from .transport import PEM_CHAIN
from .validation import CHALLENGE_RETRIES, FAILED_AUTHZ, Validation

__all__ = ["AcmeClient", "CertificateBundle", "ExternalAccountBinding"]

log = logging.getLogger(__name__)

#: After the CA fetched an answer, how long it gets to record the result before the
#: order is fetched (a few milliseconds on Pebble).
VALIDATION_GRACE = 0.02


@dataclass(frozen=True, slots=True, kw_only=True)
class CertificateBundle:
    """An issued certificate with its key (``key_pem`` is empty for a user-supplied CSR).

    ``cleanup_error`` is set when the solver's cleanup failed after the challenges were
    validated: the certificate is good, but the solver left something behind (its
    ``records``); ``acmelite issue`` and ``renew`` exit non-zero for it.
    """

    names: tuple[str, ...]
    key_pem: bytes = field(repr=False)
    cert_pem: bytes
    chain_pem: bytes
    certificate_url: str = ""
    order_url: str = ""
    cleanup_error: CleanupFailed | None = field(default=None, compare=False)

    @property
    def fullchain_pem(self) -> bytes:
        return self.cert_pem + self.chain_pem

    @property
    def certificate(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.cert_pem)

    def files(self) -> dict[str, bytes]:
        out = {
            "cert.pem": self.cert_pem,
            "chain.pem": self.chain_pem,
            "fullchain.pem": self.fullchain_pem,
        }
        if self.key_pem:
            out["privkey.pem"] = self.key_pem
        return out

    def write(self, out_dir: str | Path) -> Path:
        """Install the files in ``out_dir`` all at once (see :mod:`acmelite.storage`).

        Files only: for a directory that ``acmelite renew`` can renew, use
        :meth:`acmelite.managed.ManagedCertificate.create`. Raises :class:`AcmeliteError`
        when the directory cannot be written (the old files stay).
        """
        return write_output_dir(out_dir, self.files())


class AcmeClient(AccountClient):
    """An ACME client bound to one directory and one account key.

    ``AcmeClient(directory_url, account_key, ca_bundle=..., account_url=..., timeout=...)``;
    the account operations (:meth:`register`, :meth:`find_account`, :meth:`change_key`,
    :meth:`revoke_certificate`, :meth:`renewal_info`, ...) come from
    :class:`~acmelite.accounts.AccountClient`, the order flow is here.
    """

    #: How long a CA usually takes to validate the answers, in seconds: when the order has
    #: not moved for twice this long after them, its authorizations are fetched to see why.
    validation_time: float = 3.0
    #: How often a challenge left ``pending`` with an error (step-ca) is POSTed again.
    challenge_retries: int = CHALLENGE_RETRIES

    # -- orders, authorizations, challenges (RFC 8555 §7.4, §7.5) ------------------------

    def new_order(
        self,
        identifiers: Sequence[Identifier],
        *,
        profile: str | None = None,
        replaces: str | None = None,
        deadline: float | None = None,
    ) -> Order:
        payload: dict[str, object] = {"identifiers": [i.to_json() for i in identifiers]}
        if profile:
            self.check_profile(profile)
            payload["profile"] = profile
        if replaces:
            payload["replaces"] = replaces
        try:
            resp = self._post(self.directory.new_order, payload, deadline=deadline)
        except ProblemError as exc:
            too_many = _identifier_limit(exc, len(identifiers))
            if too_many is not None:
                raise too_many from exc
            raise
        if not resp.location:
            raise ProtocolError("newOrder answered without a Location header (the order URL)")
        order = Order.from_json(resp.json(), url=resp.location)
        if profile and order.profile != profile:
            if order.profile:
                raise ProtocolError(
                    f"asked for profile {profile!r}, the CA made order {order.url}"
                    f" with profile {order.profile!r}"
                )
            log.warning(
                "order %s does not say which profile it has (asked for %r): the CA may have"
                " ignored it",
                order.url,
                profile,
            )
        return order

    def check_profile(self, profile: str) -> None:
        """Refuse a profile the directory does not list (draft-ietf-acme-profiles §3).

        A directory without ``meta.profiles`` offers none: a CA that does not know profiles
        would ignore the request and issue its default certificate.
        """
        offered = self.directory.profiles
        if not offered:
            raise InvalidInput(
                f"profile {profile!r}: this CA offers no profiles ({self.directory_url}"
                " lists none in meta.profiles); leave the profile out"
            )
        if profile not in offered:
            listing = "; ".join(
                f"{name} ({text})" if text else name for name, text in offered.items()
            )
            raise InvalidInput(
                f"profile {profile!r} is not offered by {self.directory_url};"
                f" its profiles: {listing}"
            )

    def get_order(self, url: str, *, deadline: float | None = None) -> Order:
        return Order.from_json(self._post(url, None, deadline=deadline).json(), url=url)

    def get_authorization(self, url: str, *, deadline: float | None = None) -> Authorization:
        return Authorization.from_json(self._post(url, None, deadline=deadline).json(), url=url)

    def answer_challenge(self, challenge: Challenge, *, deadline: float | None = None) -> Challenge:
        """Tell the CA the challenge is ready to validate (RFC 8555 §7.5.1): POST ``{}``."""
        return Challenge.from_json(self._post(challenge.url, {}, deadline=deadline).json())

    def challenge_tasks(
        self,
        authorizations: Iterable[Authorization],
        challenge_type: str,
        *,
        fallback: str | None = None,
    ) -> list[ChallengeTask]:
        """One :class:`ChallengeTask` per pending authorization, for ``challenge_type``, or
        for ``fallback`` where the CA offers no ``challenge_type`` challenge (logged).

        An authorization that is ``valid`` already (validated for this account before, or
        pre-validated by the CA, as Sectigo does) gets none, whatever challenges it lists.
        """
        tasks = []
        for authz in authorizations:
            if authz.status == "valid":
                continue
            if authz.status != "pending":
                raise AuthorizationFailed([authz.failure()])
            chal = authz.challenge(challenge_type)
            offered = ", ".join(c.type for c in authz.challenges) or "none"
            if chal is None and fallback is not None:
                chal = authz.challenge(fallback)
                if chal is not None:
                    log.warning(
                        "%s: the CA offers no %s challenge (offered: %s); answering %s instead",
                        authz.name, challenge_type, offered, fallback,
                    )  # fmt: skip
            if chal is None:
                hint = " (wildcards need a DNS challenge)" if authz.wildcard else ""
                raise InvalidInput(
                    f"{authz.name}: the CA offers no {challenge_type} challenge{hint};"
                    f" offered: {offered}"
                )
            tasks.append(
                ChallengeTask(
                    identifier=authz.identifier,
                    challenge=chal,
                    wildcard=authz.wildcard,
                    key_authorization=self.account_key.key_authorization(chal.token),
                    account_url=self.account_url,
                )
            )
        return tasks

    def authorize(
        self,
        order: Order,
        solver: Solver,
        *,
        challenge_type: str | None = None,
        fallback: Solver | None = None,
        fallback_type: str | None = None,
        deadline: float | None = None,
    ) -> Order:
        """Solve every authorization of ``order`` at once; return the order once ``ready``.

        ``solver`` answers ``challenge_type`` (default: its own type; a dns-01 solver also
        answers dns-account-01); ``fallback`` answers ``fallback_type`` (default: its own)
        where the CA offers no ``challenge_type`` challenge.

        An order that is ``ready`` or ``valid`` already needs nothing. Authorizations that
        are ``valid`` already are skipped: no challenge answered, no solver call for them.
        An identifier that fails ends the wait at once, with the CA's reason (see
        :mod:`acmelite.validation` for where CAs put it). A cleanup that fails after a
        success is logged; :meth:`issue` also returns it (``cleanup_error``).
        """
        return self._authorize(order, solver, challenge_type=challenge_type, fallback=fallback,
                               fallback_type=fallback_type, deadline=deadline)[0]  # fmt: skip

    def _authorize(
        self,
        order: Order,
        solver: Solver,
        *,
        challenge_type: str | None,
        fallback: Solver | None,
        fallback_type: str | None,
        deadline: float | None,
    ) -> tuple[Order, CleanupFailed | None]:
        if order.status in ("ready", "valid"):
            log.info("order %s is %s already: nothing to validate", order.url, order.status)
            return order, None
        if order.status == "invalid":
            raise self._order_failure(order, deadline=deadline)
        kind = challenge_type or solver.challenge_type
        other = (fallback_type or fallback.challenge_type) if fallback is not None else None
        authzs = [self.get_authorization(u, deadline=deadline) for u in order.authorizations]
        tasks = self.challenge_tasks(authzs, kind, fallback=other)
        if len(tasks) < len(authzs):
            log.info("%d authorization(s) valid already", len(authzs) - len(tasks))
        groups: list[tuple[Solver, list[ChallengeTask]]] = []  # each solver, its tasks
        for answerer, answered in ((solver, kind), (fallback, other)):
            group = [t for t in tasks if t.challenge.type == answered]
            if answerer is not None and group:
                groups.append((answerer, group))
        left: list[CleanupFailed] = []
        if tasks:
            failure: BaseException | None = None
            started: list[tuple[Solver, list[ChallengeTask]]] = []
            # challenge_tasks() keeps the order of the authorizations it did not skip.
            pending = [a.url for a in authzs if a.status != "valid"]
            try:
                for answerer, group in groups:
                    log.info(
                        "publishing %d %s answer(s): %s",
                        len(group),
                        group[0].challenge.type,
                        ", ".join(t.name for t in group),
                    )
                    started.append((answerer, group))
                    answerer.perform(group)
                validation = Validation(tasks, pending, retries=self.challenge_retries)
                for task in tasks:
                    validation.answered(
                        task, self.answer_challenge(task.challenge, deadline=deadline)
                    )
                validation.check()
                # One solver that sees the CA's fetches may cut the polling short.
                wake = _fetched_waiter(*groups[0], self._sleep) if len(groups) == 1 else None
                order = self._await_validation(order, validation, wake=wake, deadline=deadline)
            except BaseException as exc:
                failure = exc
                raise
            finally:
                for answerer, group in reversed(started):
                    cleanup_error = self._cleanup(answerer, group, failure)
                    if cleanup_error is not None:
                        left.append(cleanup_error)
        else:
            order = self.poll_order(order, ("ready", "valid", "invalid"), deadline=deadline)
        if order.status == "invalid":
            raise self._order_failure(order, deadline=deadline)
        log.info("all %d authorization(s) valid", len(authzs))
        return order, _one_cleanup_failure(left)

    def order_plan(self, identifiers: Sequence[Identifier]) -> OrderPlan:
        """What a :class:`~acmelite.challenges.PreflightSolver` learns before the order."""
        return OrderPlan(
            identifiers=tuple(identifiers),
            account_url=self.account_url,
            directory_url=self.directory_url,
            issuer_domain_names=self.directory.caa_identities,
        )

    def _cleanup(
        self, solver: Solver, tasks: Sequence[ChallengeTask], failure: BaseException | None
    ) -> CleanupFailed | None:
        """Run the solver's cleanup; its failure is logged and returned, never raised."""
        try:
            solver.cleanup(tasks)
        except AcmeliteError as exc:
            # Reported, never raised over the original error (if any) or a success; the
            # same error as the one that ends the run is said once, by the run (a DNS
            # solver's CleanupFailed adds the records it could not remove to it).
            same = failure is not None and str(exc).startswith(str(failure))
            log.log(logging.DEBUG if same else logging.WARNING, "cleanup failed: %s", exc)
            if isinstance(exc, CleanupFailed):
                return exc
            identifiers = exc.identifiers if isinstance(exc, SolverError) else ()
            return CleanupFailed(str(exc), identifiers=identifiers)
        return None

    def _order_failure(self, order: Order, *, deadline: float | None) -> AcmeliteError:
        failed = []
        for url in order.authorizations:
            authz = self.get_authorization(url, deadline=deadline)
            if authz.status in FAILED_AUTHZ or any(c.status == "invalid" for c in authz.challenges):
                failed.append(authz.failure())
        if failed:
            return AuthorizationFailed(failed)
        if order.error is not None:
            return ProblemError(order.error, url=order.url)
        return ProtocolError(f"order {order.url} became invalid without saying why")

    # Theory of operation — waiting for the validations. The order is polled on the schedule
    # of poll_order() (Retry-After, else 50 ms doubling to poll_max_interval, cut short when
    # the solver sees the CA fetch an answer). Between two polls, each at its own time:
    #
    # * challenges step-ca left "pending" with an error are POSTed again, 1 s and then 2 s
    #   later (challenge_retries times); still failing, the identifier fails;
    # * when the order is still pending 2 x validation_time after the answers (then 4x,
    #   8x, ...), the authorizations not known to be settled are fetched: a CA may fail a
    #   challenge or an authorization and never the order;
    # * just before the deadline they are fetched a last time, so that the error says for
    #   each identifier what the CA last said.
    #
    # On the happy path none of these comes due before the order is ready, so the requests
    # are those of polling the order alone (tests/integration/test_request_budget.py).
    def _await_validation(
        self,
        order: Order,
        validation: Validation,
        *,
        wake: Callable[[float], bool] | None,
        deadline: float | None,
    ) -> Order:
        start = self._clock()
        last_call = None
        if deadline is not None:
            last_call = deadline - min(1.0, max(0.0, deadline - start) / 10)
        interval = self.poll_interval
        poll_at, asked = start + interval, False
        retry_gap = 1.0
        retry_at = start + retry_gap
        check_gap = 2 * self.validation_time
        check_at = start + check_gap
        while order.status not in ("ready", "valid", "invalid"):
            validation.check()
            retrying = validation.to_retry()
            due = min(poll_at, check_at, retry_at if retrying else math.inf)
            if last_call is not None and due > last_call:
                self._last_look(validation, deadline)
                validation.check()
                raise validation.at_deadline(order)
            event = "retry" if retrying and due == retry_at else "check"
            if due == poll_at:
                event = "poll"
            now = self._clock()
            if due > now:
                if event == "poll" and wake is not None and not asked:
                    wake(due - now)  # returns early when the CA fetched an answer
                else:
                    self._sleep(due - now)
            if event == "retry":
                self._answer_again(validation, retrying, deadline)
                retry_gap *= 2
                retry_at = self._clock() + retry_gap
            elif event == "check":
                log.info("order %s unchanged; looking at its authorizations", order.url)
                self._look(validation, deadline)
                check_gap *= 2
                check_at = self._clock() + check_gap
            else:
                resp = self._post(order.url, None, deadline=deadline)
                order = Order.from_json(resp.json(), url=order.url)
                interval = min(interval * 2, self.poll_max_interval)
                told = resp.retry_after
                asked = told is not None
                wait = interval if told is None else min(told, self.poll_max_retry_after)
                poll_at = self._clock() + wait
        return order

    def _answer_again(
        self, validation: Validation, tasks: Sequence[ChallengeTask], deadline: float | None
    ) -> None:
        """POST each challenge again (step-ca validates again only then).

        A CA that refuses a second POST (Pebble: "only status pending") is asked for the
        authorization instead, which says how the validation went.
        """
        for task in tasks:
            log.info("%s: not validated yet; asking the CA to try again", task.name)
            try:
                answer = self.answer_challenge(task.challenge, deadline=deadline)
            except ProblemError as exc:
                log.debug("%s: the second answer was refused (%s)", task.name, exc)
                validation.answered(task, None)
                validation.authorization(
                    self.get_authorization(validation.authz_url(task), deadline=deadline)
                )
            else:
                validation.answered(task, answer)

    def _look(self, validation: Validation, deadline: float | None) -> None:
        """Fetch the authorizations of the identifiers not settled yet (POST-as-GET)."""
        for url in validation.unsettled():
            validation.authorization(self.get_authorization(url, deadline=deadline))

    def _last_look(self, validation: Validation, deadline: float | None) -> None:
        """:meth:`_look` at the deadline: what it cannot learn, the error says without."""
        try:
            self._look(validation, deadline)
        except AcmeliteError as exc:
            log.debug("last look at the authorizations failed: %s", exc)

    def poll_order(
        self,
        order: Order,
        until: Sequence[str],
        *,
        deadline: float | None = None,
        retry_after: float | None = None,
        wake: Callable[[float], bool] | None = None,
    ) -> Order:
        """Re-fetch ``order`` until its status is one of ``until`` (RFC 8555 §7.1.6).

        ``order`` was just fetched or changed, so the first fetch comes after a short wait
        (or the ``retry_after`` its response asked for), not at once. ``wake(seconds)``, if
        given, is waited on instead of a backoff sleep (never instead of a Retry-After): it
        returns early when the order has probably changed (the CA fetched an answer).
        There is no limit of its own besides ``deadline``: a CA may stay ``processing``
        for minutes (ZeroSSL does).
        """
        interval = self.poll_interval
        wait = interval if retry_after is None else min(retry_after, self.poll_max_retry_after)
        asked = retry_after is not None
        while order.status not in until:
            if deadline is not None and self._clock() + wait > deadline:
                raise _still(order, wait if asked else None)
            if wake is None or asked:
                self._sleep(wait)
            else:
                wake(wait)
            resp = self._post(order.url, None, deadline=deadline)
            order = Order.from_json(resp.json(), url=order.url)
            interval = min(interval * 2, self.poll_max_interval)
            told = resp.retry_after
            asked = told is not None
            wait = interval if told is None else min(told, self.poll_max_retry_after)
        return order

    # -- finalize and download (RFC 8555 §7.4, §7.4.2) -----------------------------------

    def finalize(
        self, order: Order, csr: x509.CertificateSigningRequest, *, deadline: float | None = None
    ) -> Order:
        """Send the CSR and wait until the certificate is issued (order ``valid``)."""
        der = csr.public_bytes(serialization.Encoding.DER)
        resp = self._post(order.finalize, {"csr": b64url(der)}, deadline=deadline)
        order = Order.from_json(resp.json(), url=order.url)
        order = self.poll_order(
            order, ("valid", "invalid"), deadline=deadline, retry_after=resp.retry_after
        )
        if order.status != "valid" or not order.certificate:
            raise ProblemError(order.error or Problem(detail="finalization failed"), url=order.url)
        return order

    def download_certificate(
        self, url: str, *, preferred_chain: str | None = None, deadline: float | None = None
    ) -> bytes:
        """The PEM chain at ``url``, every certificate kept, in the CA's order.

        With ``preferred_chain`` (an issuer's common name), the chain among the default and
        its alternates (RFC 8555 §7.4.2) whose topmost issuer has that name; failing that,
        the first in which any certificate has that issuer; else the default chain.
        """
        resp = self._post(url, None, accept=PEM_CHAIN, deadline=deadline)
        pem = resp.content
        issuers = _issuers(csrmod.split_pem_chain(pem, source=url))
        if not preferred_chain or issuers[-1] == preferred_chain:
            return pem
        fallback = pem if preferred_chain in issuers else None
        for alt in resp.link("alternate"):
            alt_pem = self._post(alt, None, accept=PEM_CHAIN, deadline=deadline).content
            alt_issuers = _issuers(csrmod.split_pem_chain(alt_pem, source=alt))
            if alt_issuers[-1] == preferred_chain:
                log.info("using the alternate chain whose top is issued by %r", preferred_chain)
                return alt_pem
            if fallback is None and preferred_chain in alt_issuers:
                fallback = alt_pem
        if fallback is not None:
            log.info("using a chain with a certificate issued by %r", preferred_chain)
            return fallback
        log.info("no chain issued by %r; using the default chain", preferred_chain)
        return pem

    # -- the whole story ----------------------------------------------------------------

    def issue(
        self,
        names: Sequence[str],
        *,
        solver: Solver,
        key_type: str = "ec256",
        private_key: PrivateKey | None = None,
        csr: x509.CertificateSigningRequest | None = None,
        profile: str | None = None,
        replaces: str | None = None,
        preferred_chain: str | None = None,
        timeout: float | None = None,
        challenge_type: str | None = None,
        fallback: Solver | None = None,
        fallback_type: str | None = None,
    ) -> CertificateBundle:
        """Get a certificate for ``names`` (validated first; wildcards need a DNS challenge).

        0. let the solvers check what they can (:class:`~acmelite.challenges.PreflightSolver`:
        a persistent record) — a failure here comes before any order,
        1. order, 2. solve every authorization at once (``challenge_type``, ``fallback``:
        see :meth:`authorize`), 3. finalize with a CSR (ours, or ``csr``), 4. download,
        5. check that the certificate matches the key and covers every name.
        A solver cleanup that failed after the validation does not stop the order: it is
        the bundle's ``cleanup_error``.
        """
        if isinstance(names, str):
            raise TypeError("names must be a sequence of names, not one string")
        identifiers = parse_identifiers(names)
        kind = challenge_type or solver.challenge_type
        if kind not in DNS_CHALLENGE_TYPES:
            wild = [i.value for i in identifiers if is_wildcard(i.value)]
            if wild:
                raise InvalidInput(
                    f"{wild[0]}: wildcard names can only be validated by a DNS challenge"
                    f" (dns-01, dns-account-01, dns-persist-01), not {kind}"
                )
        else:
            ips = [i.value for i in identifiers if i.type == "ip"]
            if ips:
                raise InvalidInput(
                    f"{ips[0]} is an IP address: {kind} cannot validate IP identifiers"
                    " (RFC 8738 §7); use http-01 or tls-alpn-01"
                )
        deadline = None if timeout is None else self._clock() + timeout
        if not self.account_url:
            raise InvalidInput("no account: call register() (or pass account_url) first")
        if csr is None:
            key = private_key or generate_private_key(key_type)
            csr = csrmod.make_csr(key, identifiers)
            key_pem = private_key_pem(key)
        else:
            key_pem = b""
        for hook in (solver, fallback):
            if isinstance(hook, PreflightSolver):
                hook.preflight(self.order_plan(identifiers))
        order = self.new_order(identifiers, profile=profile, replaces=replaces, deadline=deadline)
        log.info("order %s: %d name(s)", order.url, len(identifiers))
        reused = order.status == "valid"
        left: CleanupFailed | None = None
        if reused:
            # A CA that hands back an order it finished before: its certificate is usable
            # only if it is for this request's key.
            if not order.certificate:
                raise ProtocolError(f"order {order.url} is valid but names no certificate")
            log.info("order %s is valid already: downloading its certificate", order.url)
        else:
            order, left = self._authorize(
                order, solver, challenge_type=kind, fallback=fallback,
                fallback_type=fallback_type, deadline=deadline,
            )  # fmt: skip
            log.info("finalizing")
            order = self.finalize(order, csr, deadline=deadline)
            log.info("downloading certificate")
        pem = self.download_certificate(
            order.certificate, preferred_chain=preferred_chain, deadline=deadline
        )
        chain = csrmod.split_pem_chain(pem, source=order.certificate)
        if reused and not csrmod.public_keys_match(chain[0], csr):
            raise ProtocolError(
                f"the CA answered the new order with order {order.url}, finished before, whose"
                " certificate is for another key; acmelite cannot use it (issue with the key"
                " it was made for, or retry once the CA has let that order expire)"
            )
        _check_issued(chain[0], csr, [i.value for i in identifiers])
        leaf_end = pem.index(b"-----END CERTIFICATE-----") + len(b"-----END CERTIFICATE-----")
        cert_pem = pem[:leaf_end].strip() + b"\n"
        chain_pem = pem[leaf_end:].strip() + b"\n" if pem[leaf_end:].strip() else b""
        return CertificateBundle(
            names=tuple(i.value for i in identifiers),
            key_pem=key_pem,
            cert_pem=cert_pem,
            chain_pem=chain_pem,
            certificate_url=order.certificate,
            order_url=order.url,
            cleanup_error=left,
        )

    def issue_many(
        self, requests: Sequence[Mapping[str, object]], *, max_workers: int | None = None
    ) -> list[CertificateBundle | AcmeliteError]:
        """Run several :meth:`issue` calls at once (keyword arguments per request).

        At most ``max_workers`` (default :attr:`max_concurrency`) orders are in flight;
        they share this client's connections, nonce pool and account. One solver object
        may serve them all: the built-in solvers withdraw only their own answers.
        """

        def one(kwargs: Mapping[str, object]) -> CertificateBundle | AcmeliteError:
            try:
                return self.issue(**kwargs)  # type: ignore[arg-type]
            except AcmeliteError as exc:
                return exc

        workers = self.max_concurrency if max_workers is None else max(1, max_workers)
        with ThreadPoolExecutor(max_workers=workers) as pool:
            return list(pool.map(one, requests))


def _fetched_waiter(
    solver: Solver, tasks: Sequence[ChallengeTask], sleep: Callable[[float], None]
) -> Callable[[float], bool] | None:
    """``wake`` for :meth:`AcmeClient.poll_order` when the solver sees the CA's fetches:
    wait until the CA fetched an answer, then :data:`VALIDATION_GRACE` for the rest of
    that burst (one fetch per vantage point), which the next wait does not count again."""
    if not isinstance(solver, ValidationWatcher):
        return None
    watcher, seen = solver, 0

    def wake(seconds: float) -> bool:
        nonlocal seen
        now = watcher.wait_fetched(tasks, seen, seconds)
        if now == seen:
            return False
        sleep(VALIDATION_GRACE)
        seen = watcher.wait_fetched(tasks, now, 0.0)
        return True

    return wake


def _issuers(chain: Sequence[x509.Certificate]) -> list[str]:
    """The issuer common name of each certificate, leaf first ("" for an issuer without)."""
    out = []
    for cert in chain:
        cns = cert.issuer.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
        out.append(str(cns[0].value) if cns else "")
    return out


def _still(order: Order, retry_after: float | None) -> DeadlineExceeded:
    """The error for an order that did not reach the state waited for before the deadline."""
    names = ", ".join(i.value for i in order.identifiers)
    if order.status == "processing":
        asked = ""
        if retry_after is not None:
            asked = f"; it asked to be polled again in {retry_after:.0f} s"
        return DeadlineExceeded(
            f"the CA is still processing order {order.url} ({names}) at the deadline{asked};"
            " it may still issue the certificate later"
        )
    return DeadlineExceeded(f"order {order.url} still {order.status} at the deadline ({names})")


#: "Order cannot contain more than 100 DNS names", "identifier limit exceeded (max 50)".
_LIMIT_WORDS = re.compile(r"too many|more than|limit|maximum|at most|exceed", re.I)
_PLURAL_IDENTIFIERS = re.compile(r"identifiers|names|domains|SANs|entries", re.I)
_NOT_A_COUNT = re.compile(r"length|characters|label|long", re.I)
_LIMIT_NUMBER = re.compile(
    r"(?:more than|at most|maximum(?: of| is)?|max\.?|limit(?: of| is)?|up to)\s*\(?\s*(\d+)",
    re.I,
)


def _identifier_limit(exc: ProblemError, requested: int) -> IdentifierLimitExceeded | None:
    """The newOrder refusal ``exc`` as an :class:`IdentifierLimitExceeded`, if it is one."""
    problem = exc.problem
    if requested < 2 or problem.short_type not in ("rejectedIdentifier", "malformed"):
        return None
    detail = problem.detail
    if not (_LIMIT_WORDS.search(detail) and _PLURAL_IDENTIFIERS.search(detail)):
        return None
    if _NOT_A_COUNT.search(detail):
        return None
    number = _LIMIT_NUMBER.search(detail)
    limit = int(number.group(1)) if number else None
    if limit is not None and limit >= requested:
        return None
    return IdentifierLimitExceeded(problem, url=exc.url, limit=limit, requested=requested)


def _check_issued(
    leaf: x509.Certificate, csr: x509.CertificateSigningRequest, names: Sequence[str]
) -> None:
    if not csrmod.public_keys_match(leaf, csr):
        raise ProtocolError("the CA issued a certificate for another public key than the CSR's")
    sans = csrmod.certificate_names(leaf)
    missing = [n for n in names if not any(matches(n, san) or n == san for san in sans)]
    if missing:
        raise ProtocolError(
            f"the issued certificate does not cover {', '.join(missing)}"
            f" (its names: {', '.join(sans)})"
        )
    now = dt.datetime.now(dt.timezone.utc)
    if leaf.not_valid_after_utc < now:
        raise ProtocolError("the CA issued a certificate that has already expired")


def _one_cleanup_failure(failures: Sequence[CleanupFailed]) -> CleanupFailed | None:
    """The cleanup failures of an order's solvers as one (None when there is none)."""
    if len(failures) <= 1:
        return failures[0] if failures else None
    return CleanupFailed(
        "; ".join(str(f) for f in failures),
        records=[r for f in failures for r in f.records],
        identifiers=[i for f in failures for i in f.identifiers],
    )
