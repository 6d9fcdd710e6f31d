"""The account half of an ACME client: directory, signed requests, accounts, revocation.

:class:`AccountClient` holds what every request needs — the directory (fetched once), the
account key and URL, the transport with its nonce pool — and the operations on the account
itself (RFC 8555 §7.3), revocation (§7.6) and renewal information (RFC 9773).
:class:`~acmelite.client.AcmeClient` adds the order flow on top; use that one.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from . import csr as csrmod
from . import jws
from .constants import REVOCATION_REASONS, serial_hex
from .errors import (
    InvalidInput,
    ProblemError,
    ProtocolError,
    UnsupportedOperation,
    is_not_implemented,
)
from .keys import AccountKey, PrivateKey, b64url
from .models import Account, Directory, RenewalInfo
from .origin import Origin
from .text import printable
from .transport import MAX_POLL_WAIT, Response, Transport

__all__ = [
    "REVOCATION_REASONS",
    "AccountClient",
    "ExternalAccountBinding",
    "revocation_reason_code",
]

log = logging.getLogger(__name__)

_C = TypeVar("_C", bound="AccountClient")

#: The longest EAB key id accepted locally (CAs issue 20-50 character ones).
MAX_EAB_KID = 256
#: A ``mailto:`` contact as CAs accept it: one address, no header fields (RFC 8555 §7.3).
_MAILTO = re.compile(r"mailto:[^@\s,;:?<>]+@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?")


@dataclass(frozen=True, slots=True, kw_only=True)
class ExternalAccountBinding:
    """EAB credentials from the CA (RFC 8555 §7.3.4). The key never appears in ``repr``.

    Checked when made, before anything is sent: some CAs' EAB keys are single-use (Google
    Trust Services': one account per key, and it expires unused after 7 days), and a
    newAccount the CA refuses may still spend one, so a client-side mistake must never
    reach the CA.
    """

    kid: str
    hmac_key: str = field(repr=False)
    alg: str = "HS256"

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise :class:`InvalidInput` for a key id, MAC key or algorithm no CA accepts."""
        kid = self.kid
        if not kid.strip():
            raise InvalidInput("the EAB key id is empty")
        if not kid.isascii() or any(c.isspace() or not c.isprintable() for c in kid):
            raise InvalidInput(
                f"the EAB key id {printable(kid[:60])!r} has spaces or control characters"
                " (a pasted line break?); copy it again from your CA account"
            )
        if len(kid) > MAX_EAB_KID:
            raise InvalidInput(
                f"the EAB key id is {len(kid)} characters long; CAs issue short ones"
            )
        if kid == self.hmac_key.strip():
            raise InvalidInput(
                "the EAB key id and HMAC key are the same text; the CA gave you two values"
            )
        jws.eab_mac_key(self.hmac_key, self.alg)


class AccountClient:
    """An ACME client bound to one directory and one account key: the account operations.

    ``ca_bundle`` (a PEM file) verifies the CA's HTTPS; a missing file raises
    :class:`InvalidInput`. Without ``account_url``, :meth:`register` (or
    :meth:`find_account`) must run before any request signed by the account.
    """

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
        poll_max_retry_after: float = MAX_POLL_WAIT,
        sleep: Callable[[float], None] = time.sleep,
        max_concurrency: int = 8,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if ca_bundle and transport is None and not os.path.isfile(ca_bundle):
            raise InvalidInput(f"CA bundle {ca_bundle}: no such file")
        self.directory_url = directory_url
        self.account_key = account_key
        self.account_url = account_url or ""
        self.account_created = False
        #: How many orders :meth:`issue_many` runs at once; the session keeps as many
        #: connections alive.
        self.max_concurrency = max(1, max_concurrency)
        self.transport = transport or Transport(
            ca_bundle=ca_bundle, timeout=timeout, max_connections=self.max_concurrency
        )
        # Every URL the CA hands out must be on its directory's origin (acmelite.origin).
        self.transport.origin = Origin.of(directory_url)
        self.poll_interval = poll_interval
        self.poll_max_interval = poll_max_interval
        #: The longest a poll waits, whatever ``Retry-After`` asks (:data:`MAX_POLL_WAIT`).
        self.poll_max_retry_after = poll_max_retry_after
        self._sleep = sleep
        #: ``time.monotonic`` unless a test injects a clock that ``sleep`` moves forward.
        self._clock = clock
        self._directory: Directory | None = None
        self._dir_lock = threading.Lock()

    def close(self) -> None:
        self.transport.close()

    def __enter__(self: _C) -> _C:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- directory and account (RFC 8555 §7.1.1, §7.3) ----------------------------------

    @property
    def known_directory(self) -> Directory | None:
        """The directory if it was fetched already (never sends a request)."""
        return self._directory

    @property
    def directory(self) -> Directory:
        """The directory, fetched once per client."""
        with self._dir_lock:
            if self._directory is None:
                try:
                    resp = self.transport.get(self.directory_url)
                    directory = Directory.from_json(resp.json())
                except (ProtocolError, ProblemError) as exc:
                    if isinstance(exc, ProblemError) and exc.problem.status not in (404, 405):
                        raise  # the CA's answer (rate limit, outage): not a wrong URL
                    raise ProtocolError(
                        f"{self.directory_url} does not serve an ACME directory ({exc})",
                        code="not-a-directory",
                    ) from exc
                self._directory = directory
                self.transport.new_nonce_url = directory.new_nonce
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
        """Create the account, or find the existing one for this key (RFC 8555 §7.3, §7.3.1).

        A new account's request is checked first — the terms agreed to when the CA has
        some, the contacts well-formed, the EAB credentials fit — so a single-use EAB key
        is never spent on a request the CA would refuse.
        """
        directory = self.directory
        payload: dict[str, object] = {}
        if only_return_existing:
            payload["onlyReturnExisting"] = True
        else:
            _check_new_account(directory, contact=contact, agree_tos=agree_tos, eab=eab)
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
        try:
            resp = self._post(directory.new_account, payload, use_jwk=True)
        except ProblemError as exc:
            if eab is not None and exc.problem.short_type in ("unauthorized", "malformed"):
                exc.code = "eab-refused"  # the binding, most likely: callers may say so
            raise
        if not resp.location:
            raise ProtocolError("newAccount answered without a Location header (the account URL)")
        self.account_url = resp.location
        account = Account.from_json(resp.json(), url=resp.location)
        #: Whether the last :meth:`register` created the account (201) or found it.
        self.account_created = resp.status == 201
        log.info("account %s (%s)", account.url, "created" if self.account_created else "existing")
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
        with _operation("account updates"):
            resp = self._post(url, {"contact": _contact_urls(contact)})
        return Account.from_json(resp.json(), url=url)

    def deactivate_account(self) -> Account:
        """Deactivate the account for good (RFC 8555 §7.3.6).

        The CA then refuses every request signed by this key; there is no way back, and
        a new account needs a new key.
        """
        url = self._account()
        with _operation("account deactivation"):
            resp = self._post(url, {"status": "deactivated"})
        account = Account.from_json(resp.json(), url=url)
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
        with _operation("key change (account key rollover, RFC 8555 §7.3.5)"):
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
        serial = serial_hex(cert.serial_number)
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
            with _operation("revocation"):
                self._post(url, payload)
        else:
            key = cert_key if isinstance(cert_key, AccountKey) else AccountKey(cert_key)
            if not csrmod.public_keys_match(cert, key.key):
                raise InvalidInput(f"the key given is not the key of certificate {serial}")
            with _operation("revocation signed by the certificate key"):
                self.transport.post(
                    url,
                    lambda nonce: jws.sign_request(key, url=url, nonce=nonce, payload=payload),
                )
        log.info("certificate %s revoked (reason %s)", serial, "none" if code is None else code)

    # -- renewal information (RFC 9773) --------------------------------------------------

    def renewal_info(self, cert: x509.Certificate) -> tuple[RenewalInfo, float | None]:
        """GET ``<renewalInfo>/<certID>`` (RFC 9773 §4.2): the window and ``Retry-After``.

        Raises :class:`InvalidInput` when the directory offers no ``renewalInfo`` or the
        certificate has no Authority Key Identifier; network and server errors as usual.
        """
        base = self.directory.renewal_info
        if not base:
            raise InvalidInput(f"{self.directory_url} offers no renewalInfo (ARI)")
        resp = self.transport.get(f"{base.rstrip('/')}/{csrmod.certificate_id(cert)}")
        return RenewalInfo.from_json(resp.json()), resp.retry_after


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


def _check_new_account(
    directory: Directory,
    *,
    contact: Sequence[str],
    agree_tos: bool,
    eab: ExternalAccountBinding | None,
) -> None:
    """What a CA would refuse in a newAccount request, refused before it is sent."""
    if directory.terms_of_service and not agree_tos:
        raise InvalidInput(
            f"the CA has terms of service ({printable(directory.terms_of_service)}):"
            " a new account must agree to them"
        )
    for url in _contact_urls(contact):
        if url.startswith("mailto:") and not _MAILTO.fullmatch(url):
            raise InvalidInput(
                f"contact {printable(url)!r} is not one e-mail address (mailto:name@domain)"
            )
    if eab is not None:
        eab.validate()


@contextlib.contextmanager
def _operation(name: str) -> Iterator[None]:
    """Name the operation in the error when the CA says it does not implement it (HTTP 501)."""
    try:
        yield
    except ProblemError as exc:
        if is_not_implemented(exc.problem) and not isinstance(exc, UnsupportedOperation):
            raise UnsupportedOperation(exc.problem, url=exc.url, operation=name) from exc
        raise


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
