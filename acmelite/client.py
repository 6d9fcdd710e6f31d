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

Polling (§7.5.1) follows ``Retry-After`` when the server sends it; otherwise it starts
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
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from . import csr as csrmod
from .accounts import AccountClient, ExternalAccountBinding
from .challenges import ChallengeTask, Solver, ValidationWatcher
from .errors import (
    AcmeliteError,
    AuthorizationFailed,
    DeadlineExceeded,
    InvalidInput,
    Problem,
    ProblemError,
    ProtocolError,
)
from .keys import PrivateKey, b64url, generate_private_key, private_key_pem
from .models import Authorization, Challenge, Identifier, Order
from .names import is_wildcard, matches, parse_identifiers
from .storage import write_output_dir

__all__ = ["AcmeClient", "CertificateBundle", "ExternalAccountBinding"]

log = logging.getLogger(__name__)

PEM_CHAIN = "application/pem-certificate-chain"
#: After the CA fetched an answer, how long it gets to record the result before the
#: order is fetched (a few milliseconds on Pebble).
VALIDATION_GRACE = 0.02


@dataclass(frozen=True, slots=True, kw_only=True)
class CertificateBundle:
    """An issued certificate with its key (``key_pem`` is empty for a user-supplied CSR)."""

    names: tuple[str, ...]
    key_pem: bytes = field(repr=False)
    cert_pem: bytes
    chain_pem: bytes
    certificate_url: str = ""
    order_url: str = ""

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
        resp = self._post(self.directory.new_order, payload, deadline=deadline)
        if not resp.location:
            raise ProtocolError("newOrder answered without a Location header (the order URL)")
        return Order.from_json(resp.json(), url=resp.location)

    def check_profile(self, profile: str) -> None:
        """Refuse a profile the directory does not list (draft-ietf-acme-profiles §3).

        A directory that lists no profiles leaves the decision to the CA's newOrder.
        """
        offered = self.directory.profiles
        if offered and profile not in offered:
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
        self, authorizations: Iterable[Authorization], challenge_type: str
    ) -> list[ChallengeTask]:
        """One :class:`ChallengeTask` per pending authorization, for ``challenge_type``."""
        tasks = []
        for authz in authorizations:
            if authz.status == "valid":
                continue
            if authz.status != "pending":
                raise AuthorizationFailed([authz.failure()])
            chal = authz.challenge(challenge_type)
            if chal is None:
                offered = ", ".join(c.type for c in authz.challenges) or "none"
                hint = " (wildcards need dns-01)" if authz.wildcard else ""
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
                )
            )
        return tasks

    def authorize(self, order: Order, solver: Solver, *, deadline: float | None = None) -> Order:
        """Solve every authorization of ``order`` at once; return the order once ``ready``."""
        authzs = [self.get_authorization(u, deadline=deadline) for u in order.authorizations]
        tasks = self.challenge_tasks(authzs, solver.challenge_type)
        if tasks:
            failure: BaseException | None = None
            try:
                log.info(
                    "publishing %d %s answer(s): %s",
                    len(tasks),
                    solver.challenge_type,
                    ", ".join(t.name for t in tasks),
                )
                solver.perform(tasks)
                for task in tasks:
                    self.answer_challenge(task.challenge, deadline=deadline)
                order = self.poll_order(
                    order,
                    ("ready", "valid", "invalid"),
                    deadline=deadline,
                    wake=_fetched_waiter(solver, tasks, self._sleep),
                )
            except BaseException as exc:
                failure = exc
                raise
            finally:
                self._cleanup(solver, tasks, failure)
        else:
            order = self.poll_order(order, ("ready", "valid", "invalid"), deadline=deadline)
        if order.status == "invalid":
            raise self._order_failure(order, deadline=deadline)
        log.info("all %d authorization(s) valid", len(authzs))
        return order

    def _cleanup(
        self, solver: Solver, tasks: Sequence[ChallengeTask], failure: BaseException | None
    ) -> None:
        try:
            solver.cleanup(tasks)
        except AcmeliteError as exc:
            # Reported, never raised over the original error (if any) or a success; the
            # same error as the one that ends the run is said once, by the run.
            same = failure is not None and str(exc) == str(failure)
            log.log(logging.DEBUG if same else logging.WARNING, "cleanup failed: %s", exc)

    def _order_failure(self, order: Order, *, deadline: float | None) -> AcmeliteError:
        failed = []
        for url in order.authorizations:
            authz = self.get_authorization(url, deadline=deadline)
            if authz.status not in ("valid", "pending"):
                failed.append(authz.failure())
        if failed:
            return AuthorizationFailed(failed)
        if order.error is not None:
            return ProblemError(order.error, url=order.url)
        return ProtocolError(f"order {order.url} became invalid without saying why")

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
        """
        interval = self.poll_interval
        wait = retry_after if retry_after is not None else interval
        asked = retry_after is not None
        while order.status not in until:
            if deadline is not None and time.monotonic() + wait > deadline:
                raise DeadlineExceeded(
                    f"order {order.url} still {order.status} at the deadline"
                    f" ({', '.join(i.value for i in order.identifiers)})"
                )
            if wake is None or asked:
                self._sleep(wait)
            else:
                wake(wait)
            resp = self._post(order.url, None, deadline=deadline)
            order = Order.from_json(resp.json(), url=order.url)
            interval = min(interval * 2, self.poll_max_interval)
            told = resp.retry_after
            asked = told is not None
            wait = told if told is not None else interval
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
        """The PEM chain at ``url``; with ``preferred_chain``, the alternate (RFC 8555 §7.4.2)
        whose topmost issuer's common name matches, else the default chain."""
        resp = self._post(url, None, accept=PEM_CHAIN, deadline=deadline)
        pem = resp.content
        csrmod.split_pem_chain(pem, source=url)
        if preferred_chain and not _chain_matches(pem, preferred_chain):
            for alt in resp.link("alternate"):
                alt_pem = self._post(alt, None, accept=PEM_CHAIN, deadline=deadline).content
                csrmod.split_pem_chain(alt_pem, source=alt)
                if _chain_matches(alt_pem, preferred_chain):
                    log.info("using the alternate chain issued by %r", preferred_chain)
                    return alt_pem
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
    ) -> CertificateBundle:
        """Get a certificate for ``names`` (validated first; wildcards need a dns-01 solver).

        1. order, 2. solve every authorization at once, 3. finalize with a CSR (ours, or
        ``csr``), 4. download, 5. check that the certificate matches the key and covers
        every name.
        """
        if isinstance(names, str):
            raise TypeError("names must be a sequence of names, not one string")
        identifiers = parse_identifiers(names)
        if solver.challenge_type == "http-01":
            wild = [i.value for i in identifiers if is_wildcard(i.value)]
            if wild:
                raise InvalidInput(f"{wild[0]}: wildcard names can only be validated by dns-01")
        if solver.challenge_type == "dns-01":
            ips = [i.value for i in identifiers if i.type == "ip"]
            if ips:
                raise InvalidInput(
                    f"{ips[0]} is an IP address: dns-01 cannot validate IP identifiers"
                    " (RFC 8738 §7); use http-01"
                )
        deadline = None if timeout is None else time.monotonic() + timeout
        if not self.account_url:
            raise InvalidInput("no account: call register() (or pass account_url) first")
        if csr is None:
            key = private_key or generate_private_key(key_type)
            csr = csrmod.make_csr(key, identifiers)
            key_pem = private_key_pem(key)
        else:
            key_pem = b""
        order = self.new_order(identifiers, profile=profile, replaces=replaces, deadline=deadline)
        log.info("order %s: %d name(s)", order.url, len(identifiers))
        order = self.authorize(order, solver, deadline=deadline)
        log.info("finalizing")
        order = self.finalize(order, csr, deadline=deadline)
        log.info("downloading certificate")
        pem = self.download_certificate(
            order.certificate, preferred_chain=preferred_chain, deadline=deadline
        )
        chain = csrmod.split_pem_chain(pem, source=order.certificate)
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


def _chain_matches(pem: bytes, issuer_cn: str) -> bool:
    certs = x509.load_pem_x509_certificates(pem)
    top = certs[-1]
    cns = [str(a.value) for a in top.issuer.get_attributes_for_oid(x509.NameOID.COMMON_NAME)]
    return issuer_cn in cns


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
