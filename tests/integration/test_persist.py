"""dns-persist-01 (draft-ietf-acme-dns-persist) against Pebble and the suite's BIND.

record -> publish -> check -> issue twice (the issues change nothing in DNS: the zone's SOA
serial is the same before and after, and they are given no DNS credentials at all); every
wrong record is caught by the pre-flight check before an order exists (counted at a proxy
in front of Pebble); the fallback to dns-01 where the CA offers no dns-persist-01; and the
renewal warning before ``persistUntil``.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import dns.message
import dns.query
import dns.rdatatype
import pytest

from acmelite.testing.bind import BindServer
from acmelite.testing.pebble import Pebble, PebbleServer
from acmelite.testing.proxy import Fault, FaultProxy, On
from tests.support import CliResult, run_cli, verify_chain

ISSUER = "pebble.letsencrypt.org"  # Pebble's default caaIdentities


@pytest.fixture
def dns_pebble(pebble_factory: Callable[..., PebbleServer], bind: BindServer) -> Pebble:
    return pebble_factory(dns_server=bind.address)


@pytest.fixture
def proxy(dns_pebble: Pebble) -> Iterator[FaultProxy]:
    with FaultProxy(dns_pebble.directory_url, upstream_ca_bundle=dns_pebble.ca_bundle) as running:
        yield running


def account(url: str, ca_bundle: str, tmp: Path) -> list[str]:
    return ["--server", url, "--ca-bundle", ca_bundle, "--account-key", str(tmp / "account.key"),
            "--agree-tos"]  # fmt: skip


def lookups(bind: BindServer) -> list[str]:
    """Where ``persist check`` finds the zones' nameservers (BIND, on its port)."""
    return ["--lookup-server", bind.address, "--nameserver-port", str(bind.port)]


def persist_options(bind: BindServer, *extra: str) -> list[str]:
    pairs = [f"lookup-server={bind.address}", f"nameserver-port={bind.port}", *extra]
    return [arg for pair in pairs for arg in ("--persist-option", pair)]


def rfc2136(bind: BindServer, tmp: Path) -> list[str]:
    (tmp / "tsig.key").write_text(bind.key_secret + "\n")
    return ["--dns", "rfc2136", "--dns-server", bind.address, "--tsig-key-name", bind.key_name,
            "--tsig-secret-file", str(tmp / "tsig.key"),
            "--dns-option", f"nameserver-port={bind.port}"]  # fmt: skip


def soa_serial(bind: BindServer, zone: str) -> int:
    answer = dns.query.tcp(dns.message.make_query(zone, dns.rdatatype.SOA), bind.host,
                           port=bind.port, timeout=5)  # fmt: skip
    return int(answer.answer[0][0].serial)


def account_url(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    registered = run_cli(["account", "register", "--json", *args], capsys)
    assert registered.code == 0, registered.err
    url: str = json.loads(registered.out)["url"]
    return url


def error_line(result: CliResult) -> str:
    lines = result.err.strip().splitlines()
    assert lines and lines[-1].startswith("acmelite: error: "), result.err
    return lines[-1].removeprefix("acmelite: error: ")


def test_record_publish_check_and_issue_twice_without_touching_dns(
    dns_pebble: Pebble, bind: BindServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    acct = account(dns_pebble.directory_url, dns_pebble.ca_bundle, tmp_path)
    url = account_url(acct, capsys)
    names = ["-d", "p.example.test", "-d", "*.p.example.test"]
    record = "_validation-persist.p.example.test."
    try:
        printed = run_cli(["persist", "record", *names, "--for", "90", "--json", *acct], capsys)
        assert printed.code == 0, printed.err
        (entry,) = json.loads(printed.out)
        until = int((dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=90)).timestamp())
        assert entry["record"] == record
        prefix = f"{ISSUER}; accounturi={url}; policy=wildcard; persistUntil="
        assert entry["value"].startswith(prefix)
        assert abs(int(entry["value"].removeprefix(prefix)) - until) < 60
        assert entry["zone_line"] == f'{record} IN TXT "{entry["value"]}"'

        published = run_cli(["persist", "publish", *names, "--for", "90", *acct,
                             *rfc2136(bind, tmp_path)], capsys)  # fmt: skip
        assert published.code == 0, published.err
        (value,) = bind.txt_values(record)
        assert value.startswith(prefix)

        checked = run_cli(["persist", "check", *names, *acct, *lookups(bind)], capsys)
        assert checked.code == 0, checked.err
        assert checked.out.splitlines() == [
            f"p.example.test: ok ({record} TXT {value!r})",
            f"*.p.example.test: ok ({record} TXT {value!r})",
        ]

        serial = soa_serial(bind, "example.test")
        for out in ("first", "second"):
            argv = ["issue", *names, *acct, "--challenge", "dns-persist-01",
                    *persist_options(bind), "--out", str(tmp_path / out)]  # fmt: skip
            issued = run_cli(argv, capsys)
            assert issued.code == 0, issued.err
            assert "dns-persist-01 records in place for p.example.test, *.p.example.test" in (
                issued.err
            )
            verify_chain((tmp_path / out / "fullchain.pem").read_bytes(), dns_pebble.roots(),
                         "api.p.example.test")  # fmt: skip
        assert soa_serial(bind, "example.test") == serial  # not one DNS change in two issues
        config = json.loads((tmp_path / "first" / "renewal.json").read_text())
        assert config["challenge"] == {
            "type": "dns-persist-01",
            "solver": "persist",
            "options": {"lookup-server": bind.address, "nameserver-port": str(bind.port)},
        }
        renewed = run_cli(["renew", "--force", "--json", str(tmp_path / "first")], capsys)
        assert renewed.code == 3, renewed.err
        assert json.loads(renewed.out)["certificates"][0]["warnings"] == []
        assert soa_serial(bind, "example.test") == serial
    finally:
        bind.delete_txt(record)


def _days_ago(days: int) -> int:
    return int((dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=days)).timestamp())


# Each case: the names, the record's text (ACCOUNT stands for this run's account URL),
# the problem the pre-flight must name.
WRONG = {
    "wildcard without policy": (
        ["*.w.example.test"], "w.example.test", f"{ISSUER}; accounturi=ACCOUNT",
        "a wildcard was requested but the record lacks policy=wildcard at ns.example.test",
    ),
    "another account": (
        ["o.example.test"], "o.example.test", f"{ISSUER}; accounturi=https://ca.test/acct/1",
        "accounturi is https://ca.test/acct/1, this run is account ACCOUNT at ns.example.test",
    ),
    "persistUntil passed": (
        ["old.example.test"], "old.example.test",
        f"{ISSUER}; accounturi=ACCOUNT; persistUntil={_days_ago(2)}",
        "persistUntil passed on ",
    ),
    "another issuer": (
        ["i.example.test"], "i.example.test", "ca.example; accounturi=ACCOUNT",
        f"issuer ca.example is not one the CA accepts ({ISSUER}) at ns.example.test",
    ),
    "missing": (
        ["gone.example.test"], None, "", "(_validation-persist.gone.example.test.): no record at"
        " ns.example.test (127.0.0.1:PORT)",
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", WRONG)
def test_each_wrong_record_fails_before_any_order(
    case: str,
    proxy: FaultProxy,
    bind: BindServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    names, where, text, problem = WRONG[case]
    acct = account(proxy.directory_url, proxy.ca_bundle, tmp_path)
    url = account_url(acct, capsys)
    if where is not None:
        bind.add_txt(f"_validation-persist.{where}", text.replace("ACCOUNT", url))
    try:
        proxy.reset_counts()
        domains = [a for n in names for a in ("-d", n)]
        argv = ["issue", *domains, *acct, "--challenge", "dns-persist-01",
                *persist_options(bind), "--out", str(tmp_path / "out")]  # fmt: skip
        result = run_cli(argv, capsys)
        counts = proxy.counts()
    finally:
        if where is not None:
            bind.delete_txt(f"_validation-persist.{where}")
    assert result.code == 1
    message = error_line(result)
    assert message.startswith(f"dns-persist-01 record not ready: {names[0]} ")
    assert problem.replace("ACCOUNT", url).replace("PORT", str(bind.port)) in message
    assert counts[("POST", "newOrder")] == 0
    assert not (tmp_path / "out").exists()


def test_every_nameserver_is_checked_and_named(
    dns_pebble: Pebble, bind: BindServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # lagging.test has a second nameserver (127.0.0.2) that never answers.
    acct = account(dns_pebble.directory_url, dns_pebble.ca_bundle, tmp_path)
    argv = ["persist", "check", "-d", "www.lagging.test", *acct, *lookups(bind)]
    result = run_cli([*argv, "--json"], capsys)
    assert result.code == 1
    (report,) = json.loads(result.out)
    assert report["servers"] == [f"ns.lagging.test (127.0.0.1:{bind.port})",
                                 f"ns2.lagging.test (127.0.0.2:{bind.port})"]  # fmt: skip
    problems = report["problems"]
    assert problems[0] == f"no record at ns.lagging.test (127.0.0.1:{bind.port})"
    assert problems[1].startswith("no answer (ns2.lagging.test (127.0.0.2:")
    assert problems[1].endswith(f") at ns2.lagging.test (127.0.0.2:{bind.port})")


def test_a_ca_without_dns_persist_01_is_named_or_answered_by_the_fallback(
    proxy: FaultProxy, bind: BindServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    acct = account(proxy.directory_url, proxy.ca_bundle, tmp_path)
    names = ["-d", "fb.example.test"]
    published = run_cli(["persist", "publish", *names, *acct, *rfc2136(bind, tmp_path)], capsys)
    assert published.code == 0, published.err
    proxy.inject(Fault.patch_json(drop_challenges=("dns-persist-01",),
                                  on=On(kind="authz", times=None)))  # fmt: skip
    try:
        base = ["issue", *names, *acct, "--challenge", "dns-persist-01", *persist_options(bind)]
        refused = run_cli([*base, "--out", str(tmp_path / "refused")], capsys)
        assert refused.code == 1
        head, _, offered = error_line(refused).partition("; offered: ")
        assert head == "fb.example.test: the CA offers no dns-persist-01 challenge"
        assert sorted(offered.split(", ")) == ["dns-01", "dns-account-01", "http-01", "tls-alpn-01"]
        fallback = run_cli([*base, "--fallback", "dns-01", *rfc2136(bind, tmp_path),
                            "--out", str(tmp_path / "out")], capsys)  # fmt: skip
        assert fallback.code == 0, fallback.err
        assert "fb.example.test: the CA offers no dns-persist-01 challenge (offered: " in (
            fallback.err
        )
        assert "); answering dns-01 instead" in fallback.err
        assert "publishing 1 dns-01 answer(s): fb.example.test" in fallback.err
        config = json.loads((tmp_path / "out" / "renewal.json").read_text())
        assert config["challenge"]["fallback"]["type"] == "dns-01"
        assert config["challenge"]["fallback"]["solver"] == "rfc2136"
    finally:
        bind.delete_txt("_validation-persist.fb.example.test")


def test_renew_warns_before_persist_until(
    dns_pebble: Pebble, bind: BindServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    acct = account(dns_pebble.directory_url, dns_pebble.ca_bundle, tmp_path)
    names = ["-d", "soon.example.test"]
    try:
        published = run_cli(["persist", "publish", *names, "--for", "10", *acct,
                             *rfc2136(bind, tmp_path)], capsys)  # fmt: skip
        assert published.code == 0, published.err
        argv = ["issue", *names, *acct, "--challenge", "dns-persist-01",
                *persist_options(bind), "--out", str(tmp_path / "out")]  # fmt: skip
        issued = run_cli(argv, capsys)
        assert issued.code == 0, issued.err
        assert "warning: the dns-persist-01 record of soon.example.test expires on" in issued.err
        renewed = run_cli(["renew", "--json", str(tmp_path / "out")], capsys)
        assert renewed.code == 0, renewed.err
        (result,) = json.loads(renewed.out)["certificates"]
        assert result["status"] == "not-due"
        (warning,) = result["warnings"]
        assert warning.startswith("the dns-persist-01 record of soon.example.test expires on ")
        assert "(persistUntil, in 9 days)" in warning
        assert f"warning: {tmp_path / 'out'}: {warning}" in renewed.err
    finally:
        bind.delete_txt("_validation-persist.soon.example.test")
