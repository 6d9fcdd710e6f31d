"""One issuance for a :class:`~acmelite.config.CertificateConfig`: account, solver, order.

:class:`Issuer` is the piece that :mod:`acmelite.managed` (and ``acmelite issue`` without a
directory) builds on: the account of the configuration's key (stored URL, looked up, or
created), the solver built by :func:`~acmelite.solvers.registry.solver_for`, the order with
``replaces`` (RFC 9773 §5) and without it when the CA refuses, and one retry with a fresh
account lookup when the stored account URL is stale. Nothing is installed here.

Given a :class:`~acmelite.client_pool.SharedClient` (``shared=``), an :class:`Issuer` uses
that client instead of opening its own, and never closes it: the certificates of a fleet
that share a CA account share one client (:mod:`acmelite.fleet`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

from .account_store import AccountStore, retry_stale_account
from .challenges import AdvisingSolver, PreparedSolver, Solver
from .client import AcmeClient, CertificateBundle, ExternalAccountBinding
from .client_pool import SharedClient
from .config import CertificateConfig
from .csr import load_csr
from .errors import AcmeliteError, InvalidInput, ProblemError
from .keys import PrivateKey
from .names import parse_identifiers
from .renewal import refused_replaces
from .solvers.registry import load_solver_class, solver_for, solvers_for

__all__ = ["Issuer", "issue"]

log = logging.getLogger(__name__)


class Issuer:
    """Issues for one configuration: the solver built and prepared before the first request
    (:meth:`prepare`), the client opened on first use (:meth:`open`) and reopened after a
    stale account. :meth:`close` releases both; an ``Issuer`` is also a context manager.

    ``environ`` supplies solver options given as environment variables (default
    ``os.environ``; ``{}`` reads none).

    With ``shared``, the client and the solver are that one's (see the module docstring):
    never closed or released here.
    """

    def __init__(
        self,
        config: CertificateConfig,
        *,
        insecure: bool = False,
        timeout: float | None = None,
        agree_tos: bool = False,
        eab: ExternalAccountBinding | None = None,
        environ: Mapping[str, str] | None = None,
        shared: SharedClient | None = None,
    ) -> None:
        self.config = config
        self.store = AccountStore(config.account_key)
        self.timeout = config.timeout if timeout is None else timeout
        self._insecure = insecure
        self._agree_tos, self._eab = agree_tos, eab
        self._environ = environ
        self._shared = shared
        self.client: AcmeClient | None = None
        self.solver: Solver | None = None
        #: What answers where the CA offers no challenge of the configured type.
        self.fallback: Solver | None = None

    def __enter__(self) -> Issuer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def prepare(self) -> Solver:
        """Build the solver (and the fallback's) and let each take what it needs before any
        request — the standalone and TLS-ALPN servers bind their ports here
        (:class:`~acmelite.challenges.PreparedSolver`), so a busy port fails before an
        account or order exists. Raises :class:`InvalidInput` (or the solver's error)."""
        if self.solver is None:
            if self._shared is not None:  # the run's solvers: prepared once, released by it
                self.solver, self.fallback = self._shared.solvers(
                    self.config.challenge, self._environ
                )
                return self.solver
            solver, fallback = solvers_for(self.config.challenge, environ=self._environ)
            for one in (solver, fallback):
                if isinstance(one, PreparedSolver):
                    one.prepare()
            self.solver, self.fallback = solver, fallback
        return self.solver

    def open(self) -> AcmeClient:
        if self._shared is not None:
            return self._shared.client()
        if self.client is None:
            self.client = self._new()
        return self.client

    def _new(self) -> AcmeClient:
        config = self.config
        return self.store.client(
            config.server,
            ca_bundle=config.ca_bundle,
            insecure=self._insecure,
            timeout=self.timeout,
            agree_tos=self._agree_tos,
            contact=config.contact,
            eab=self._eab,
        )

    def close(self) -> None:
        """Close the client and release what :meth:`prepare` took (the listening socket)."""
        if self.client is not None:
            self.client.close()
            self.client = None
        if self._shared is None:
            for one in (self.solver, self.fallback):
                if isinstance(one, PreparedSolver):
                    one.release()
        self.solver = self.fallback = None

    def issue(
        self, *, private_key: PrivateKey | None = None, replaces: str | None = None
    ) -> tuple[CertificateBundle, str | None]:
        """Order, solve, finalize; with ``replaces``, and without if the CA refuses it.
        Returns the bundle and the ``replaces`` value the CA accepted (None if none)."""
        config = self.config
        solver, fallback = self.prepare(), self.fallback
        fallback_type = config.challenge.fallback.type if config.challenge.fallback else None
        csr = None
        if config.csr is not None:
            try:
                csr = load_csr(Path(config.csr).read_bytes(), source=config.csr)
            except OSError as exc:
                raise InvalidInput(f"cannot read the CSR {config.csr}: {exc.strerror}") from None

        def order(client: AcmeClient, replacing: str | None) -> CertificateBundle:
            return client.issue(
                list(config.names), solver=solver, key_type=config.key_type,
                private_key=private_key, csr=csr, profile=config.profile, replaces=replacing,
                preferred_chain=config.preferred_chain, timeout=self.timeout,
                challenge_type=config.challenge.type, fallback=fallback,
                fallback_type=fallback_type,
            )  # fmt: skip

        def attempt(client: AcmeClient) -> tuple[CertificateBundle, str | None]:
            if replaces is None or not client.directory.renewal_info:
                return order(client, None), None
            try:
                return order(client, replaces), replaces
            except ProblemError as exc:
                if exc.url != client.directory.new_order or not refused_replaces(exc):
                    raise
                log.warning("the CA refused replaces=%s (%s); ordering without it", replaces, exc)
                return order(client, None), None

        if self._shared is not None:
            return self._shared.call(attempt)
        if self.client is not None:
            self.client.close()
            self.client = None
        result, self.client = retry_stale_account(self.store, self._new, attempt)
        return result

    def advice(self) -> list[str]:
        """What the solver warns about before the next issuance (an expiring persistent
        record: :class:`~acmelite.challenges.AdvisingSolver`); [] for most solvers. A
        failure to ask is itself the warning; this never raises for it."""
        try:
            name = self.config.challenge.solver
            if self._shared is not None:  # a fleet: the class is looked up once per run
                can_advise = self._shared.can_advise(name)
            else:
                can_advise = hasattr(load_solver_class(name), "advise")
            if not can_advise:
                return []  # built only when it can advise: building may read secret files
            solver = solver_for(self.config.challenge, environ=self._environ)
            if not isinstance(solver, AdvisingSolver):
                return []
            plan = self.open().order_plan(parse_identifiers(list(self.config.names)))
            return solver.advise(plan)
        except AcmeliteError as exc:
            return [f"could not check the {self.config.challenge.type} records: {exc}"]


def issue(
    config: CertificateConfig,
    *,
    agree_tos: bool = False,
    eab: ExternalAccountBinding | None = None,
    environ: Mapping[str, str] | None = None,
    insecure: bool = False,
) -> CertificateBundle:
    """Issue one certificate for ``config`` and return it, installing nothing.

    The account of ``config.account_key`` is created when ``agree_tos``. ``environ``
    supplies solver options given as environment variables (default ``os.environ``).
    Raises what :meth:`AcmeClient.issue` raises, and
    :class:`~acmelite.account_store.AccountNotFound`.
    """
    with Issuer(config, insecure=insecure, agree_tos=agree_tos, eab=eab,
                environ=environ) as issuer:  # fmt: skip
        return issuer.issue()[0]
