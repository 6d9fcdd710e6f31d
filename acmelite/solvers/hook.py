"""The ``hook`` DNS-01 solver: a command of yours publishes and removes the TXT values.

For each value ``perform`` runs ``CMD present <record> <value>`` and ``cleanup`` runs
``CMD cleanup <record> <value>``; ``<record>`` is fully qualified with its trailing dot
(``_acme-challenge.example.test.``, or the end of its CNAME chain). The same facts are in the
environment: ``ACMELITE_DNS_ACTION``, ``ACMELITE_DNS_RECORD``, ``ACMELITE_DNS_VALUE`` and
``ACMELITE_DNS_IDENTIFIER`` (the name as requested, ``*.example.test`` for a wildcard).

Hooks for different records run at the same time; the values of one record (the apex and
the wildcard) run one after the other, so a hook that reads, changes and writes a record
set does not race with itself. A hook must *add* its value and, at cleanup, remove only its
value; ``cleanup`` runs for every value whose ``present`` was started, so it must tolerate a
value that is not there. A non-zero exit fails the names of that value with the hook's
standard error in the message.
"""

from __future__ import annotations

import logging
import shlex
import subprocess
from collections.abc import Mapping, Sequence
from typing import ClassVar

from .._hookenv import hook_environ
from ..challenges import SolverOption
from ..dns.challenge import (
    PROPAGATION_OPTIONS,
    DnsChallengeSolver,
    TxtRecord,
    number_option,
    parallel,
    propagation_from_options,
)
from ..dns.propagation import PropagationSettings
from ..dns.query import Lookup
from ..errors import InvalidInput, SolverError

__all__ = ["HookSolver"]

log = logging.getLogger(__name__)

_OUTPUT_LIMIT = 400


class HookSolver(DnsChallengeSolver):
    """Publish ``_acme-challenge`` TXT values by running a command.

    ``command`` is a string (split like a shell would, but no shell runs) or an argument
    list. Lookups (CNAME, the zone's nameservers) go to ``propagation.resolver`` if set, else
    to the system resolver. ``timeout`` bounds each run of the command.
    """

    options: ClassVar[tuple[SolverOption, ...]] = (
        SolverOption(
            name="command",
            help="run 'COMMAND present|cleanup RECORD. VALUE' for each TXT value",
            required=True,
        ),
        SolverOption(
            name="timeout", help="seconds each run of the command may take", default="300"
        ),
        *PROPAGATION_OPTIONS,
    )

    @classmethod
    def from_options(cls, options: Mapping[str, str]) -> HookSolver:
        """Build from the string options of :attr:`options` (see the registry)."""
        return cls(
            options["command"],
            propagation=propagation_from_options(options),
            timeout=number_option(options, "timeout"),
        )

    def __init__(
        self,
        command: str | Sequence[str],
        propagation: PropagationSettings | None = None,
        *,
        timeout: float = 300.0,
    ) -> None:
        super().__init__(propagation=propagation)
        try:
            argv = shlex.split(command) if isinstance(command, str) else list(command)
        except ValueError as exc:
            raise InvalidInput(f"bad DNS hook command {command!r}: {exc}") from None
        if not argv or not argv[0]:
            raise InvalidInput("the DNS hook command is empty")
        self.command = tuple(argv)
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"HookSolver(command={shlex.join(self.command)!r})"

    def _lookup(self) -> Lookup:
        resolver = self.propagation.resolver_server
        if resolver is not None:
            return Lookup([resolver])
        return Lookup(use_system=True)

    def _publish(self, records: Sequence[TxtRecord]) -> None:
        self._run_all("present", records)

    def _unpublish(self, records: Sequence[TxtRecord]) -> None:
        self._run_all("cleanup", records)

    def _run_all(self, action: str, records: Sequence[TxtRecord]) -> None:
        """Run the hook for every value: records in parallel, values of a record in turn."""
        by_name: dict[str, list[TxtRecord]] = {}
        for record in records:
            by_name.setdefault(record.name, []).append(record)

        def run_record(name: str) -> list[tuple[TxtRecord, str]]:
            failures = []
            for record in by_name[name]:
                problem = self._run(action, record)
                if problem:
                    failures.append((record, problem))
            return failures

        results, _ = parallel(run_record, by_name)
        failures = [failure for name in by_name for failure in results[name]]
        if failures:
            raise SolverError(
                "; ".join(problem for _, problem in failures),
                identifiers=list(dict.fromkeys(record.identifier for record, _ in failures)),
            )

    def _run(self, action: str, record: TxtRecord) -> str:
        """Run the hook once; the empty string on success, else why it failed."""
        argv = [*self.command, action, record.name, record.value]
        env = hook_environ(
            {
                "ACMELITE_DNS_ACTION": action,
                "ACMELITE_DNS_RECORD": record.name,
                "ACMELITE_DNS_VALUE": record.value,
                "ACMELITE_DNS_IDENTIFIER": record.identifier,
            }
        )
        what = f"DNS hook {action} for {record.name} ({record.identifier})"
        log.debug("running %s", shlex.join(argv))
        try:
            done = subprocess.run(
                argv,
                env=env,
                stdin=subprocess.DEVNULL,
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


def _trim(output: bytes) -> str:
    """The hook's output on one line, its tail kept when long."""
    text = " | ".join(
        line.strip() for line in output.decode("utf-8", "replace").splitlines() if line.strip()
    )
    return text if len(text) <= _OUTPUT_LIMIT else "…" + text[-_OUTPUT_LIMIT:]
