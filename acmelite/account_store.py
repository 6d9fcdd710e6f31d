"""An account key file, and the account URL it has at each CA, kept beside it.

``AccountStore("~/.config/acmelite/account.key")`` owns two files:

``account.key``
    the account key (PEM, 0600, in a 0700 directory), created on first use;
``account.key.accounts.json``
    the account URL known for this key at each directory URL — so a run with a known
    account spends no request on it (RFC 8555 §7.3.1 would cost a signed newAccount).

:meth:`AccountStore.client` returns an :class:`~acmelite.client.AcmeClient` whose account
is ready: known (no request), looked up by key, or — when the caller agreed to the terms
of service — created. A stored URL the CA no longer knows (a test CA restarted, an
account deleted) is dropped with :meth:`forget`, and the next :meth:`client` looks it up
again; :func:`retry_stale_account` does both around one call.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from .breaker import CircuitBreaker
from .client import AcmeClient, ExternalAccountBinding
from .errors import AcmeliteError, InvalidInput, ProblemError
from .keys import AccountKey
from .storage import atomic_write, ensure_private_dir
from .transport import Transport

__all__ = ["AccountNotFound", "AccountStore", "retry_stale_account"]

log = logging.getLogger(__name__)

_T = TypeVar("_T")


class AccountNotFound(AcmeliteError):
    """The CA has no account for this key, and none was to be created.

    ``directory_url`` is the CA, ``key_path`` the key file, ``terms_of_service`` the URL
    of the terms one must agree to for a new account ("" if the CA names none).
    """

    def __init__(self, *, directory_url: str, key_path: str, terms_of_service: str) -> None:
        terms = f" (its terms of service: {terms_of_service})" if terms_of_service else ""
        super().__init__(
            f"no account exists for the key {key_path} at {directory_url}{terms}",
            code="account-not-found",
        )
        self.directory_url = directory_url
        self.key_path = key_path
        self.terms_of_service = terms_of_service


class AccountStore:
    """The account key at ``key_path`` and the account URLs cached beside it."""

    def __init__(self, key_path: str | os.PathLike[str]) -> None:
        self.key_path = Path(key_path)

    def __repr__(self) -> str:
        return f"AccountStore({str(self.key_path)!r})"

    @property
    def urls_path(self) -> Path:
        return self.key_path.with_name(self.key_path.name + ".accounts.json")

    # -- the key --------------------------------------------------------------------------

    def exists(self) -> bool:
        return self.key_path.exists()

    def load_key(self) -> AccountKey:
        """The key; :class:`InvalidInput` if the file is missing or holds no usable key."""
        if not self.exists():
            raise InvalidInput(f"no account key at {self.key_path}")
        return AccountKey.load(self.key_path)

    def load_or_create_key(self, key_type: str = "ec256") -> tuple[AccountKey, bool]:
        """The key, created (0600, directory 0700) when missing; True if it was created.

        The key's directory must belong to the running user, whether the key is new or not
        (:func:`acmelite.storage.check_owner`).
        """
        ensure_private_dir(self.key_path.parent)
        if self.exists():
            return self.load_key(), False
        key = AccountKey.generate(key_type)
        self.save_key(key)
        log.info("created account key %s", self.key_path)
        return key, True

    def save_key(self, key: AccountKey) -> None:
        """Write ``key`` over the key file, atomically and 0600 from the first byte."""
        key.save(self.key_path)

    # -- the URL cache -----------------------------------------------------------------------

    def account_urls(self) -> dict[str, str]:
        """Account URLs known for this key, by directory URL (unreadable: none)."""
        try:
            data = json.loads(self.urls_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        if not isinstance(data, dict):
            return {}
        return {str(k): str(v) for k, v in data.items() if isinstance(v, str)}

    def account_url(self, directory_url: str) -> str | None:
        return self.account_urls().get(directory_url)

    def remember(self, directory_url: str, account_url: str) -> None:
        """Store ``account_url`` as this key's account at ``directory_url``."""
        self._write_urls(directory_url, account_url)

    def forget(self, directory_url: str) -> None:
        """Drop the stored account URL of ``directory_url`` (the CA no longer knows it)."""
        self._write_urls(directory_url, None)

    def _write_urls(self, directory_url: str, account_url: str | None) -> None:
        urls = self.account_urls()
        if account_url:
            urls[directory_url] = account_url
        elif urls.pop(directory_url, None) is None:
            return
        data = json.dumps(urls, indent=2, sort_keys=True).encode() + b"\n"
        atomic_write(self.urls_path, data, mode=0o600)

    # -- a client with its account ready ----------------------------------------------------

    def client(
        self,
        directory_url: str,
        *,
        ca_bundle: str | None = None,
        insecure: bool = False,
        timeout: float | None = None,
        create_key: bool = True,
        register: bool = True,
        agree_tos: bool = False,
        contact: Sequence[str] = (),
        eab: ExternalAccountBinding | None = None,
        breaker: CircuitBreaker | None = None,
    ) -> AcmeClient:
        """An :class:`AcmeClient` for ``directory_url`` signed by this key.

        ``timeout`` bounds every request the client makes from now on (seconds). With
        ``register``, the account is made ready: a stored URL costs nothing; otherwise it is
        looked up by key, or created when ``agree_tos`` (with ``contact`` and ``eab``).
        ``breaker`` is told of every request (:mod:`acmelite.breaker`).
        Raises :class:`AccountNotFound` when there is no account and ``agree_tos`` is
        False; :class:`InvalidInput` for a missing CA bundle, or a missing key file when
        not ``create_key``; :class:`ProblemError` for the CA's refusals.
        """
        if ca_bundle and not os.path.isfile(ca_bundle):
            raise InvalidInput(f"CA bundle {ca_bundle}: no such file")
        key = self.load_or_create_key()[0] if create_key else self.load_key()
        known = self.account_url(directory_url)
        transport = Transport(ca_bundle=ca_bundle, insecure=insecure, breaker=breaker)
        if timeout is not None:
            transport.deadline = time.monotonic() + timeout
        client = AcmeClient(directory_url, key, transport=transport, account_url=known)
        if known or not register:
            if known and contact:
                log.info(
                    "the account %s exists already: its contact is not changed (update_account,"
                    " or `acmelite account update`, changes it)", known,
                )  # fmt: skip
            return client
        try:
            account = client.register(
                contact=contact, agree_tos=agree_tos, eab=eab, only_return_existing=not agree_tos
            )
        except ProblemError as exc:
            if exc.problem.short_type == "accountDoesNotExist":
                raise AccountNotFound(
                    directory_url=directory_url,
                    key_path=str(self.key_path),
                    terms_of_service=client.directory.terms_of_service,
                ) from exc
            raise
        if contact and not client.account_created:
            log.info(
                "the account %s exists already with contact %s: it is not changed"
                " (update_account, or `acmelite account update`, changes it)",
                account.url, ", ".join(account.contact) or "(none)",
            )  # fmt: skip
        self.remember(directory_url, client.account_url)
        return client


def retry_stale_account(
    store: AccountStore,
    opener: Callable[[], AcmeClient],
    call: Callable[[AcmeClient], _T],
    *,
    close: bool = True,
) -> tuple[_T, AcmeClient]:
    """``call(opener())``, and the client it used (the caller closes it).

    If the CA says the stored account does not exist, the URL is forgotten and ``call``
    runs once more with a fresh ``opener()``, which looks the account up again (or creates
    it). The one place that recovers from a stale account URL, for issue and renew alike.
    A failing ``call`` closes its client before the error propagates, unless ``close`` is
    False (a client shared with other callers, which its owner closes).
    """
    client = opener()
    try:
        return call(client), client
    except ProblemError as exc:
        if close:
            client.close()
        if exc.problem.short_type != "accountDoesNotExist" or not client.account_url:
            raise
        log.info("the CA no longer knows the stored account %s; looking it up again",
                 client.account_url)  # fmt: skip
    except BaseException:
        if close:
            client.close()
        raise
    store.forget(client.directory_url)
    client = opener()
    try:
        return call(client), client
    except BaseException:
        if close:
            client.close()
        raise
