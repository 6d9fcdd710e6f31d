"""The ``persist`` solver: dns-persist-01 (draft-ietf-acme-dns-persist), no DNS change at all.

The record ``_validation-persist.<name>`` was published once (``acmelite persist publish``,
or by whoever runs the zone); answering the challenge is then only saying "look". What this
solver adds is certainty before anything is asked of the CA:

* :meth:`PersistSolver.preflight` — before newOrder — checks every name's record at every
  authoritative nameserver (:func:`acmelite.dns.persist.check_records`) against this account's
  URL and the CA's issuer domain names, and stops the run with the exact problem (missing
  at which servers, another account, an issuer the CA does not accept, ``persistUntil``
  passed, no ``policy=wildcard`` for a wildcard);
* :meth:`PersistSolver.perform` checks each challenge object (1 to 10 issuer domain names,
  the ``accounturi`` it names) against what was found, and publishes nothing;
* :meth:`PersistSolver.advise` reports records whose ``persistUntil`` is within 30 days,
  for ``renew`` to warn about.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from typing import ClassVar

from ..challenges import ChallengeTask, OrderPlan, SolverOption
from ..dns.challenge import number_option
from ..dns.persist import CheckSettings, NameReport, check_error_message, check_records
from ..errors import InvalidInput, ProtocolError, SolverError
from ..persist import MAX_ISSUER_DOMAIN_NAMES, Requirement, choose_issuer

__all__ = ["PersistSolver"]

log = logging.getLogger(__name__)


class PersistSolver:
    """Answers dns-persist-01 from records already in the DNS (see the module docstring).

    ``issuer`` restricts the check to that issuer domain name (it must be one the CA
    lists); ``settings`` says where the records are looked for.
    """

    challenge_type: ClassVar[str] = "dns-persist-01"
    options: ClassVar[tuple[SolverOption, ...]] = (
        SolverOption(
            name="issuer",
            help="the issuer domain name the records name (default: any the CA lists)",
        ),
        SolverOption(
            name="resolver",
            help="HOST[:PORT]: check the records at this resolver instead of the zones'"
            " authoritative nameservers",
        ),
        SolverOption(
            name="lookup-server",
            help="HOST[:PORT]: find the zones' nameservers through this server (default:"
            " the system resolver)",
        ),
        SolverOption(
            name="nameserver-port",
            help="the port the zones' authoritative nameservers are asked on",
            default="53",
        ),
        SolverOption(name="timeout", help="seconds each DNS query may take", default="3"),
    )

    @classmethod
    def from_options(cls, options: Mapping[str, str]) -> PersistSolver:
        """Build from the string options of :attr:`options` (see the registry)."""
        settings = CheckSettings(
            resolver=options.get("resolver") or None,
            lookup_server=options.get("lookup-server") or None,
            nameserver_port=int(number_option(options, "nameserver-port", integer=True)),
            timeout=number_option(options, "timeout") or 3.0,
        )
        return cls(issuer=options.get("issuer") or None, settings=settings)

    def __init__(self, *, issuer: str | None = None, settings: CheckSettings | None = None) -> None:
        self.issuer = issuer.lower().rstrip(".") if issuer else None
        self.settings = settings or CheckSettings()
        self._checked: dict[str, NameReport] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"PersistSolver(issuer={self.issuer!r}, settings={self.settings!r})"

    # -- before the order -------------------------------------------------------------

    def preflight(self, plan: OrderPlan) -> None:
        """Check every record; raise :class:`SolverError` naming each problem."""
        reports = self.check(plan.names, plan.account_url, plan.issuer_domain_names)
        for report in reports:
            for warning in report.warnings:
                log.warning("%s", warning)
        bad = [r for r in reports if not r.ok]
        if bad:
            raise SolverError(check_error_message(bad), identifiers=[r.name for r in bad])
        with self._lock:
            self._checked.update((r.name, r) for r in reports)
        log.info("dns-persist-01 records in place for %s", ", ".join(r.name for r in reports))

    def advise(self, plan: OrderPlan) -> list[str]:
        """The records' problems and near ``persistUntil`` dates, one line each."""
        try:
            reports = self.check(plan.names, plan.account_url, plan.issuer_domain_names)
        except InvalidInput as exc:
            return [str(exc)]
        lines = [w for r in reports for w in r.warnings]
        lines += [f"dns-persist-01 record not ready: {r.line()}" for r in reports if not r.ok]
        return lines

    # -- the Solver protocol ------------------------------------------------------------

    def perform(self, tasks: Sequence[ChallengeTask]) -> None:
        """Publish nothing: check each challenge against the record found for its name."""
        unchecked: list[ChallengeTask] = []
        for task in tasks:
            issuers = self._challenge_issuers(task)
            if task.challenge.account_uri and task.challenge.account_uri != task.account_url:
                raise SolverError(
                    f"{task.name}: the CA expects accounturi={task.challenge.account_uri} in"
                    f" the record; this account is {task.account_url}",
                    identifiers=[task.name],
                )
            with self._lock:
                report = self._checked.get(task.name)
            if report is None:  # a caller that did not run the preflight
                unchecked.append(task)
            elif report.valid is not None and report.valid.issuer not in issuers:
                raise SolverError(
                    f"{task.name}: the record names issuer {report.valid.issuer}, which is not"
                    f" among the CA's issuer-domain-names ({', '.join(issuers)})",
                    identifiers=[task.name],
                )
        for task in unchecked:  # checked now, against this challenge's issuer names
            reports = self.check([task.name], task.account_url, self._challenge_issuers(task))
            if not reports[0].ok:
                raise SolverError(check_error_message(reports), identifiers=[task.name])
        log.info("dns-persist-01: %d record(s) already in place; nothing to publish", len(tasks))

    def cleanup(self, tasks: Sequence[ChallengeTask]) -> None:
        """Nothing to remove: the records persist by design."""

    # -- the check ----------------------------------------------------------------------

    def check(
        self, names: Sequence[str], account_url: str, offered: Sequence[str]
    ) -> list[NameReport]:
        """The records of ``names`` for ``account_url`` and the issuer domain names
        ``offered`` by the CA (or :attr:`issuer`, which must be among them)."""
        if not account_url:
            raise InvalidInput("dns-persist-01 needs the account URL (register first)")
        issuers: tuple[str, ...] = tuple(offered)
        if self.issuer is not None:
            issuers = (choose_issuer(offered, self.issuer),)
        requirements = [
            Requirement(name=name, account_uri=account_url, issuers=issuers) for name in names
        ]
        return check_records(requirements, self.settings)

    @staticmethod
    def _challenge_issuers(task: ChallengeTask) -> tuple[str, ...]:
        names = task.challenge.issuer_domain_names
        if not 0 < len(names) <= MAX_ISSUER_DOMAIN_NAMES:
            raise ProtocolError(
                f"{task.name}: the dns-persist-01 challenge lists {len(names)} issuer domain"
                f" names (1 to {MAX_ISSUER_DOMAIN_NAMES} are allowed)"
            )
        return tuple(n.lower() for n in names)
