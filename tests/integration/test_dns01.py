"""The DNS-01 solvers against a real BIND 9, at solver level (no CA involved).

Every test builds ``ChallengeTask`` objects itself, runs ``perform`` and ``cleanup`` the way
the client does, and looks at BIND directly. The autouse ``bind`` fixture fails any test that
leaves a TXT value behind.
"""

from __future__ import annotations

import re
import secrets
import shlex
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from cryptography import x509

from acmelite.challenges import ChallengeTask, Solver
from acmelite.client import AcmeClient, CertificateBundle
from acmelite.dns.propagation import PropagationSettings
from acmelite.dns.query import Lookup, Server
from acmelite.dns.zone import find_zone, follow_cname, nameservers
from acmelite.errors import SolverError
from acmelite.keys import AccountKey
from acmelite.models import Challenge, Identifier
from acmelite.solvers.hook import HookSolver
from acmelite.solvers.rfc2136 import Rfc2136Solver
from acmelite.testing.bind import BindNotFound, BindServer
from acmelite.testing.pebble import Pebble, PebbleServer
from tests.support import CliResult, issue_argv, run_cli, verify_chain, without_http

DOCS = Path(__file__).resolve().parents[2] / "docs" / "dns-01.md"


@pytest.fixture(autouse=True)
def _clean_bind(bind: BindServer) -> None:
    """Every test here gets the session BIND, which must be left without TXT values."""


def make_task(name: str) -> ChallengeTask:
    token = secrets.token_urlsafe(32)
    return ChallengeTask(
        identifier=Identifier(type="dns", value=name.removeprefix("*.")),
        challenge=Challenge(
            type="dns-01", url=f"https://ca.test/chall/{token}", status="pending", token=token
        ),
        key_authorization=f"{token}.{secrets.token_urlsafe(32)}",
        wildcard=name.startswith("*."),
    )


def rfc2136(bind: BindServer, **options: object) -> Rfc2136Solver:
    """A solver with the session key; propagation checked at BIND's NS records by default."""
    settings = options.pop("propagation", None) or PropagationSettings(
        timeout=5, nameserver_port=bind.port
    )
    return Rfc2136Solver(
        bind.address,
        str(options.pop("tsig_key_name", bind.key_name)),
        str(options.pop("tsig_secret", bind.key_secret)),
        propagation=settings,  # type: ignore[arg-type]
        **options,  # type: ignore[arg-type]
    )


def solve(solver: Solver, tasks: Sequence[ChallengeTask]) -> None:
    """perform + cleanup like the client: cleanup always, in a finally."""
    try:
        solver.perform(tasks)
    finally:
        solver.cleanup(tasks)


def doc_example(name: str) -> str:
    """The fenced block after ``<!-- example: NAME -->`` in docs/dns-01.md."""
    text = DOCS.read_text()
    match = re.search(rf"<!-- example: {re.escape(name)} -->\s*```[a-z]*\n(.*?)```", text, re.S)
    assert match, f"no example {name!r} in {DOCS}"
    return match.group(1)


# -- rfc2136: the record set is shared, never replaced --------------------------------------


def test_apex_and_wildcard_values_coexist_and_cleanup_removes_both(bind: BindServer) -> None:
    apex, wildcard = make_task("example.test"), make_task("*.example.test")
    assert apex.dns01_record == wildcard.dns01_record == "_acme-challenge.example.test."
    solver = rfc2136(bind)
    solver.perform([apex, wildcard])
    try:
        assert bind.txt_values("_acme-challenge.example.test") == {
            apex.dns01_value,
            wildcard.dns01_value,
        }
    finally:
        solver.cleanup([apex, wildcard])
    assert bind.txt_values("_acme-challenge.example.test") == set()


def test_cleanup_removes_only_its_own_values(bind: BindServer) -> None:
    bind.add_txt("_acme-challenge.example.test", "foreign-value-from-another-client")
    try:
        task = make_task("example.test")
        solver = rfc2136(bind)
        solver.perform([task])
        assert bind.txt_values("_acme-challenge.example.test") == {
            "foreign-value-from-another-client",
            task.dns01_value,
        }
        solver.cleanup([task])
        assert bind.txt_values("_acme-challenge.example.test") == {
            "foreign-value-from-another-client"
        }
        solver.cleanup([task])  # a second cleanup has nothing left to do
    finally:
        bind.delete_txt("_acme-challenge.example.test", "foreign-value-from-another-client")


def test_cleanup_of_one_order_leaves_a_concurrent_orders_value(bind: BindServer) -> None:
    first, second = make_task("example.test"), make_task("example.test")
    solver_a, solver_b = rfc2136(bind), rfc2136(bind)
    solver_a.perform([first])
    solver_b.perform([second])
    solver_a.cleanup([first])
    assert bind.txt_values("_acme-challenge.example.test") == {second.dns01_value}
    solver_b.cleanup([second])


# -- where the record goes: CNAME delegation and zone discovery ------------------------------


def test_cname_delegation_publishes_at_the_target(bind: BindServer) -> None:
    lookup = Lookup([Server(bind.host, bind.port)])
    assert (
        follow_cname(lookup, "_acme-challenge.delegated.example.test.")
        == "_acme-challenge.delegated.acme-dns.test."
    )
    tasks = [make_task("delegated.example.test"), make_task("*.delegated.example.test")]
    solver = rfc2136(bind)
    solver.perform(tasks)
    try:
        assert bind.all_txt() == {
            "_acme-challenge.delegated.acme-dns.test.": {t.dns01_value for t in tasks}
        }
    finally:
        solver.cleanup(tasks)


def test_zone_is_found_by_walking_up_soa_queries(bind: BindServer) -> None:
    lookup = Lookup([Server(bind.host, bind.port)])
    assert (
        find_zone(lookup, "_acme-challenge.team-ns.svc.clusterset.local.")
        == "svc.clusterset.local."
    )
    assert find_zone(lookup, "_acme-challenge.a.b.c.example.test.") == "example.test."
    assert find_zone(lookup, "example.test.") == "example.test."

    task = make_task("*.team-ns.svc.clusterset.local")
    solver = rfc2136(bind)  # no zone given
    solver.perform([task])
    try:
        assert bind.all_txt() == {
            "_acme-challenge.team-ns.svc.clusterset.local.": {task.dns01_value}
        }
    finally:
        solver.cleanup([task])


def test_a_given_zone_is_used_and_a_wrong_one_named_in_the_error(bind: BindServer) -> None:
    task = make_task("www.example.test")
    solve(rfc2136(bind, zone="example.test"), [task])

    solver = rfc2136(bind, zone="test")
    with pytest.raises(SolverError) as caught:
        solver.perform([task])
    assert str(caught.value).startswith(
        f"server {bind.address} is not authoritative for zone test (NOTAUTH)"
    )
    assert caught.value.identifiers == ("www.example.test",)
    with pytest.raises(SolverError):
        solver.cleanup([task])  # it tries, and says so


def test_nameservers_come_from_the_zone_ns_set(bind: BindServer) -> None:
    lookup = Lookup([Server(bind.host, bind.port)])
    found = nameservers(lookup, "lagging.test.", port=bind.port)
    assert [str(s) for s in found] == [
        f"ns.lagging.test (127.0.0.1:{bind.port})",
        f"ns2.lagging.test (127.0.0.2:{bind.port})",
    ]


# -- failures with clear messages ------------------------------------------------------------


def test_wrong_tsig_secret_names_server_and_zone_and_hides_the_secret(bind: BindServer) -> None:
    wrong = "c2VjcmV0LXRoYXQtaXMtbm90LXRoZS1yaWdodC1vbmUhISE="
    solver = rfc2136(bind, tsig_secret=wrong)
    task = make_task("example.test")
    with pytest.raises(SolverError) as caught:
        solver.perform([task])
    message = str(caught.value)
    assert message == (
        f"TSIG key 'acmelite-test' rejected by {bind.address} for zone example.test: "
        'BADSIG — check the secret (key "acmelite-test" in named.conf)'
    )
    assert caught.value.identifiers == ("example.test",)
    with pytest.raises(SolverError) as cleanup_error:
        solver.cleanup([task])
    for text in (message, str(cleanup_error.value), repr(solver), repr(solver._key)):
        assert wrong not in text
        assert bind.key_secret not in text


def test_key_not_allowed_for_the_zone(bind: BindServer) -> None:
    limited = {"tsig_key_name": bind.limited_key_name, "tsig_secret": bind.limited_key_secret}
    solve(rfc2136(bind, **limited), [make_task("x.acme-dns.test")])  # its own zone works

    solver = rfc2136(bind, **limited)
    with pytest.raises(SolverError) as caught:
        solver.perform([make_task("example.test")])
    assert str(caught.value) == (
        f"server {bind.address} refused the update for zone example.test: the TSIG key "
        "'acmelite-limited' may not update this name (check update-policy: grant acmelite-limited"
        " zonesub TXT;)"
    )


def test_half_done_perform_is_cleaned_up_and_every_zone_tried(bind: BindServer) -> None:
    limited = {"tsig_key_name": bind.limited_key_name, "tsig_secret": bind.limited_key_secret}
    allowed, refused = make_task("a.acme-dns.test"), make_task("a.example.test")
    solver = rfc2136(bind, **limited)
    with pytest.raises(SolverError) as caught:
        solver.perform([allowed, refused])
    assert caught.value.identifiers == ("a.example.test",)
    assert bind.txt_values("_acme-challenge.a.acme-dns.test") == {allowed.dns01_value}
    with pytest.raises(SolverError) as cleanup_error:
        solver.cleanup([allowed, refused])
    assert "refused" in str(cleanup_error.value)
    assert bind.txt_values("_acme-challenge.a.acme-dns.test") == set()


def test_a_nameserver_that_never_serves_the_value_is_named(bind: BindServer) -> None:
    settings = PropagationSettings(timeout=1.0, nameserver_port=bind.port)
    task = make_task("www.lagging.test")
    solver = rfc2136(bind, propagation=settings)
    started = time.monotonic()
    with pytest.raises(SolverError) as caught:
        solve(solver, [task])
    elapsed = time.monotonic() - started
    message = str(caught.value)
    assert message.startswith("DNS propagation timed out after 1 s: ")
    assert f"_acme-challenge.www.lagging.test. TXT '{task.dns01_value}' still missing" in message
    assert f"ns2.lagging.test (127.0.0.2:{bind.port})" in message
    assert "ns.lagging.test " not in message  # the primary had it
    assert caught.value.identifiers == ("www.lagging.test",)
    assert elapsed < 3


def test_a_hook_that_publishes_nothing_times_out_naming_the_server(bind: BindServer) -> None:
    settings = PropagationSettings(timeout=0.8, resolver=bind.address)
    solver = HookSolver([sys.executable, "-c", "pass"], propagation=settings)
    task = make_task("*.example.test")
    started = time.monotonic()
    with pytest.raises(SolverError) as caught:
        solve(solver, [task])
    elapsed = time.monotonic() - started
    assert str(caught.value) == (
        "DNS propagation timed out after 0.8 s: _acme-challenge.example.test. TXT "
        f"'{task.dns01_value}' still missing at {bind.address}"
    )
    assert caught.value.identifiers == ("*.example.test",)
    assert elapsed < 2.5


def test_a_failing_hook_reports_its_stderr(bind: BindServer) -> None:
    script = "import sys; sys.stderr.write('zone example.test is locked\\n'); sys.exit(3)"
    solver = HookSolver(
        [sys.executable, "-c", script], propagation=PropagationSettings(resolver=bind.address)
    )
    task = make_task("example.test")
    with pytest.raises(SolverError) as caught:
        solver.perform([task])
    assert str(caught.value) == (
        "DNS hook present for _acme-challenge.example.test. (example.test) failed "
        "(exit status 3): zone example.test is locked"
    )
    assert caught.value.identifiers == ("example.test",)
    with pytest.raises(SolverError) as cleanup_error:
        solver.cleanup([task])  # cleanup runs the hook for every value it tried to present
    assert str(cleanup_error.value).startswith("DNS hook cleanup for _acme-challenge.example.test.")
    solver.cleanup([task])  # and only once


# -- the hook solver, with the documented hook ------------------------------------------------


@pytest.fixture
def doc_hook(tmp_path: Path, bind: BindServer, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The Python hook from docs/dns-01.md, configured for the session BIND."""
    path = tmp_path / "dns-hook.py"
    path.write_text(doc_example("dns-hook.py"))
    monkeypatch.setenv("DNS_SERVER", bind.address)
    monkeypatch.setenv("TSIG_KEY_NAME", bind.key_name)
    monkeypatch.setenv("TSIG_SECRET", bind.key_secret)
    return [sys.executable, str(path)]


def test_hook_solver_publishes_apex_and_wildcard(bind: BindServer, doc_hook: list[str]) -> None:
    tasks = [make_task("example.test"), make_task("*.example.test")]
    solver = HookSolver(doc_hook, propagation=PropagationSettings(timeout=5, resolver=bind.address))
    solver.perform(tasks)
    try:
        assert bind.all_txt() == {"_acme-challenge.example.test.": {t.dns01_value for t in tasks}}
    finally:
        solver.cleanup(tasks)


def test_hook_solver_follows_the_cname(bind: BindServer, doc_hook: list[str]) -> None:
    task = make_task("delegated.example.test")
    solver = HookSolver(doc_hook, propagation=PropagationSettings(timeout=5, resolver=bind.address))
    solver.perform([task])
    try:
        assert bind.all_txt() == {"_acme-challenge.delegated.acme-dns.test.": {task.dns01_value}}
    finally:
        solver.cleanup([task])


def test_hook_gets_the_record_with_its_trailing_dot_and_the_environment(
    bind: BindServer, tmp_path: Path
) -> None:
    log = tmp_path / "calls.txt"
    script = (
        "import os, sys\n"
        f"with open({str(log)!r}, 'a') as f:\n"
        "    f.write(' '.join(sys.argv[1:]) + ' | ' + ' '.join(os.environ[k] for k in (\n"
        "        'ACMELITE_DNS_ACTION', 'ACMELITE_DNS_RECORD', 'ACMELITE_DNS_VALUE',\n"
        "        'ACMELITE_DNS_IDENTIFIER')) + '\\n')\n"
    )
    task = make_task("*.team-ns.svc.clusterset.local")
    solver = HookSolver(
        [sys.executable, "-c", script],
        propagation=PropagationSettings(timeout=0, resolver=bind.address),
    )
    solve(solver, [task])
    record, value = "_acme-challenge.team-ns.svc.clusterset.local.", task.dns01_value
    assert log.read_text().splitlines() == [
        f"present {record} {value} | present {record} {value} {task.name}",
        f"cleanup {record} {value} | cleanup {record} {value} {task.name}",
    ]


def test_documented_nsupdate_hook(bind: BindServer, tmp_path: Path) -> None:
    if shutil.which("nsupdate") is None:
        pytest.skip("nsupdate is not installed (Debian: bind9-dnsutils)")
    key_file = tmp_path / "acme.key"
    key_file.write_text(
        f'key "{bind.key_name}" {{ algorithm hmac-sha256; secret "{bind.key_secret}"; }};\n'
    )
    hook = tmp_path / "dns-hook.sh"
    hook.write_text(doc_example("dns-hook.sh"))
    hook.chmod(0o755)
    tasks = [make_task("example.test"), make_task("*.example.test")]
    settings = PropagationSettings(timeout=5, resolver=bind.address)
    solver = HookSolver([str(hook)], propagation=settings)
    env = {
        "DNS_SERVER": bind.host,
        "DNS_PORT": str(bind.port),
        "DNS_ZONE": "example.test",
        "TSIG_KEY_FILE": str(key_file),
    }
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        solver.perform(tasks)
        try:
            assert bind.txt_values("_acme-challenge.example.test") == {t.dns01_value for t in tasks}
        finally:
            solver.cleanup(tasks)


# -- one propagation wait per order -----------------------------------------------------------


def _perform_time(solver: Solver, names: Sequence[str]) -> float:
    """Best of three: seconds for perform (publish + propagation check) of ``names``."""
    best = float("inf")
    for _ in range(3):
        tasks = [make_task(name) for name in names]
        started = time.perf_counter()
        try:
            solver.perform(tasks)
            best = min(best, time.perf_counter() - started)
        finally:
            solver.cleanup(tasks)
    return best


@pytest.mark.parametrize("kind", ["rfc2136", "hook-batch"])
def test_ten_names_cost_about_what_one_costs(
    bind: BindServer, kind: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """rfc2136: one update and one propagation wait (at the zone's NS set) for all names.

    hook-batch: one run of the hook per zone, with every record on its standard input (a
    hook per value runs one at a time per zone: tests/integration/test_dns_hooks.py). The
    hook stands for a slow DNS provider API (0.3 s of waiting, no CPU), so the test
    measures the solver, not how fast this machine starts Python interpreters.
    """
    names = [f"host{i}.example.test" for i in range(10)]
    if kind == "rfc2136":
        solver: Solver = rfc2136(bind)
        names[-1] = "*.host0.example.test"  # shares host0's record
    else:
        slow_api = ["/bin/sh", "-c", "sleep 0.3", "hook"]
        settings = PropagationSettings(timeout=0, resolver=bind.address)
        solver = HookSolver(slow_api, propagation=settings, batch=True)
    one = _perform_time(solver, ["one.example.test"])
    ten = _perform_time(solver, names)
    with capsys.disabled():
        print(f"\n[dns-01 {kind}] perform: 1 name {one:.3f} s, 10 names {ten:.3f} s")
    assert ten < max(3 * one, one + 0.5), f"1 name: {one:.3f} s, 10 names: {ten:.3f} s"


# -- whole orders against Pebble, which resolves through the same BIND ------------------------


@pytest.fixture
def dns_pebble(pebble_factory: Callable[..., PebbleServer], bind: BindServer) -> Pebble:
    """A Pebble whose validation authority asks the session BIND (``-dnsserver``)."""
    return pebble_factory(dns_server=bind.address)


def _acme_client(pebble: Pebble) -> AcmeClient:
    client = AcmeClient(pebble.directory_url, AccountKey.generate(), ca_bundle=pebble.ca_bundle)
    client.register(agree_tos=True)
    return client


def _sans(fullchain: bytes, pebble: Pebble, name: str) -> list[str]:
    leaf = verify_chain(fullchain, pebble.roots(), name)
    sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return sorted(sans.get_values_for_type(x509.DNSName))


def test_pebble_issues_apex_and_wildcard_in_one_order_via_rfc2136(
    dns_pebble: Pebble, bind: BindServer
) -> None:
    names = ["example.test", "*.example.test"]
    solver = rfc2136(bind, propagation=PropagationSettings(timeout=10, nameserver_port=bind.port))
    with _acme_client(dns_pebble) as client:
        bundle = client.issue(names, solver=solver)
    assert _sans(bundle.fullchain_pem, dns_pebble, "www.example.test") == sorted(names)


def test_pebble_issues_apex_and_wildcard_via_the_hook(
    dns_pebble: Pebble, bind: BindServer, doc_hook: list[str]
) -> None:
    names = ["hooked.example.test", "*.hooked.example.test"]
    settings = PropagationSettings(timeout=10, resolver=bind.address)
    with _acme_client(dns_pebble) as client:
        bundle = client.issue(names, solver=HookSolver(doc_hook, propagation=settings))
    assert _sans(bundle.fullchain_pem, dns_pebble, "a.hooked.example.test") == sorted(names)


def _dns_argv(
    pebble: Pebble, bind: BindServer, tmp_path: Path, *names: str, secret: str | None = None
) -> list[str]:
    key_file = tmp_path / "tsig.key"
    key_file.write_text(
        f'key "{bind.key_name}" {{\n\talgorithm hmac-sha256;\n'
        f'\tsecret "{secret or bind.key_secret}";\n}};\n'
    )
    return [
        *without_http(issue_argv(pebble, tmp_path, *names)),
        "--challenge", "dns-01", "--dns", "rfc2136", "--dns-server", bind.address,
        "--tsig-key-name", bind.key_name, "--tsig-secret-file", str(key_file),
        "--dns-resolver", bind.address, "--dns-propagation-timeout", "10",
    ]  # fmt: skip


def test_cli_issues_a_wildcard_for_a_cluster_namespace(
    dns_pebble: Pebble, bind: BindServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    name = "*.team-ns.svc.clusterset.local"
    result = run_cli(_dns_argv(dns_pebble, bind, tmp_path, name), capsys)
    assert result.code == 0, result.err
    fullchain = (tmp_path / "out/fullchain.pem").read_bytes()
    assert _sans(fullchain, dns_pebble, "api.team-ns.svc.clusterset.local") == [name]


def test_cli_issues_through_a_cname_delegated_challenge(
    dns_pebble: Pebble, bind: BindServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    names = ["delegated.example.test", "*.delegated.example.test"]
    argv = _dns_argv(dns_pebble, bind, tmp_path, *names)
    # The key may update acme-dns.test only: publishing at the CNAME's end is the only way.
    argv[argv.index(bind.key_name)] = bind.limited_key_name
    (tmp_path / "tsig.key").write_text(
        f'key "{bind.limited_key_name}" {{ algorithm hmac-sha256; '
        f'secret "{bind.limited_key_secret}"; }};\n'
    )
    result = run_cli(argv, capsys)
    assert result.code == 0, result.err
    assert "publishing at _acme-challenge.delegated.acme-dns.test." in result.err
    fullchain = (tmp_path / "out/fullchain.pem").read_bytes()
    assert _sans(fullchain, dns_pebble, "x.delegated.example.test") == sorted(names)


def _error_line(result: CliResult) -> str:
    """The one ``acmelite: error:`` line, which must be the last line of stderr."""
    lines = result.err.strip().splitlines()
    errors = [line for line in lines if line.startswith("acmelite: error:")]
    assert errors == [lines[-1]], result.err
    return lines[-1].removeprefix("acmelite: error: ")


def test_cli_wrong_tsig_secret(
    dns_pebble: Pebble, bind: BindServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    wrong = "c2VjcmV0LXRoYXQtaXMtbm90LXRoZS1yaWdodC1vbmUhISE="
    argv = _dns_argv(dns_pebble, bind, tmp_path, "bad-secret.example.test", secret=wrong)
    result = run_cli(argv, capsys)
    assert result.code != 0
    assert _error_line(result) == (
        f"TSIG key 'acmelite-test' rejected by {bind.address} for zone example.test: "
        'BADSIG — check the secret (key "acmelite-test" in named.conf)'
    )
    # Said once: the cleanup's own failure (the same refusal) is not printed again.
    assert result.err.count("BADSIG") == 1, result.err
    assert wrong not in result.err + result.out
    assert bind.key_secret not in result.err + result.out


def test_cli_key_that_may_not_update_the_zone(
    dns_pebble: Pebble, bind: BindServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = _dns_argv(dns_pebble, bind, tmp_path, "refused.example.test")
    argv[argv.index(bind.key_name)] = bind.limited_key_name
    (tmp_path / "tsig.key").write_text(bind.limited_key_secret)
    result = run_cli(argv, capsys)
    assert result.code != 0
    assert _error_line(result) == (
        f"server {bind.address} refused the update for zone example.test: the TSIG key "
        "'acmelite-limited' may not update this name (check update-policy: grant acmelite-limited"
        " zonesub TXT;)"
    )


def _hook_argv(pebble: Pebble, bind: BindServer, tmp_path: Path, name: str, hook: str) -> list[str]:
    return [
        *without_http(issue_argv(pebble, tmp_path, name)),
        "--challenge", "dns-01", "--dns", "hook", "--dns-hook", hook,
        "--dns-resolver", bind.address, "--dns-propagation-timeout", "1",
    ]  # fmt: skip


def test_cli_record_that_never_propagates(
    dns_pebble: Pebble, bind: BindServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    hook = shlex.join([sys.executable, "-c", "pass"])  # exits 0, publishes nothing
    started = time.monotonic()
    result = run_cli(_hook_argv(dns_pebble, bind, tmp_path, "*.lost.example.test", hook), capsys)
    assert result.code != 0
    assert time.monotonic() - started < 10
    error = _error_line(result)
    assert error.startswith(
        "DNS propagation timed out after 1 s: _acme-challenge.lost.example.test. TXT '"
    )
    assert error.endswith(f"' still missing at {bind.address}")


def test_cli_hook_that_fails(
    dns_pebble: Pebble, bind: BindServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    script = "import sys; print('API token expired', file=sys.stderr); sys.exit(1)"
    hook = shlex.join([sys.executable, "-c", script])
    result = run_cli(_hook_argv(dns_pebble, bind, tmp_path, "failing.example.test", hook), capsys)
    assert result.code != 0
    assert _error_line(result) == (
        "DNS hook present for _acme-challenge.failing.example.test. (failing.example.test) "
        "failed (exit status 1): API token expired"
    )
    assert "cleanup failed: DNS hook cleanup" in result.err  # reported, not hiding the error


def test_documented_library_example(dns_pebble: Pebble, bind: BindServer) -> None:
    with _acme_client(dns_pebble) as client:
        namespace = {
            "client": client,
            "server": bind.address,
            "key_name": bind.key_name,
            "secret": bind.key_secret,
            "resolver": bind.address,
        }
        exec(doc_example("library.py"), namespace)  # noqa: S102 - our own documentation
    bundle = namespace["bundle"]
    assert isinstance(bundle, CertificateBundle)
    assert _sans(bundle.fullchain_pem, dns_pebble, "example.test") == [
        "*.example.test",
        "example.test",
    ]


def test_bind_server_reports_a_missing_named(tmp_path: Path) -> None:
    server = BindServer(named=str(tmp_path / "named"))
    with pytest.raises(BindNotFound, match="is not an executable named"):
        server.start()
    assert server.directory is None  # nothing left behind
