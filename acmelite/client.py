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
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from . import csr as csrmod
from . import jws
from .errors import (
    AcmeliteError,
    AuthorizationFailed,
    DeadlineExceeded,
    InvalidInput,
    Problem,
    ProblemError,
    ProtocolError,
)
from .keys import AccountKey, PrivateKey, b64url, generate_private_key, private_key_pem
from .models import Account, Authorization, Challenge, Directory, Identifier, Order
from .names import matches, parse_identifiers
from .solvers.base import ChallengeTask, Solver, ValidationWatcher
from .storage import write_output_dir
from .transport import Response, Transport

__all__ = [
    "REVOCATION_REASONS",
    "AcmeClient",
    "CertificateBundle",
    "ExternalAccountBinding",
    "revocation_reason_code",
]

log = logging.getLogger(__name__)

PEM_CHAIN = "application/pem-certificate-chain"
#: After the CA fetched an answer, how long it gets to record the result before the
#: order is fetched (a few milliseconds on Pebble).
VALIDATION_GRACE = 0.02


@dataclass(frozen=True, slots=True, kw_only=True)
class ExternalAccountBinding:
    """EAB credentials from the CA (RFC 8555 §7.3.4). The key never appears in ``repr``."""

    kid: str
    hmac_key: str = field(repr=False)
    alg: str = "HS256"


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
        """Install the files in ``out_dir`` all at once (see :mod:`acmelite.storage`)."""
        return write_output_dir(out_dir, self.files())


class AcmeClient:
    """An ACME client bound to one directory and one account key."""

    def __init__(
        self,
        directory_url: str,
        account_key: AccountKey,
        *,
        ca_bundle: str | None = None,
        account_url: str | None = None,
        timeout: float = 30.0,
        transport: Transport | None = None,
        poll_interval: float = 0.05,
        poll_max_interval: float = 5.0,
        sleep: Callable[[float], None] = time.sleep,
        max_concurrency: int = 8,
    ) -> None:
        self.directory_url = directory_url
        self.account_key = account_key
        self.account_url = account_url or ""
        #: How many orders :meth:`issue_many` runs at once; the session keeps as many
        #: connections alive.
        self.max_concurrency = max(1, max_concurrency)
        self.transport = transport or Transport(
            ca_bundle=ca_bundle, timeout=timeout, max_connections=self.max_concurrency
        )
        self.poll_interval = poll_interval
        self.poll_max_interval = poll_max_interval
        self._sleep = sleep
        self._directory: Directory | None = None
        self._dir_lock = threading.Lock()

    def close(self) -> None:
        self.transport.close()

    def __enter__(self) -> AcmeClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- directory and account (RFC 8555 §7.1.1, §7.3) ----------------------------------

    @property
    def directory(self) -> Directory:
        """The directory, fetched once per client."""
        with self._dir_lock:
            if self._directory is None:
                resp = self.transport.get(self.directory_url)
                self._directory = Directory.from_json(resp.json())
                self.transport.new_nonce_url = self._directory.new_nonce
            return self._directory

    def _post(
        self,
        url: str,
        payload: object | None,
        *,
        use_jwk: bool = False,
        accept: str | None = None,
        deadline: float | None = None,
    ) -> Response:
        if not use_jwk and not self.account_url:
            raise InvalidInput("no account: call register() (or pass account_url) first")
        kid = None if use_jwk else self.account_url
        key = self.account_key
        return self.transport.post(
            url,
            lambda nonce: jws.sign_request(key, url=url, nonce=nonce, payload=payload, kid=kid),
            as_get=payload is None,
            accept=accept,
            deadline=deadline,
        )

    def register(
        self,
        *,
        contact: Sequence[str] = (),
        agree_tos: bool = False,
        eab: ExternalAccountBinding | None = None,
        only_return_existing: bool = False,
    ) -> Account:
        """Create the account, or find the existing one for this key (RFC 8555 §7.3, §7.3.1)."""
        directory = self.directory
        payload: dict[str, object] = {}
        if only_return_existing:
            payload["onlyReturnExisting"] = True
        else:
            payload["termsOfServiceAgreed"] = agree_tos
            if contact:
                payload["contact"] = _contact_urls(contact)
            if eab is not None:
                payload["externalAccountBinding"] = jws.eab_jws(
                    self.account_key,
                    kid=eab.kid,
                    hmac_key_b64=eab.hmac_key,
                    url=directory.new_account,
                    alg=eab.alg,
                )
        resp = self._post(directory.new_account, payload, use_jwk=True)
        if not resp.location:
            raise ProtocolError("newAccount answered without a Location header (the account URL)")
        self.account_url = resp.location
        account = Account.from_json(resp.json(), url=resp.location)
        log.info("account %s (%s)", account.url, "created" if resp.status == 201 else "existing")
        return account

    # -- account management (RFC 8555 §7.3.1, §7.3.2, §7.3.5, §7.3.6) --------------------
    #
    # Each method acts on the account of ``account_key``. The lookup needs only the key;
    # the others are signed with ``kid``, the account URL, which is looked up first when
    # this client was not given it.

    def find_account(self) -> Account:
        """The existing account of this key, never a new one (RFC 8555 §7.3.1).

        A key the CA knows no account for raises :class:`ProblemError` whose
        ``problem.short_type`` is ``accountDoesNotExist``.
        """
        return self.register(only_return_existing=True)

    def get_account(self) -> Account:
        """The account as the CA holds it now: POST-as-GET to the account URL (RFC 8555 §7.3)."""
        url = self._account()
        return Account.from_json(self._post(url, None).json(), url=url)

    def update_account(self, *, contact: Sequence[str]) -> Account:
        """Replace the account's contact URLs (RFC 8555 §7.3.2); ``()`` removes them all.

        A bare e-mail address becomes a ``mailto:`` URL.
        """
        url = self._account()
        resp = self._post(url, {"contact": _contact_urls(contact)})
        return Account.from_json(resp.json(), url=url)

    def deactivate_account(self) -> Account:
        """Deactivate the account for good (RFC 8555 §7.3.6).

        The CA then refuses every request signed by this key; there is no way back, and
        a new account needs a new key.
        """
        url = self._account()
        account = Account.from_json(self._post(url, {"status": "deactivated"}).json(), url=url)
        if account.status != "deactivated":
            raise ProtocolError(f"deactivation of {url} answered status {account.status!r}")
        log.info("account %s deactivated", url)
        return account

    def change_key(self, new_key: AccountKey) -> None:
        """Replace the account key by ``new_key`` (RFC 8555 §7.3.5); this client then signs with it.

        The request's payload is itself a JWS: signed by the new key with ``jwk`` and no
        nonce in its header, over ``{"account": <account URL>, "oldKey": <old JWK>}``, with
        the same ``url`` as the outer request, which the old key signs with ``kid``.
        ``account_key`` changes only once the CA has said yes; an error leaves it alone.

        A key that already belongs to an account is refused before anything changes
        (§7.3.5 has the CA answer 409 Conflict, but Pebble 2.10 accepts such a key).
        """
        if new_key.thumbprint() == self.account_key.thumbprint():
            raise InvalidInput("the new account key is the current one; pick another key")
        url = self.directory.key_change
        if not url:
            raise ProtocolError("the CA's directory has no keyChange URL: it cannot roll keys over")
        account_url = self._account()
        holder = self._account_of(new_key)
        if holder is not None:
            raise InvalidInput(
                f"the new key already belongs to account {holder}; pick a key no account uses"
            )
        inner = _key_change_jws(self.account_key, new_key, url=url, account_url=account_url)
        self._post(url, inner)
        self.account_key = new_key
        log.info("account %s now signs with key %s", account_url, new_key.thumbprint())

    def _account(self) -> str:
        """The account URL, looked up by key (one request) when this client lacks it."""
        if not self.account_url:
            self.find_account()
        return self.account_url

    def _account_of(self, key: AccountKey) -> str | None:
        """The URL of the account ``key`` belongs to, or None (``onlyReturnExisting``)."""
        url = self.directory.new_account
        payload = {"onlyReturnExisting": True}
        try:
            resp = self.transport.post(
                url, lambda nonce: jws.sign_request(key, url=url, nonce=nonce, payload=payload)
            )
        except ProblemError as exc:
            if exc.problem.short_type == "accountDoesNotExist":
                return None
            raise
        return resp.location or url

    # -- revocation (RFC 8555 §7.6) ------------------------------------------------------

    def revoke_certificate(
        self,
        cert_der: bytes | x509.Certificate,
        reason: int | str | None = None,
        *,
        cert_key: AccountKey | PrivateKey | None = None,
    ) -> None:
        """Revoke a certificate (RFC 8555 §7.6).

        Signed by the account with ``kid`` (the CA checks that the account may revoke it),
        or, given ``cert_key`` — the certificate's own private key — with that key as
        ``jwk``: no account is needed then, the way out when the account key is lost.
        ``reason`` is a CRL reason code (RFC 5280 §5.3.1) or its name from
        :data:`REVOCATION_REASONS`. A certificate revoked before raises
        :class:`ProblemError` whose ``problem.short_type`` is ``alreadyRevoked``.
        """
        cert = _certificate(cert_der)
        serial = format(cert.serial_number, "x")
        payload: dict[str, object] = {
            "certificate": b64url(cert.public_bytes(serialization.Encoding.DER))
        }
        code = revocation_reason_code(reason)
        if code is not None:
            payload["reason"] = code
        url = self.directory.revoke_cert
        if not url:
            raise ProtocolError("the CA's directory has no revokeCert URL")
        if cert_key is None:
            self._account()
            self._post(url, payload)
        else:
            key = cert_key if isinstance(cert_key, AccountKey) else AccountKey(cert_key)
            if not csrmod.public_keys_match(cert, key.key):
                raise InvalidInput(f"the key given is not the key of certificate {serial}")
            self.transport.post(
                url, lambda nonce: jws.sign_request(key, url=url, nonce=nonce, payload=payload)
            )
        log.info("certificate %s revoked (reason %s)", serial, "none" if code is None else code)

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
            finally:
                self._cleanup(solver, tasks)
        else:
            order = self.poll_order(order, ("ready", "valid", "invalid"), deadline=deadline)
        if order.status == "invalid":
            raise self._order_failure(order, deadline=deadline)
        log.info("all %d authorization(s) valid", len(authzs))
        return order

    def _cleanup(self, solver: Solver, tasks: Sequence[ChallengeTask]) -> None:
        try:
            solver.cleanup(tasks)
        except AcmeliteError as exc:
            # Reported, never raised over the original error (if any) or a success.
            log.warning("cleanup failed: %s", exc)

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
        identifiers = parse_identifiers(names)
        if solver.challenge_type == "http-01":
            wild = [i.value for i in identifiers if i.value.startswith("*.")]
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


# -- account management and revocation helpers ---------------------------------------------

#: CRL reason codes a revocation may give (RFC 5280 §5.3.1; RFC 8555 §7.6). 7 is unused.
REVOCATION_REASONS: Mapping[str, int] = {
    "unspecified": 0,
    "keyCompromise": 1,
    "cACompromise": 2,
    "affiliationChanged": 3,
    "superseded": 4,
    "cessationOfOperation": 5,
    "certificateHold": 6,
    "removeFromCRL": 8,
    "privilegeWithdrawn": 9,
    "aACompromise": 10,
}


def revocation_reason_code(reason: int | str | None) -> int | None:
    """The CRL reason code for a code or a name of :data:`REVOCATION_REASONS` (any case)."""
    if reason is None:
        return None
    if isinstance(reason, bool):
        raise InvalidInput(f"revocation reason {reason!r} is neither a code nor a name")
    if isinstance(reason, int):
        if reason not in REVOCATION_REASONS.values():
            raise InvalidInput(f"revocation reason {reason} is not a CRL reason code (RFC 5280)")
        return reason
    by_name = {name.lower(): code for name, code in REVOCATION_REASONS.items()}
    code = by_name.get(reason.strip().lower())
    if code is None:
        raise InvalidInput(
            f"unknown revocation reason {reason!r}; use one of {', '.join(REVOCATION_REASONS)}"
        )
    return code


def _contact_urls(contact: Sequence[str]) -> list[str]:
    """Contact URLs (RFC 8555 §7.3): a bare e-mail address becomes ``mailto:``."""
    return [c if ":" in c else f"mailto:{c}" for c in contact]


def _key_change_jws(
    old_key: AccountKey, new_key: AccountKey, *, url: str, account_url: str
) -> dict[str, str]:
    """The inner JWS of keyChange (RFC 8555 §7.3.5): the new key vouches for the change.

    Its header has ``jwk`` (the new key) and ``url`` but no ``nonce`` and no ``kid``.
    """
    payload = {"account": account_url, "oldKey": old_key.public_jwk()}
    return jws.signed_object(new_key, {"jwk": new_key.public_jwk(), "url": url}, payload)


def _certificate(cert: bytes | x509.Certificate) -> x509.Certificate:
    if isinstance(cert, x509.Certificate):
        return cert
    try:
        return x509.load_der_x509_certificate(cert)
    except ValueError:
        raise InvalidInput(
            "not a DER certificate; load a PEM one with x509.load_pem_x509_certificate"
        ) from None
