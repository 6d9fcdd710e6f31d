"""Every command of docs/challenges.md runs against Pebble and the suite's BIND.

The commands are pasted from the page as they are, with the page's stand-ins replaced:
``192.0.2.53`` (the primary) by BIND's address, ``192.0.2.10`` by 127.0.0.1, the key name by
BIND's, ``/etc/acmelite/`` by a temporary directory. The CA, the account key, the TLS port
and where the nameservers are asked come from the environment (``ACMELITE_SERVER``,
``ACMELITE_CA_BUNDLE``, ``ACMELITE_ACCOUNT_KEY``, ``ACMELITE_TLS_PORT``,
``ACMELITE_DNS_LOOKUP_SERVER``, ``ACMELITE_DNS_NAMESERVER_PORT``), as a user's would.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Callable
from pathlib import Path

import pytest

from acmelite.testing.bind import BindServer
from acmelite.testing.pebble import Pebble, PebbleServer
from acmelite.testing.proxy import Fault, FaultProxy, On
from tests.support import CliResult, run_cli, verify_chain

DOC = Path(__file__).resolve().parents[2] / "docs" / "challenges.md"


def commands(block: str) -> list[str]:
    """The ``acmelite ...`` commands of a ``<!-- run: NAME -->`` block, continuations joined."""
    text = DOC.read_text()
    match = re.search(rf"<!-- run: {re.escape(block)} -->\s*```sh\n(.*?)```", text, re.S)
    assert match, f"no block {block!r} in {DOC}"
    joined = match.group(1).replace("\\\n", " ")
    return [line.strip() for line in joined.splitlines() if line.strip()]


@pytest.fixture
def env(
    pebble_factory: Callable[..., PebbleServer],
    bind: BindServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> Pebble:
    """The environment of the page's commands; the account of its first block exists."""
    pebble = pebble_factory(dns_server=bind.address)
    (tmp_path / "tsig.key").write_text(bind.key_secret + "\n")
    for name, value in {
        "ACMELITE_SERVER": pebble.directory_url,
        "ACMELITE_CA_BUNDLE": pebble.ca_bundle,
        "ACMELITE_ACCOUNT_KEY": str(tmp_path / "account.key"),
        "ACMELITE_TLS_PORT": str(pebble.tls_port),
        "ACMELITE_TLS_ADDRESS": "127.0.0.1",
        "ACMELITE_DNS_LOOKUP_SERVER": bind.address,
        "ACMELITE_DNS_NAMESERVER_PORT": str(bind.port),
    }.items():
        monkeypatch.setenv(name, value)
    registered = run_cli(["account", "register", "--agree-tos"], capsys)
    assert registered.code == 0, registered.err
    return pebble


def run(
    block: str, bind: BindServer, tmp: Path, capsys: pytest.CaptureFixture[str]
) -> list[CliResult]:
    """Run the block's commands; each must succeed (renew: 0 or 3)."""
    outputs = []
    for command in commands(block):
        text = command
        for stand_in, value in (("192.0.2.53", bind.address), ("192.0.2.10", "127.0.0.1"),
                                ("acmelite-example", bind.key_name),
                                ("/etc/acmelite/", f"{tmp}/")):  # fmt: skip
            text = text.replace(stand_in, value)
        argv = shlex.split(text, comments=True)
        assert argv[0] == "acmelite", command
        result = run_cli(argv[1:], capsys)
        assert result.code in ((0, 3) if argv[1] == "renew" else (0,)), (command, result.err)
        outputs.append(result)
    return outputs


def test_account_block(env: Pebble, bind: BindServer, tmp_path: Path,
                       capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    _, shown = run("account", bind, tmp_path, capsys)
    assert re.search(r"^dns-account-01 label +_[a-z2-7]{16} \(records at ", shown.out, re.M)


def test_tls_alpn_block(env: Pebble, bind: BindServer, tmp_path: Path,
                        capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    run("tls-alpn", bind, tmp_path, capsys)
    fullchain = (tmp_path / "www" / "fullchain.pem").read_bytes()
    verify_chain(fullchain, env.roots(), "www.example.test")
    verify_chain(fullchain, env.roots(), "127.0.0.1")


def test_dns_account_block(env: Pebble, bind: BindServer, tmp_path: Path,
                           capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    run("dns-account", bind, tmp_path, capsys)
    verify_chain((tmp_path / "team-ns" / "fullchain.pem").read_bytes(), env.roots(),
                 "api.team-ns.svc.clusterset.local")  # fmt: skip


def test_persist_block(env: Pebble, bind: BindServer, tmp_path: Path,
                       capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    try:
        printed, published, checked, issued, renewed = run("persist", bind, tmp_path, capsys)
        assert printed.out.startswith('_validation-persist.api.example.test. IN TXT "pebble.')
        assert published.out == printed.out
        assert checked.out.startswith("api.example.test: ok (")
        assert "dns-persist-01 records in place for api.example.test" in issued.err
        verify_chain((tmp_path / "api" / "fullchain.pem").read_bytes(), env.roots(),
                     "api.example.test")  # fmt: skip
        assert ": not-due: " in renewed.out
    finally:
        bind.delete_txt("_validation-persist.api.example.test")


def test_persist_fallback_block_at_a_ca_without_dns_persist_01(
    env: Pebble,
    bind: BindServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with FaultProxy(env.directory_url, upstream_ca_bundle=env.ca_bundle) as proxy:
        monkeypatch.setenv("ACMELITE_SERVER", proxy.directory_url)
        monkeypatch.setenv("ACMELITE_CA_BUNDLE", proxy.ca_bundle)
        key = ["--tsig-key-name", bind.key_name, "--tsig-secret-file", str(tmp_path / "tsig.key")]
        try:
            argv = ["persist", "publish", "-d", "*.example.test", "--agree-tos",
                    "--dns", "rfc2136", "--dns-server", bind.address, *key]  # fmt: skip
            published = run_cli(argv, capsys)
            assert published.code == 0, published.err
            proxy.inject(Fault.patch_json(drop_challenges=("dns-persist-01",),
                                          on=On(kind="authz", times=None)))  # fmt: skip
            (issued,) = run("persist-fallback", bind, tmp_path, capsys)
            assert "answering dns-01 instead" in issued.err
        finally:
            bind.delete_txt("_validation-persist.example.test")
    fullchain = (tmp_path / "wildcard" / "fullchain.pem").read_bytes()
    verify_chain(fullchain, env.roots(), "www.example.test")
    config = json.loads((tmp_path / "wildcard" / "renewal.json").read_text())
    assert config["challenge"]["fallback"]["solver"] == "rfc2136"
