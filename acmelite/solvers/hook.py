"""The ``hook`` DNS-01 solver: a command of yours publishes and removes the TXT values.

For each value ``perform`` runs ``CMD present <record> <value>`` and ``cleanup`` runs
``CMD cleanup <record> <value>``; ``<record>`` is fully qualified with its trailing dot
(``_acme-challenge.example.test.``, or the end of its CNAME chain). The same facts are in the
environment: ``ACMELITE_DNS_ACTION``, ``ACMELITE_DNS_RECORD``, ``ACMELITE_DNS_VALUE``,
``ACMELITE_DNS_IDENTIFIER`` (the name as requested, ``*.example.test`` for a wildcard),
``ACMELITE_DNS_ZONE`` (the record's zone, with its trailing dot; "" when it could not be
found) and ``ACMELITE_DNS_TTL`` (the TTL for a new record set).

In **batch** mode (``batch=true``) the hook runs once per zone and action: ``CMD present``
or ``CMD cleanup`` with ``ACMELITE_DNS_ACTION``, ``ACMELITE_DNS_ZONE`` and
``ACMELITE_DNS_TTL`` in the environment and the records on standard input, as a JSON list of
``{"record", "value", "identifier", "zone", "ttl"}`` objects — one API call per zone.

Hooks for one zone run one at a time — a hook that reads, changes and writes a record set
(most provider APIs) would otherwise lose values or make the provider fail — and so do the
hooks of other acmelite runs for that zone (:func:`~acmelite.dns.zonelock.zone_lock`);
different zones run at the same time. A hook must *add* its value and, at cleanup, remove
only its value; ``cleanup`` runs for every value whose ``present`` was started, so it must
tolerate a value that is not there. A non-zero exit fails the names of that value (in batch
mode: of the zone) with the hook's standard error in the message.
Every name is checked to be a host name first (letters, digits, hyphens, leading ``_``
labels): the record, its zone and the identifier came from the CA or from DNS answers, and
go into the hook's arguments, environment and standard input.
"""

from __future__ import annotations

import json
import logging
import shlex
import subprocess
from collections.abc import Mapping, Sequence
from typing import ClassVar

import dns.exception

from .._hookenv import hook_environ
from ..challenges import ChallengeTask, SolverOption
from ..dns.challenge import (
    PROPAGATION_OPTIONS,
    DnsChallengeSolver,
    TxtRecord,
    number_option,
    parallel,
    propagation_from_options,
)
from ..dns.propagation import PropagationSettings
from ..dns.zone import absolute, check_hostname, in_zone
from ..dns.zonelock import zone_lock
from ..errors import DnsQueryError, InvalidInput, SolverError

__all__ = ["HookSolver"]

log = logging.getLogger(__name__)

_OUTPUT_LIMIT = 400
_TRUE, _FALSE = ("true", "yes", "1", "on"), ("false", "no", "0", "off", "")


class HookSolver(DnsChallengeSolver):
    """Publish ``_acme-challenge`` TXT values by running a command.

    ``command`` is a string (split like a shell would, but no shell runs) or an argument
    list. Lookups (CNAME, the zone and its nameservers) go to ``propagation.resolver`` if
    set, else to the system resolver; ``zone`` names the zone of the records inside it.
    ``timeout`` bounds each run of the command; ``batch`` runs it once per zone.
    """

    _needs_zone = True
    options: ClassVar[tuple[SolverOption, ...]] = (
        SolverOption(
            name="command",
            help="run 'COMMAND present|cleanup RECORD. VALUE' for each TXT value",
            required=True,
        ),
        SolverOption(
            name="timeout", help="seconds each run of the command may take", default="300"
        ),
        SolverOption(name="zone", help="the zone of the records (default: found by SOA queries)"),
        SolverOption(name="ttl", help="the TTL the hook gives new TXT record sets", default="60"),
        SolverOption(
            name="batch",
            help="true: run 'COMMAND present|cleanup' once per zone with the records as a JSON"
            " list on standard input",
            default="false",
        ),
        *PROPAGATION_OPTIONS,
    )

    @classmethod
    def from_options(cls, options: Mapping[str, str]) -> HookSolver:
        """Build from the string options of :attr:`options` (see the registry)."""
        batch = (options.get("batch") or "").strip().lower()
        if batch not in _TRUE + _FALSE:
            raise InvalidInput(f"option batch={options['batch']!r} is not true or false")
        return cls(
            options["command"],
            propagation=propagation_from_options(options),
            timeout=number_option(options, "timeout"),
            zone=options.get("zone") or None,
            ttl=int(number_option(options, "ttl", integer=True)) if "ttl" in options else 60,
            batch=batch in _TRUE,
        )

    def __init__(
        self,
        command: str | Sequence[str],
        propagation: PropagationSettings | None = None,
        *,
        timeout: float = 300.0,
        zone: str | None = None,
        ttl: int = 60,
        batch: bool = False,
    ) -> None:
        super().__init__(propagation=propagation)
        try:
            argv = shlex.split(command) if isinstance(command, str) else list(command)
        except ValueError as exc:
            raise InvalidInput(f"bad DNS hook command {command!r}: {exc}") from None
        if not argv or not argv[0]:
            raise InvalidInput("the DNS hook command is empty")
        try:
            self.zone = absolute(zone) if zone else None
        except dns.exception.DNSException as exc:
            raise InvalidInput(f"bad DNS zone {zone!r}: {exc}") from None
        if not 0 <= ttl <= 2**31 - 1:
            raise InvalidInput(f"bad TTL {ttl}")
        self.command = tuple(argv)
        self.timeout = timeout
        self.ttl = ttl
        self.batch = batch

    def __repr__(self) -> str:
        mode = ", batch=True" if self.batch else ""
        return f"HookSolver(command={shlex.join(self.command)!r}{mode})"

    def _zone_for(self, name: str) -> str:
        """The record's zone; "" when none is found and the propagation check needs none
        (the hooks then run one at a time with an empty ``ACMELITE_DNS_ZONE``)."""
        if self.zone is not None and in_zone(name, self.zone):
            return self.zone
        try:
            return super()._zone_for(name)
        except DnsQueryError as exc:
            if self.propagation.enabled and self.propagation.resolver is None:
                raise
            log.warning("no DNS zone found for %s (%s); ACMELITE_DNS_ZONE is empty", name, exc)
            return ""

    def _plan(self, tasks: Sequence[ChallengeTask]) -> list[TxtRecord]:
        records = super()._plan(tasks)
        _check_names(records)  # before anything is remembered, so cleanup runs nothing either
        return records

    def _publish(self, records: Sequence[TxtRecord]) -> None:
        self._run_all("present", records)

    def _unpublish(self, records: Sequence[TxtRecord]) -> None:
        self._run_all("cleanup", records)

    def _run_all(self, action: str, records: Sequence[TxtRecord]) -> None:
        """Run the hook for every value (or zone): zones in parallel, one hook at a time
        within a zone."""
        by_zone: dict[str, list[TxtRecord]] = {}
        for record in records:
            by_zone.setdefault(record.zone, []).append(record)

        def run_zone(zone: str) -> list[tuple[TxtRecord, str]]:
            group = by_zone[zone]
            with zone_lock("hook", zone=zone or "(unknown)", timeout=max(self.timeout, 1.0)):
                if self.batch:
                    problem = self._run_batch(action, zone, group)
                    return [(record, problem) for record in group] if problem else []
                failures = []
                for record in group:
                    problem = self._run(action, record)
                    if problem:
                        failures.append((record, problem))
                return failures

        results, errors = parallel(run_zone, by_zone)
        failures = [failure for zone in by_zone for failure in results.get(zone, [])]
        problems = list(dict.fromkeys(problem for _, problem in failures))
        problems += [errors[zone] for zone in by_zone if zone in errors]
        if problems:
            failed = [record.identifier for record, _ in failures]
            failed += [r.identifier for zone in errors for r in by_zone[zone]]
            raise SolverError("; ".join(problems), identifiers=list(dict.fromkeys(failed)))

    def _run(self, action: str, record: TxtRecord) -> str:
        """Run the hook once; the empty string on success, else why it failed."""
        env = {
            "ACMELITE_DNS_ACTION": action,
            "ACMELITE_DNS_RECORD": record.name,
            "ACMELITE_DNS_VALUE": record.value,
            "ACMELITE_DNS_IDENTIFIER": record.identifier,
            "ACMELITE_DNS_ZONE": record.zone,
            "ACMELITE_DNS_TTL": str(self.ttl),
        }
        what = f"DNS hook {action} for {record.name} ({record.identifier})"
        return self._execute([*self.command, action, record.name, record.value], env, what)

    def _run_batch(self, action: str, zone: str, records: Sequence[TxtRecord]) -> str:
        """Run the hook once for ``zone``, the records as JSON on its standard input."""
        env = {"ACMELITE_DNS_ACTION": action, "ACMELITE_DNS_ZONE": zone,
               "ACMELITE_DNS_TTL": str(self.ttl)}  # fmt: skip
        listing = [
            {"record": r.name, "value": r.value, "identifier": r.identifier, "zone": r.zone,
             "ttl": self.ttl}
            for r in records
        ]  # fmt: skip
        what = f"DNS hook {action} for zone {zone or '(unknown)'} ({len(records)} record(s))"
        return self._execute([*self.command, action], env, what, stdin=json.dumps(listing))

    def _execute(
        self, argv: list[str], extra: Mapping[str, str], what: str, *, stdin: str | None = None
    ) -> str:
        log.debug("running %s", shlex.join(argv))
        try:
            done = subprocess.run(
                argv,
                env=hook_environ(extra),
                input=stdin.encode() if stdin is not None else None,
                stdin=subprocess.DEVNULL if stdin is None else None,
                capture_output=True,
                timeout=self.timeout,
                check=False,
            )
        except FileNotFoundError:
            return f"{what} failed: command not found: {self.command[0]}"
        except PermissionError:
            return f"{what} failed: not executable: {self.command[0]}"
        except subprocess.TimeoutExpired:
            return f"{what} did not finish within {self.timeout:g} s"
        except OSError as exc:
            return f"{what} failed to start: {exc.strerror or type(exc).__name__}"
        if done.returncode == 0:
            return ""
        output = _trim(done.stderr) or _trim(done.stdout) or "no output"
        status = (
            f"killed by signal {-done.returncode}"
            if done.returncode < 0
            else f"exit status {done.returncode}"
        )
        return f"{what} failed ({status}): {output}"


def _check_names(records: Sequence[TxtRecord]) -> None:
    """Every name a hook gets must be a host name: it comes from the CA or a DNS answer, and
    goes into argv and the environment of a command that may hand it to a shell."""
    for record in records:
        names = [(record.name, False), (record.identifier, True)]
        if record.zone not in ("", "."):  # the root zone is a zone, not a host name
            names.append((record.zone, False))
        for name, wildcard in names:
            why = check_hostname(name, wildcard=wildcard)
            if why is not None:
                raise SolverError(
                    f"refusing to run the DNS hook for {name!r}: not a host name ({why})",
                    identifiers=[record.identifier],
                )


def _trim(output: bytes) -> str:
    """The hook's output on one line, its tail kept when long."""
    text = " | ".join(
        line.strip() for line in output.decode("utf-8", "replace").splitlines() if line.strip()
    )
    return text if len(text) <= _OUTPUT_LIMIT else "…" + text[-_OUTPUT_LIMIT:]
