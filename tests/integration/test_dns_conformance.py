"""The DNS solver conformance kit (acmelite.testing.dns_conformance) on every built-in solver.

Each built-in dns-01 solver is run through every check of the kit against a real server:
rfc2136 on BIND, Knot and PowerDNS; powerdns (the HTTP API); lexicon with its powerdns
provider; the hook with the PowerDNS API hook of docs/dns-01.md, one value per call and in
batch mode. The kit is also shown to fail a solver that breaks its rules, so a green run
means something.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import dns.name
import dns.update
import pytest

from acmelite.challenges import ChallengeTask, Solver
from acmelite.dns.propagation import PropagationSettings
from acmelite.solvers.hook import HookSolver
from acmelite.solvers.lexicon import LexiconSolver
from acmelite.solvers.powerdns import PowerDnsSolver
from acmelite.solvers.rfc2136 import Rfc2136Solver
from acmelite.testing import (
    DNS_CHECKS,
    BindServer,
    ConformanceError,
    KnotServer,
    PowerDnsServer,
    assert_dns_solver_conforms,
    check_dns_solver,
)
from acmelite.testing.dnsserver import tsig_update

DOCS = Path(__file__).resolve().parents[2] / "docs"
DELEGATED = ("delegated.example.test", "_acme-challenge.delegated.acme-dns.test.")

Server = BindServer | KnotServer | PowerDnsServer


def doc_example(doc: str, name: str) -> str:
    text = (DOCS / doc).read_text()
    match = re.search(rf"<!-- example: {re.escape(name)} -->\s*```[a-z]*\n(.*?)```", text, re.S)
    assert match, f"no example {name!r} in {doc}"
    return match.group(1)


@pytest.fixture
def pdns_hook(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[PowerDnsServer], str]:
    """The PowerDNS API hook from docs/dns-01.md, configured for a server."""
    path = tmp_path / "pdns-hook.py"
    path.write_text(doc_example("dns-01.md", "pdns-hook.py"))

    def configure(server: PowerDnsServer) -> str:
        monkeypatch.setenv("PDNS_API_URL", server.api_url)
        monkeypatch.setenv("PDNS_API_KEY", server.api_key)
        return f"{sys.executable} {path}"

    return configure


def _check(
    make: Callable[[], Solver], server: Server, check: str, *, zone: str = "example.test"
) -> None:
    assert_dns_solver_conforms(
        make,
        zone=zone,
        nameserver=server.address,
        writer=server,
        cname=DELEGATED,
        checks=[check],
        timeout=20,
    )


def _rfc2136(server: Server) -> Callable[[], Solver]:
    def make() -> Solver:
        return Rfc2136Solver(
            server.address,
            server.key_name,
            server.key_secret,
            propagation=PropagationSettings(timeout=10, resolver=server.address),
        )

    return make


@pytest.mark.parametrize("check", DNS_CHECKS)
def test_rfc2136_on_bind(bind: BindServer, check: str) -> None:
    _check(_rfc2136(bind), bind, check)


@pytest.mark.parametrize("check", DNS_CHECKS)
def test_rfc2136_on_knot(knot: KnotServer, check: str) -> None:
    _check(_rfc2136(knot), knot, check)


@pytest.mark.parametrize("check", DNS_CHECKS)
def test_rfc2136_on_powerdns(powerdns: PowerDnsServer, check: str) -> None:
    _check(_rfc2136(powerdns), powerdns, check)


@pytest.mark.parametrize("check", DNS_CHECKS)
def test_powerdns_api(powerdns: PowerDnsServer, check: str) -> None:
    def make() -> Solver:
        return PowerDnsSolver(
            powerdns.api_url,
            powerdns.api_key,
            propagation=PropagationSettings(timeout=10, resolver=powerdns.address),
        )

    _check(make, powerdns, check)


@pytest.mark.parametrize("check", DNS_CHECKS)
def test_lexicon_powerdns_provider(powerdns: PowerDnsServer, check: str) -> None:
    def make() -> Solver:
        return LexiconSolver(
            "powerdns",
            {"auth_token": powerdns.api_key, "pdns_server": powerdns.api_url},
            propagation=PropagationSettings(timeout=10, resolver=powerdns.address),
        )

    _check(make, powerdns, check)


@pytest.mark.parametrize("batch", [False, True], ids=["per-value", "batch"])
@pytest.mark.parametrize("check", DNS_CHECKS)
def test_hook_with_the_documented_powerdns_hook(
    powerdns: PowerDnsServer, pdns_hook: Callable[[PowerDnsServer], str], check: str, batch: bool
) -> None:
    command = pdns_hook(powerdns)

    def make() -> Solver:
        return HookSolver(
            command,
            batch=batch,
            timeout=30,
            propagation=PropagationSettings(timeout=10, resolver=powerdns.address),
        )

    _check(make, powerdns, check)


# -- the kit finds what is wrong ---------------------------------------------------------------


class _Replacing:
    """A bad solver: replaces the record set (drops others' values, sets its TTL), and forgets
    nothing at cleanup — it deletes the whole set."""

    challenge_type = "dns-01"

    def __init__(self, server: BindServer) -> None:
        self.server = server

    def perform(self, tasks: Sequence[ChallengeTask]) -> None:
        for task in tasks:  # never follows a CNAME either
            self.server.delete_txt(task.dns01_record)
            self.server.add_txt(task.dns01_record, task.dns01_value, ttl=60)

    def cleanup(self, tasks: Sequence[ChallengeTask]) -> None:
        for task in tasks:
            self.server.delete_txt(task.dns01_record)


class _UnlockedReadModifyWrite(_Replacing):
    """A bad solver: reads the record set, and writes it back a moment later as a whole,
    with no lock — what a provider API hook without serialisation does."""

    def perform(self, tasks: Sequence[ChallengeTask]) -> None:
        for task in tasks:
            values = self.server.txt_values(task.dns01_record) | {task.dns01_value}
            time.sleep(0.3)  # the window in which another writer's value gets lost

            def replace(
                update: dns.update.UpdateMessage, name: dns.name.Name, values: set[str] = values
            ) -> None:
                update.delete(name, "TXT")
                for value in values:
                    update.add(name, 60, "TXT", f'"{value}"')

            tsig_update(
                self.server.host,
                self.server.port,
                "example.test",
                task.dns01_record,
                replace,
                key_name=self.server.key_name,
                secret=self.server.key_secret,
            )


def test_the_kit_fails_a_solver_that_replaces_record_sets(bind: BindServer) -> None:
    checks = [c for c in DNS_CHECKS if c != "two-solvers-one-zone"]
    report = check_dns_solver(
        _Replacing(bind),
        zone="example.test",
        nameserver=bind.address,
        writer=bind,
        cname=DELEGATED,
        timeout=3,
        checks=checks,
    )
    failed = {r.name: r.detail for r in report.failures}
    assert set(failed) == {"apex-and-wildcard", "foreign-value-kept", "cname-delegation"}, report
    assert failed["foreign-value-kept"].startswith("perform removed the foreign value")
    assert failed["apex-and-wildcard"].startswith("apex and wildcard values do not coexist")
    # BIND ignores a TXT record added at a CNAME (RFC 2136 §3.4.2.2): nothing is published
    assert failed["cname-delegation"].startswith(
        "after perform, the value of delegated.example.test is missing"
    )
    with pytest.raises(ConformanceError) as caught:
        assert_dns_solver_conforms(
            _Replacing(bind),
            zone="example.test",
            nameserver=bind.address,
            writer=bind,
            checks=["foreign-value-kept"],
            timeout=3,
        )
    assert "failed  foreign-value-kept" in str(caught.value)


def test_the_kit_finds_values_lost_by_writers_without_a_lock(bind: BindServer) -> None:
    report = check_dns_solver(
        lambda: _UnlockedReadModifyWrite(bind),
        zone="example.test",
        nameserver=bind.address,
        checks=["two-solvers-one-zone"],
        timeout=5,
    )
    assert report.failures, report
    assert report.failures[0].detail.startswith(
        "a value was lost when two solvers wrote at once"
    ), report


def test_the_kit_skips_what_it_was_not_given_and_rejects_unknown_checks(
    bind: BindServer,
) -> None:
    report = check_dns_solver(
        _rfc2136(bind),
        zone="example.test",
        nameserver=bind.address,
        checks=["foreign-value-kept", "cname-delegation", "publish-and-remove"],
    )
    assert [(r.name, r.status) for r in report.results] == [
        ("foreign-value-kept", "skipped"),
        ("cname-delegation", "skipped"),
        ("publish-and-remove", "passed"),
    ]
    assert report.ok
    with pytest.raises(ValueError, match="unknown checks"):
        check_dns_solver(
            _rfc2136(bind), zone="example.test", nameserver=bind.address, checks=["nonsense"]
        )


def test_the_kit_bounds_a_solver_that_hangs(bind: BindServer) -> None:
    class Hanging:
        challenge_type = "dns-01"

        def perform(self, tasks: Sequence[ChallengeTask]) -> None:
            time.sleep(5)

        def cleanup(self, tasks: Sequence[ChallengeTask]) -> None:
            pass

    report = check_dns_solver(
        Hanging(),
        zone="example.test",
        nameserver=bind.address,
        checks=["publish-and-remove"],
        timeout=0.5,
    )
    assert report.results[0].status == "failed"
    assert report.results[0].detail == "perform did not return within 0.5 s"
    assert report.results[0].seconds < 4


def test_the_documented_example_for_plugin_authors(bind_server: BindServer) -> None:
    """docs/library.md's conformance example, as a plugin author would run it (it starts its
    own BIND; ``bind_server`` only makes sure ``named`` is there)."""
    example = doc_example("library.md", "conformance.py")
    proc = subprocess.run(
        [sys.executable, "-c", example], capture_output=True, text=True, timeout=180, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("dns-01 conformance of Rfc2136Solver(")
    assert [line.split()[:2] for line in lines[1:]] == [["passed", c] for c in DNS_CHECKS]
