"""Clients shared by many certificates: one :class:`~acmelite.client.AcmeClient` per CA account.

A fleet renewal touches hundreds of certificate directories, most of them at one CA with
one account key. :class:`ClientPool` hands every certificate of one (directory URL, account
key, CA bundle) the same :class:`SharedClient`, so the run fetches each directory once,
keeps one nonce pool and one pool of kept-alive connections per CA, and looks each account
up at most once::

    pool = ClientPool(insecure=False)
    shared = pool.shared(config)            # the same object for every config of that account
    Issuer(config, insecure=False, timeout=600, shared=shared).issue(environ=None)
    pool.request_counts()                   # Counter({"renewalInfo": 12, "newOrder": 2, ...})
    pool.close()

A :class:`SharedClient` is opened on first use, so a run that needs no request opens none.
With ``breaker_threshold``, each one has a :class:`~acmelite.breaker.CircuitBreaker`: after
that many requests in a row failed at the transport, the account's later requests fail at
once with :class:`~acmelite.errors.CaUnavailable` (:meth:`ClientPool.unavailable` lists them).
The pool also keeps one solver per challenge configuration (:meth:`ClientPool.solver`):
certificates answered the same way share it, as :meth:`AcmeClient.issue_many` does — one
standalone HTTP server on port 80 for all of them, not one per thread fighting for the
port. A solver plugin used by a fleet must accept ``perform``/``cleanup`` of different
tasks from several threads, as the built-in ones do.
It is safe to use from many threads (so is the client, see :mod:`acmelite.client`); bound
one certificate's requests with :func:`acmelite.transport.deadline_scope`, not with the
client's own deadline, which would bound them all.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections import Counter
from collections.abc import Callable, Mapping
from typing import TypeVar

from .account_store import AccountStore, retry_stale_account
from .breaker import DEFAULT_WAIT, CircuitBreaker
from .challenges import PreparedSolver, Solver
from .client import AcmeClient
from .config import CertificateConfig
from .models import Directory
from .solvers.registry import ChallengeConfig, load_solver_class, solver_for

__all__ = ["ClientPool", "SharedClient", "endpoint_name"]

log = logging.getLogger(__name__)

_T = TypeVar("_T")


class SharedClient:
    """One client for the certificates of one CA account; see the module's docstring.

    ``on_open`` runs (in the opening thread) before the first client is opened, which is
    before the first request of this account. ``breaker``, if any, is told of every request
    of every client this object opens (:mod:`acmelite.breaker`).
    """

    def __init__(
        self,
        *,
        server: str,
        account_key: str,
        ca_bundle: str | None,
        insecure: bool,
        contact: tuple[str, ...] = (),
        on_open: Callable[[], None] | None = None,
        solvers: ClientPool | None = None,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        self.server = server
        self.breaker = breaker
        self._solvers = solvers
        self.store = AccountStore(account_key)
        self._ca_bundle, self._insecure, self._contact = ca_bundle, insecure, contact
        self._on_open = on_open
        self._lock = threading.Lock()
        self._client: AcmeClient | None = None
        self._opened: list[AcmeClient] = []  # every client this object made, to close

    def __repr__(self) -> str:
        return f"SharedClient({self.server!r}, {str(self.store.key_path)!r})"

    @property
    def account(self) -> tuple[str, str]:
        """(directory URL, account key path): what a CA's per-account limits count."""
        return self.server, str(self.store.key_path)

    def client(self) -> AcmeClient:
        """The client, opened (account ready, no deadline of its own) on first use;
        :class:`~acmelite.errors.CaUnavailable` at once while the breaker is open."""
        if self.breaker is not None:
            self.breaker.check()
        with self._lock:
            if self._client is None:
                self._client = self._open()
            return self._client

    def _open(self) -> AcmeClient:
        if self._on_open is not None:
            self._on_open()
        client = self.store.client(
            self.server,
            ca_bundle=self._ca_bundle,
            insecure=self._insecure,
            contact=self._contact,
            breaker=self.breaker,
        )
        self._opened.append(client)
        return client

    def _replace(self, stale: AcmeClient) -> AcmeClient:
        """A client with a fresh account lookup, unless another thread made one already."""
        with self._lock:
            if self._client is stale or self._client is None:
                self._client = self._open()
            return self._client

    def solvers(
        self, challenge: ChallengeConfig, environ: Mapping[str, str] | None
    ) -> tuple[Solver, Solver | None]:
        """The solver for ``challenge`` and its fallback's (see
        :func:`~acmelite.solvers.registry.solvers_for`): the pool's shared ones, prepared."""
        if self._solvers is None:
            raise ValueError("a SharedClient made without a ClientPool has no solvers")
        fallback = challenge.fallback
        return (
            self._solvers.solver(challenge, environ),
            None if fallback is None else self._solvers.solver(fallback, environ),
        )

    def can_advise(self, solver_name: str) -> bool:
        """Whether the solver class ``solver_name`` has ``advise`` (the pool remembers it:
        looking up a class scans the installed entry points, milliseconds each time)."""
        if self._solvers is None:
            return hasattr(load_solver_class(solver_name), "advise")
        return self._solvers.can_advise(solver_name)

    def call(self, fn: Callable[[AcmeClient], _T]) -> _T:
        """``fn(client)``; once more with a fresh account lookup when the CA no longer knows
        the stored account (:func:`~acmelite.account_store.retry_stale_account`)."""
        first = self.client()
        calls = 0

        def opener() -> AcmeClient:
            nonlocal calls
            calls += 1
            return first if calls == 1 else self._replace(first)

        return retry_stale_account(self.store, opener, fn, close=False)[0]

    def close(self) -> None:
        with self._lock:
            for client in self._opened:
                client.close()
            self._opened.clear()
            self._client = None

    def request_counts(self) -> Counter[str]:
        """Responses received by every client of this object, by :func:`endpoint_name`."""
        counts: Counter[str] = Counter()
        with self._lock:
            clients = list(self._opened)
        for client in clients:
            directory = client.known_directory
            for (method, url), n in client.transport.requests.items():
                counts[endpoint_name(method, url, client.directory_url, directory)] += n
        return counts


def endpoint_name(method: str, url: str, directory_url: str, directory: Directory | None) -> str:
    """What a request addressed: ``directory``, ``newNonce``, ``newAccount``, ``newOrder``,
    ``renewalInfo``, ``revokeCert``, ``keyChange``, or ``order`` for the resources of an
    order (the order, its authorizations and challenges, finalize, the certificate), whose
    URLs the directory does not name."""
    if url == directory_url:
        return "directory"
    if directory is not None:
        named = {
            directory.new_nonce: "newNonce",
            directory.new_account: "newAccount",
            directory.new_order: "newOrder",
            directory.revoke_cert: "revokeCert",
            directory.key_change: "keyChange",
        }
        named.pop("", None)
        if url in named:
            return named[url]
        if directory.renewal_info and url.startswith(directory.renewal_info.rstrip("/") + "/"):
            return "renewalInfo"
    return "order" if method == "POST" else "other"


class ClientPool:
    """The :class:`SharedClient` of each CA account, made on demand; thread-safe.

    ``on_first_open`` runs once, before the first client of the pool is opened (a fleet's
    random start delay goes there, so a run that sends nothing never waits). With
    ``breaker_threshold``, each CA account gets a :class:`CircuitBreaker` that opens after
    that many transport failures in a row (None: no breaker); ``breaker_wait`` is the
    seconds its held-back certificates wait.
    """

    def __init__(
        self,
        *,
        insecure: bool = False,
        on_first_open: Callable[[], None] | None = None,
        breaker_threshold: int | None = None,
        breaker_wait: float = DEFAULT_WAIT,
    ) -> None:
        if breaker_threshold is not None and breaker_threshold < 1:
            raise ValueError(f"breaker_threshold must be at least 1, not {breaker_threshold}")
        self._breaker_threshold, self._breaker_wait = breaker_threshold, breaker_wait
        self._insecure = insecure
        self._on_first_open = on_first_open
        self._opened_any = False
        self._lock = threading.Lock()
        self._open_lock = threading.Lock()
        self._shared: dict[tuple[str, str, str], SharedClient] = {}
        self._solvers: dict[str, Solver] = {}
        self._advising: dict[str, bool] = {}

    def shared(self, config: CertificateConfig) -> SharedClient:
        """The client of ``config``'s (directory URL, account key, CA bundle)."""
        key_path = os.path.abspath(config.account_key)
        key = (config.server, key_path, config.ca_bundle or "")
        with self._lock:
            found = self._shared.get(key)
            if found is None:
                found = SharedClient(
                    server=config.server,
                    account_key=key_path,
                    ca_bundle=config.ca_bundle,
                    insecure=self._insecure,
                    contact=config.contact,
                    on_open=self._first_open,
                    solvers=self,
                    breaker=self._breaker(config.server),
                )
                self._shared[key] = found
            return found

    def solver(self, challenge: ChallengeConfig, environ: Mapping[str, str] | None) -> Solver:
        """One solver per challenge configuration (its type, solver and options), built by
        :func:`~acmelite.solvers.registry.solver_for` and prepared on first use."""
        key = json.dumps(challenge.to_json(), sort_keys=True)
        with self._lock:
            found = self._solvers.get(key)
            if found is None:
                found = solver_for(challenge, environ=environ)
                if isinstance(found, PreparedSolver):
                    found.prepare()  # once for the run; released by close()
                self._solvers[key] = found
            return found

    def can_advise(self, solver_name: str) -> bool:
        """Whether the solver class ``solver_name`` has ``advise``, looked up once."""
        with self._lock:
            known = self._advising.get(solver_name)
        if known is None:
            known = hasattr(load_solver_class(solver_name), "advise")
            with self._lock:
                self._advising[solver_name] = known
        return known

    def _breaker(self, server: str) -> CircuitBreaker | None:
        if self._breaker_threshold is None:
            return None
        return CircuitBreaker(server, threshold=self._breaker_threshold, wait=self._breaker_wait)

    def unavailable(self) -> dict[tuple[str, str], str]:
        """The accounts (directory URL, key path) whose breaker opened, with the last
        transport failure."""
        with self._lock:
            shared = list(self._shared.values())
        return {
            one.account: one.breaker.last_error
            for one in shared
            if one.breaker is not None and one.breaker.is_open
        }

    def _first_open(self) -> None:
        with self._open_lock:
            if self._opened_any:
                return
            self._opened_any = True
            if self._on_first_open is not None:
                self._on_first_open()

    def __len__(self) -> int:
        return len(self._shared)

    def request_counts(self) -> Counter[str]:
        """Responses received through every client of the pool, by :func:`endpoint_name`."""
        total: Counter[str] = Counter()
        with self._lock:
            shared = list(self._shared.values())
        for one in shared:
            total.update(one.request_counts())
        return total

    def close(self) -> None:
        """Close every client and release every solver."""
        with self._lock:
            shared = list(self._shared.values())
            solvers, self._solvers = list(self._solvers.values()), {}
        for one in shared:
            one.close()
        for solver in solvers:
            if isinstance(solver, PreparedSolver):
                solver.release()
