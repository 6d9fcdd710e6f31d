"""A conformance kit for dns-01 solvers: does a solver do what the ACME client relies on?

:func:`check_dns_solver` runs a documented battery against any dns-01 solver (built-in or a
plugin) and a live zone, looking at the zone's nameserver directly after each step:

===================== ==========================================================================
check                 what must hold
===================== ==========================================================================
publish-and-remove    ``perform`` of one name publishes its value; ``cleanup`` removes it
apex-and-wildcard     ``example`` and ``*.example`` put two values at one record; both coexist,
                      and cleanup removes both
foreign-value-kept    a value someone else published at the record stays, with its TTL,
                      through perform and cleanup (needs ``writer``)
half-done-cleanup     ``cleanup`` of tasks of which ``perform`` saw only some (what the client
                      does after a failed or interrupted perform) removes what was published
                      and does not fail for the rest
idempotent-cleanup    a second ``cleanup`` of the same tasks does nothing and does not fail
twenty-names          20 names in one ``perform``: all published, all removed
two-solvers-one-zone  two solvers perform and clean up at the same moment in one zone, two of
                      their values at one record: none is lost, none is left
cname-delegation      ``_acme-challenge.<name>`` is a CNAME: the value goes to its target
                      (needs ``cname``)
===================== ==========================================================================

Every solver call and every wait is bounded (``timeout``); a check that cannot run without
``writer`` or ``cname`` is reported as skipped. Names are made unique per run
(``<check>-<random>.<zone>``), so runs do not disturb each other or the zone's real
records. Use it from pytest with :func:`assert_dns_solver_conforms` (one check per test
with :data:`DNS_CHECKS` and ``checks=[name]``), or read the :class:`ConformanceReport`.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

from ..challenges import ChallengeTask, Solver
from ..models import Challenge, Identifier
from .dnsserver import ZoneWriter, query_txt

__all__ = [
    "DNS_CHECKS",
    "CheckResult",
    "ConformanceError",
    "ConformanceReport",
    "assert_dns_solver_conforms",
    "check_dns_solver",
    "make_dns_task",
]

DNS_CHECKS = (
    "publish-and-remove",
    "apex-and-wildcard",
    "foreign-value-kept",
    "half-done-cleanup",
    "idempotent-cleanup",
    "twenty-names",
    "two-solvers-one-zone",
    "cname-delegation",
)

#: The TTL of the foreign value: unlike any solver's default, so a rewritten TTL shows.
FOREIGN_TTL = 3600

SolverSource = Solver | Callable[[], Solver]


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One check: ``status`` ``passed``, ``failed`` or ``skipped``, and why (``detail``)."""

    name: str
    status: str
    detail: str = ""
    seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class ConformanceReport:
    """What :func:`check_dns_solver` found for ``solver``."""

    solver: str
    results: tuple[CheckResult, ...]

    @property
    def ok(self) -> bool:
        return not self.failures

    @property
    def failures(self) -> tuple[CheckResult, ...]:
        return tuple(r for r in self.results if r.status == "failed")

    def __str__(self) -> str:
        lines = [f"dns-01 conformance of {self.solver}:"]
        for r in self.results:
            detail = f"  {r.detail}" if r.detail else ""
            lines.append(f"  {r.status:7} {r.name:21} {r.seconds:6.2f} s{detail}")
        return "\n".join(lines)


class ConformanceError(AssertionError):
    """A solver failed checks; ``report`` has every result."""

    def __init__(self, report: ConformanceReport) -> None:
        super().__init__(str(report))
        self.report = report


class _Failed(Exception):
    pass


def make_dns_task(name: str) -> ChallengeTask:
    """A dns-01 task for ``name`` (``*.`` for a wildcard) with a random token and value."""
    token = secrets.token_urlsafe(32)
    return ChallengeTask(
        identifier=Identifier(type="dns", value=name.removeprefix("*.")),
        challenge=Challenge(
            type="dns-01", url=f"https://ca.invalid/chall/{token}", status="pending", token=token
        ),
        key_authorization=f"{token}.{secrets.token_urlsafe(32)}",
        wildcard=name.startswith("*."),
    )


def assert_dns_solver_conforms(
    solver: SolverSource,
    *,
    zone: str,
    nameserver: str,
    writer: ZoneWriter | None = None,
    cname: tuple[str, str] | None = None,
    checks: Sequence[str] | None = None,
    timeout: float = 30.0,
) -> ConformanceReport:
    """:func:`check_dns_solver`, raising :class:`ConformanceError` (an ``AssertionError``,
    which pytest shows as a failure with the report) when any check failed."""
    report = check_dns_solver(solver, zone=zone, nameserver=nameserver, writer=writer,
                              cname=cname, checks=checks, timeout=timeout)  # fmt: skip
    if not report.ok:
        raise ConformanceError(report)
    return report


def check_dns_solver(
    solver: SolverSource,
    *,
    zone: str,
    nameserver: str,
    writer: ZoneWriter | None = None,
    cname: tuple[str, str] | None = None,
    checks: Sequence[str] | None = None,
    timeout: float = 30.0,
) -> ConformanceReport:
    """Run ``checks`` (default: all of :data:`DNS_CHECKS`) against ``solver``.

    ``solver`` is a solver, or a callable that makes a fresh one (two-solvers-one-zone then
    gets two); it publishes into ``zone``, whose primary ``nameserver`` (``HOST:PORT``) is
    asked directly for what is served. ``writer`` adds and removes "someone else's" value;
    ``cname`` is ``(name, target)``: ``_acme-challenge.<name>`` is a CNAME to ``target``.
    Each solver call and each wait for the nameserver may take ``timeout`` seconds.
    """
    unknown = [c for c in checks or () if c not in DNS_CHECKS]
    if unknown:
        raise ValueError(f"unknown checks {unknown}; the checks are {', '.join(DNS_CHECKS)}")
    host, _, port_text = nameserver.rpartition(":")
    if not host or not port_text.isdigit():
        raise ValueError(f"nameserver must be HOST:PORT, not {nameserver!r}")
    kit = _Kit(solver, zone=zone.rstrip(".").lower(), host=host.strip("[]"),
               port=int(port_text), writer=writer, cname=cname, timeout=timeout)  # fmt: skip
    results = tuple(kit.run(name) for name in (checks or DNS_CHECKS))
    return ConformanceReport(solver=repr(kit.first), results=results)


class _Kit:
    def __init__(
        self,
        source: SolverSource,
        *,
        zone: str,
        host: str,
        port: int,
        writer: ZoneWriter | None,
        cname: tuple[str, str] | None,
        timeout: float,
    ) -> None:
        self.source, self.zone, self.host, self.port = source, zone, host, port
        self.writer, self.cname, self.timeout = writer, cname, timeout
        self.run_id = secrets.token_hex(3)
        self.first = self.new_solver()

    def new_solver(self) -> Solver:
        """A fresh solver from the factory (the same solver when given one)."""
        if isinstance(self.source, Solver):
            return self.source
        return self.source()

    def name(self, label: str) -> str:
        return f"{label}-{self.run_id}.{self.zone}"

    def run(self, check: str) -> CheckResult:
        method = getattr(self, "check_" + check.replace("-", "_"))
        started = time.monotonic()
        try:
            skipped = method()
        except _Failed as exc:
            return CheckResult(check, "failed", str(exc), time.monotonic() - started)
        except Exception as exc:  # the solver raised: that is the finding
            detail = f"{type(exc).__name__}: {exc}"
            return CheckResult(check, "failed", detail, time.monotonic() - started)
        status = "skipped" if skipped else "passed"
        return CheckResult(check, status, skipped or "", time.monotonic() - started)

    # -- helpers ------------------------------------------------------------------------------

    def call(self, what: str, fn: Callable[[], None]) -> None:
        """Run a solver call in a thread; a call that does not return in time fails."""
        outcome: list[BaseException | None] = []

        def target() -> None:
            try:
                fn()
                outcome.append(None)
            except BaseException as exc:
                outcome.append(exc)

        thread = threading.Thread(target=target, name=f"conformance-{what}", daemon=True)
        thread.start()
        thread.join(self.timeout)
        if thread.is_alive():
            raise _Failed(f"{what} did not return within {self.timeout:g} s")
        if outcome and outcome[0] is not None:
            exc = outcome[0]
            raise _Failed(f"{what} raised {type(exc).__name__}: {exc}")

    def served(self, record: str) -> tuple[set[str], int]:
        return query_txt(self.host, self.port, record)

    def wait(self, record: str, test: Callable[[set[str]], bool], what: str) -> set[str]:
        """Poll the nameserver until ``test(values)`` holds; fail after ``timeout``."""
        deadline = time.monotonic() + self.timeout
        values: set[str] = set()
        while True:
            try:
                values = self.served(record)[0]
            except Exception as exc:
                values = {f"<query failed: {exc}>"}
            if test(values):
                return values
            if time.monotonic() >= deadline:
                raise _Failed(f"{what}: {record} serves {sorted(values)}")
            time.sleep(0.05)

    def published(self, tasks: Sequence[ChallengeTask], record: str | None = None) -> None:
        for task in tasks:
            value = task.dns01_value
            self.wait(record or task.dns01_record, partial(_has, value),
                      f"after perform, the value of {task.name} is missing")  # fmt: skip

    def removed(self, tasks: Sequence[ChallengeTask], record: str | None = None) -> None:
        for task in tasks:
            value = task.dns01_value
            self.wait(record or task.dns01_record, partial(_lacks, value),
                      f"after cleanup, the value of {task.name} is still there")  # fmt: skip

    def solve(self, solver: Solver, tasks: Sequence[ChallengeTask]) -> None:
        """perform, check, cleanup (always, like the client), check."""
        try:
            self.call("perform", lambda: solver.perform(tasks))
            self.published(tasks)
        finally:
            self.call("cleanup", lambda: solver.cleanup(tasks))
        self.removed(tasks)

    # -- the checks (a string return means skipped, and why) ----------------------------------

    def check_publish_and_remove(self) -> str:
        self.solve(self.first, [make_dns_task(self.name("one"))])
        return ""

    def check_apex_and_wildcard(self) -> str:
        name = self.name("wild")
        tasks = [make_dns_task(name), make_dns_task(f"*.{name}")]
        try:
            self.call("perform", lambda: self.first.perform(tasks))
            values = self.served(tasks[0].dns01_record)[0]
            wanted = {t.dns01_value for t in tasks}
            if not wanted <= values:
                raise _Failed(f"apex and wildcard values do not coexist: served {sorted(values)}")
        finally:
            self.call("cleanup", lambda: self.first.cleanup(tasks))
        self.removed(tasks)
        return ""

    def check_foreign_value_kept(self) -> str:
        if self.writer is None:
            return "needs writer= (a ZoneWriter for the zone)"
        task = make_dns_task(self.name("foreign"))
        record, foreign = task.dns01_record, f"foreign-{self.run_id}"
        self.writer.add_txt(record, foreign, ttl=FOREIGN_TTL)
        try:
            self.call("perform", lambda: self.first.perform([task]))
            try:
                values, ttl = self.served(record)
                if foreign not in values:
                    raise _Failed(f"perform removed the foreign value: served {sorted(values)}")
                if ttl != FOREIGN_TTL:
                    raise _Failed(f"perform changed the record set's TTL {FOREIGN_TTL} to {ttl}")
            finally:
                self.call("cleanup", lambda: self.first.cleanup([task]))
            self.removed([task])
            values, ttl = self.served(record)
            if foreign not in values:
                raise _Failed(f"cleanup removed the foreign value: served {sorted(values)}")
            if ttl != FOREIGN_TTL:
                raise _Failed(f"cleanup changed the record set's TTL {FOREIGN_TTL} to {ttl}")
        finally:
            self.writer.delete_txt(record, foreign)
        return ""

    def check_half_done_cleanup(self) -> str:
        done, never = make_dns_task(self.name("half-a")), make_dns_task(self.name("half-b"))
        self.call("perform", lambda: self.first.perform([done]))
        self.published([done])
        self.call("cleanup", lambda: self.first.cleanup([done, never]))
        self.removed([done, never])
        untouched = make_dns_task(self.name("half-c"))
        self.call("cleanup of tasks never performed", lambda: self.first.cleanup([untouched]))
        return ""

    def check_idempotent_cleanup(self) -> str:
        task = make_dns_task(self.name("again"))
        self.solve(self.first, [task])
        self.call("a second cleanup", lambda: self.first.cleanup([task]))
        self.removed([task])
        return ""

    def check_twenty_names(self) -> str:
        tasks = [make_dns_task(self.name(f"n{i:02d}")) for i in range(20)]
        self.solve(self.first, tasks)
        return ""

    def check_two_solvers_one_zone(self) -> str:
        second = self.new_solver()
        shared = self.name("shared")
        batches = [
            [make_dns_task(self.name("own-a")), make_dns_task(shared)],
            [make_dns_task(self.name("own-b")), make_dns_task(f"*.{shared}")],
        ]
        solvers = [self.first, second]
        pairs = list(zip(solvers, batches, strict=True))
        self._together("perform", [partial(s.perform, b) for s, b in pairs])
        every = [task for batch in batches for task in batch]
        try:
            for task in every:
                values = self.served(task.dns01_record)[0]
                if task.dns01_value not in values:
                    raise _Failed(
                        f"a value was lost when two solvers wrote at once: {task.name} is"
                        f" missing at {task.dns01_record} (served {sorted(values)})"
                    )
        finally:
            self._together("cleanup", [partial(s.cleanup, b) for s, b in pairs])
        self.removed(every)
        return ""

    def check_cname_delegation(self) -> str:
        if self.cname is None:
            return "needs cname=(name, target) with _acme-challenge.<name> a CNAME to target"
        name, target = self.cname
        task = make_dns_task(name)
        origin = task.dns01_record
        try:
            self.call("perform", lambda: self.first.perform([task]))
            self.published([task], record=target)
            at_origin = self.served(origin)[0]
            if at_origin:
                raise _Failed(f"published at the CNAME's owner {origin}: {sorted(at_origin)}")
        finally:
            self.call("cleanup", lambda: self.first.cleanup([task]))
        self.removed([task], record=target)
        return ""

    def _together(self, what: str, calls: Sequence[Callable[[], None]]) -> None:
        """Run ``calls`` at the same moment (a barrier), each bounded; fail on any error."""
        barrier = threading.Barrier(len(calls))
        errors: list[str] = []

        def run(fn: Callable[[], None]) -> Callable[[], None]:
            def go() -> None:
                barrier.wait(timeout=self.timeout)
                fn()

            return go

        threads = []
        for index, fn in enumerate(calls):
            thread = threading.Thread(
                target=partial(self._record, run(fn), index, what, errors), daemon=True
            )
            thread.start()
            threads.append(thread)
        deadline = time.monotonic() + self.timeout
        for thread in threads:
            thread.join(max(deadline - time.monotonic(), 0.0))
        if any(t.is_alive() for t in threads):
            raise _Failed(f"{what} by two solvers at once did not return within {self.timeout:g} s")
        if errors:
            raise _Failed("; ".join(errors))

    @staticmethod
    def _record(fn: Callable[[], None], index: int, what: str, errors: list[str]) -> None:
        try:
            fn()
        except Exception as exc:
            errors.append(f"{what} of solver {index + 1} raised {type(exc).__name__}: {exc}")


def _has(value: str, values: set[str]) -> bool:
    return value in values


def _lacks(value: str, values: set[str]) -> bool:
    return value not in values
