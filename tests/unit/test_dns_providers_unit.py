"""The DNS provider solvers, hooks and locks without a server: options, secrets, shorthands,
the generated provider list, zone locks across processes, cleanup failures as data."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from acmelite.challenges import ChallengeTask
from acmelite.client import AcmeClient
from acmelite.dns.zonelock import zone_lock
from acmelite.errors import CleanupFailed, InvalidInput, SolverError
from acmelite.keys import AccountKey
from acmelite.solvers import ChallengeConfig, SolverConfigError, check_config, solver_for
from acmelite.solvers.hook import HookSolver
from acmelite.solvers.powerdns import PowerDnsSolver
from acmelite.solvers.rfc2136 import parse_tsig_key
from acmelite.testing.dns_conformance import make_dns_task
from tests.conftest import unavailable
from tests.support import run_cli

ROOT = Path(__file__).resolve().parents[2]


def dns(solver: str, **options: str) -> ChallengeConfig:
    return ChallengeConfig(type="dns-01", solver=solver, options=options)


@pytest.fixture(scope="module")
def lexicon_installed() -> None:
    if importlib.util.find_spec("lexicon") is None:
        unavailable("dns-lexicon is not installed (pip install -e '.[test]')")


# -- docs/dns-providers.md --------------------------------------------------------------------


def test_the_provider_list_is_generated_from_the_installed_lexicon(lexicon_installed: None) -> None:
    spec = importlib.util.spec_from_file_location(
        "dns_providers", ROOT / "scripts/dns_providers.py"
    )
    assert spec is not None and spec.loader is not None
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    expected = script.render()
    assert (ROOT / "docs/dns-providers.md").read_text() == expected, (
        "docs/dns-providers.md is out of date: run python scripts/dns_providers.py"
    )
    from acmelite.solvers.lexicon import providers

    names = providers()
    assert len(names) > 50 and "powerdns" in names and "cloudflare" in names
    for name in names:
        assert f"| `{name}` |" in expected
    assert "`auth_token` (`LEXICON_CLOUDFLARE_AUTH_TOKEN`) — *secret*" in expected
    assert "| `powerdns` | `auth_token` (`LEXICON_POWERDNS_AUTH_TOKEN`)" in expected
    assert "**tested here**" in expected.split("| `powerdns` | `auth_token`")[1].split("\n")[0]
    assert "needs `pip install 'dns-lexicon[route53]'` (boto3)" in expected


# -- lexicon options through the registry ------------------------------------------------------


def test_lexicon_provider_options_pass_through_the_registry(
    lexicon_installed: None, tmp_path: Path
) -> None:
    token = tmp_path / "token"
    token.write_text("tok-123\n")
    config = dns(
        "lexicon",
        provider="powerdns",
        **{"auth-token": f"@{token}", "pdns_server": "http://127.0.0.1:8081"},
    )
    info = check_config(config)
    assert info.option("pdns_server") is not None and not info.option("pdns_server").secret  # type: ignore[union-attr]
    solver = solver_for(config, environ={})
    assert solver._given == {"auth_token": "tok-123", "pdns_server": "http://127.0.0.1:8081"}  # type: ignore[attr-defined]
    assert "tok-123" not in repr(solver)


@pytest.mark.parametrize("name", ["auth_token", "auth_password", "auth_secret", "api_key"])
def test_lexicon_credentials_are_secret(lexicon_installed: None, name: str) -> None:
    with pytest.raises(SolverConfigError, match=f"option '{name}' of solver 'lexicon' is secret"):
        check_config(dns("lexicon", provider="cloudflare", **{name: "inline"}))


def test_lexicon_refuses_a_provider_option_it_does_not_have(lexicon_installed: None) -> None:
    with pytest.raises(SolverConfigError) as caught:
        solver_for(dns("lexicon", provider="cloudflare", colour="blue"), environ={})
    assert str(caught.value) == (
        "lexicon provider 'cloudflare' has no option 'colour'; its options: auth_token,"
        " auth_username, zone_id"
    )
    with pytest.raises(SolverConfigError, match="has no option 'Bad Name'"):
        check_config(dns("lexicon", provider="cloudflare", **{"Bad Name": "x"}))


# -- powerdns options ------------------------------------------------------------------------


def test_powerdns_options() -> None:
    config = dns("powerdns", **{"api-url": "http://ns1.test:8081/", "server-id": "main"})
    solver = solver_for(config, environ={"ACMELITE_DNS_API_KEY": "k3y"})
    assert isinstance(solver, PowerDnsSolver)
    assert solver.api.base_url == "http://ns1.test:8081/api/v1/servers/main"
    assert "k3y" not in repr(solver) + repr(solver.api)
    with pytest.raises(SolverConfigError, match="option 'api-key' of solver 'powerdns' is secret"):
        check_config(dns("powerdns", **{"api-url": "http://x", "api-key": "inline"}))
    with pytest.raises(SolverConfigError, match=r"needs option 'api-key'.*ACMELITE_DNS_API_KEY"):
        solver_for(dns("powerdns", **{"api-url": "http://x"}), environ={})
    with pytest.raises(InvalidInput, match="bad PowerDNS API URL 'ns1:8081'"):
        solver_for(
            dns("powerdns", **{"api-url": "ns1:8081"}), environ={"ACMELITE_DNS_API_KEY": "k"}
        )
    with pytest.raises(InvalidInput, match="bad PowerDNS server id"):
        PowerDnsSolver("http://x", "k", server_id="a/b")


# -- the CLI's shorthands --------------------------------------------------------------------


def test_dns_nameserver_port_and_hook_batch_shorthands(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from acmelite.cli import build_parser
    from acmelite.cli.challenge_options import challenge_config

    parser = build_parser()
    args = parser.parse_args(
        [
            "issue",
            "-d",
            "x.test",
            "--challenge",
            "dns-01",
            "--dns",
            "hook",
            "--dns-hook",
            "/bin/hook",
            "--dns-hook-batch",
            "--dns-nameserver-port",
            "5353",
        ]
    )
    config, _ = challenge_config(args, parser)
    assert config.options == {"batch": "true", "command": "/bin/hook", "nameserver-port": "5353"}
    solver = solver_for(config, environ={})
    assert isinstance(solver, HookSolver) and solver.batch
    assert solver.propagation.nameserver_port == 5353
    wrong = run_cli(
        [
            "issue",
            "-d",
            "x.test",
            "--out",
            str(tmp_path / "o"),
            "--challenge",
            "dns-01",
            "--dns",
            "rfc2136",
            "--dns-hook-batch",
        ],
        capsys,
    )
    assert wrong.code == 2
    assert "--dns-hook-batch is not an option of solver 'rfc2136'" in wrong.err
    with pytest.raises(InvalidInput, match="option batch='maybe' is not true or false"):
        solver_for(dns("hook", command="/bin/hook", batch="maybe"), environ={})


# -- key files -------------------------------------------------------------------------------


def test_tsig_key_files_of_every_format() -> None:
    secret = "4QVXLqweMkljxtK5WRBj+ApTEweU78ahudMcoOb3e0I="
    knot = (
        f"# hmac-sha256:acme:{secret}\nkey:\n  - id: acme\n    algorithm: hmac-sha256\n"
        f"    secret: {secret}\n"
    )
    assert parse_tsig_key(knot) == ("acme", "hmac-sha256", secret)
    assert parse_tsig_key(f"hmac-sha512:acme:{secret}") == ("acme", "hmac-sha512", secret)
    bind = f'key "acme" {{ algorithm hmac-sha256; secret "{secret}"; }};'
    assert parse_tsig_key(bind) == ("acme", "hmac-sha256", secret)
    with pytest.raises(InvalidInput, match="the key 'acme' in the TSIG secret has no secret"):
        parse_tsig_key("key:\n  - id: acme\n    algorithm: hmac-sha256\n")


# -- zone locks ------------------------------------------------------------------------------


def test_zone_lock_waits_for_another_process_and_gives_up_in_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    ready = tmp_path / "ready"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
        import os, time
        os.environ["XDG_RUNTIME_DIR"] = {str(tmp_path)!r}
        from acmelite.dns.zonelock import zone_lock
        with zone_lock("test", zone="example.test"):
            open({str(ready)!r}, "w").close()
            time.sleep(30)
    """),
        ]
    )
    try:
        deadline = time.monotonic() + 20
        while not ready.exists():
            assert holder.poll() is None and time.monotonic() < deadline, "the holder did not start"
            time.sleep(0.02)
        started = time.monotonic()
        with (
            pytest.raises(SolverError) as caught,
            zone_lock("test", zone="example.test", timeout=0.3),
        ):
            pass
        assert time.monotonic() - started < 5
        assert str(caught.value) == (
            "zone example.test is being changed by another acmelite process: still waiting"
            " after 0.3 s"
        )
        with zone_lock("test", zone="other.test", timeout=0.3):  # another zone: free
            pass
    finally:
        holder.kill()
        holder.wait()
    with zone_lock("test", zone="example.test", timeout=5):  # released with the process
        pass
    assert (tmp_path / "acmelite-locks").stat().st_mode & 0o777 == 0o700


def test_zone_lock_serialises_threads() -> None:
    inside: list[int] = []
    overlaps: list[int] = []

    def work() -> None:
        with zone_lock("test-threads", zone="example.test", timeout=10):
            inside.append(1)
            if len(inside) > 1:
                overlaps.append(len(inside))
            time.sleep(0.02)
            inside.pop()

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert overlaps == []


# -- a failed cleanup is data, not an exception over a success --------------------------------


class _CleanupFails:
    challenge_type = "dns-01"

    def __init__(self, error: Exception) -> None:
        self.error = error

    def perform(self, tasks: Sequence[ChallengeTask]) -> None:
        pass

    def cleanup(self, tasks: Sequence[ChallengeTask]) -> None:
        raise self.error


def test_the_client_turns_a_failed_cleanup_into_cleanup_failed() -> None:
    client = AcmeClient("https://ca.invalid/directory", AccountKey.generate())
    tasks = [make_dns_task("example.test")]
    plain = client._cleanup(
        _CleanupFails(SolverError("API down", identifiers=["example.test"])), tasks, None
    )
    assert isinstance(plain, CleanupFailed)
    assert str(plain) == "API down" and plain.identifiers == ("example.test",)
    assert plain.records == () and plain.code == "cleanup-failed"
    named = CleanupFailed("x", records=['_acme-challenge.example.test. TXT "v"'])
    assert client._cleanup(_CleanupFails(named), tasks, None) is named
    assert client._cleanup(HookSolver(["true"]), [], None) is None


def test_lexicon_missing_is_said_with_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "lexicon._private.discovery", None)
    with pytest.raises(InvalidInput) as caught:
        solver_for(dns("lexicon", provider="cloudflare"), environ={})
    assert str(caught.value).startswith(
        "solver 'lexicon' needs dns-lexicon 3.x (pip install 'acmelite[lexicon]')"
    )
