"""dns-account-01 (draft-ietf-acme-dns-account-label) against Pebble and the suite's BIND:
with rfc2136 and with the hook, through a CNAME delegation, and two accounts validating the
same name at the same time through the same zone — the multi-cluster case."""

from __future__ import annotations

import json
import re
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import ClassVar

import pytest
from cryptography import x509

from acmelite.challenges import ChallengeTask, account_label
from acmelite.client import AcmeClient, CertificateBundle
from acmelite.dns.propagation import PropagationSettings
from acmelite.errors import AcmeliteError
from acmelite.keys import AccountKey
from acmelite.solvers.rfc2136 import Rfc2136Solver
from acmelite.testing.bind import BindServer
from acmelite.testing.pebble import Pebble, PebbleServer
from tests.support import issue_argv, run_cli, verify_chain, without_http

DOCS = Path(__file__).resolve().parents[2] / "docs"


@pytest.fixture
def dns_pebble(pebble_factory: Callable[..., PebbleServer], bind: BindServer) -> Pebble:
    """A Pebble whose validation authority asks the session BIND."""
    return pebble_factory(dns_server=bind.address)


def _sans(fullchain: bytes, pebble: Pebble, name: str) -> list[str]:
    leaf = verify_chain(fullchain, pebble.roots(), name)
    sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return sorted(sans.get_values_for_type(x509.DNSName))


def _label_of(tmp_path: Path, pebble: Pebble, capsys: pytest.CaptureFixture[str]) -> str:
    shown = run_cli(["account", "show", "--json", "--server", pebble.directory_url,
                     "--ca-bundle", pebble.ca_bundle,
                     "--account-key", str(tmp_path / "account.key")], capsys)  # fmt: skip
    assert shown.code == 0, shown.err
    summary = json.loads(shown.out)
    assert summary["dns_account_label"] == account_label(summary["url"])
    label: str = summary["dns_account_label"]
    return label


def _rfc2136_argv(bind: BindServer, tmp_path: Path, key_name: str, secret: str) -> list[str]:
    key_file = tmp_path / "tsig.key"
    key_file.write_text(secret + "\n")
    return [
        "--challenge", "dns-account-01", "--dns", "rfc2136", "--dns-server", bind.address,
        "--tsig-key-name", key_name, "--tsig-secret-file", str(key_file),
        "--dns-resolver", bind.address, "--dns-propagation-timeout", "10",
    ]  # fmt: skip


def test_cli_rfc2136_apex_and_wildcard(
    dns_pebble: Pebble, bind: BindServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    names = ["acct.example.test", "*.acct.example.test"]
    argv = [*without_http(issue_argv(dns_pebble, tmp_path, *names)),
            *_rfc2136_argv(bind, tmp_path, bind.key_name, bind.key_secret)]  # fmt: skip
    result = run_cli(argv, capsys)
    assert result.code == 0, result.err
    assert "publishing 2 dns-account-01 answer(s)" in result.err
    fullchain = (tmp_path / "out" / "fullchain.pem").read_bytes()
    assert _sans(fullchain, dns_pebble, "www.acct.example.test") == sorted(names)
    config = json.loads((tmp_path / "out" / "renewal.json").read_text())
    assert (config["challenge"]["type"], config["challenge"]["solver"]) == (
        "dns-account-01", "rfc2136"
    )  # fmt: skip
    text = run_cli(["account", "show", "--server", dns_pebble.directory_url, "--ca-bundle",
                    dns_pebble.ca_bundle, "--account-key", str(tmp_path / "account.key")],
                   capsys).out  # fmt: skip
    label = _label_of(tmp_path, dns_pebble, capsys)
    assert re.search(rf"^dns-account-01 label +{label} ", text, re.M), text


def test_cli_hook_gets_the_labelled_record(
    dns_pebble: Pebble,
    bind: BindServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The documented Python hook of docs/dns-01.md, behind a wrapper that notes each call.
    text = (DOCS / "dns-01.md").read_text()
    match = re.search(r"<!-- example: dns-hook.py -->\s*```python\n(.*?)```", text, re.S)
    assert match
    hook = tmp_path / "dns-hook.py"
    hook.write_text(match.group(1))
    calls = tmp_path / "calls.txt"
    wrapper = tmp_path / "wrapper.py"
    wrapper.write_text(
        "import runpy, sys\n"
        f"with open({str(calls)!r}, 'a') as f:\n"
        "    f.write(' '.join(sys.argv[1:3]) + '\\n')\n"
        f"sys.argv = [{str(hook)!r}, *sys.argv[1:]]\n"
        f"runpy.run_path({str(hook)!r}, run_name='__main__')\n"
    )
    monkeypatch.setenv("DNS_SERVER", bind.address)
    monkeypatch.setenv("TSIG_KEY_NAME", bind.key_name)
    monkeypatch.setenv("TSIG_SECRET", bind.key_secret)
    name = "*.team-ns.svc.clusterset.local"
    argv = [
        *without_http(issue_argv(dns_pebble, tmp_path, name)),
        "--challenge", "dns-account-01", "--dns", "hook",
        "--dns-hook", f"{sys.executable} {wrapper}",
        "--dns-resolver", bind.address, "--dns-propagation-timeout", "10",
    ]  # fmt: skip
    result = run_cli(argv, capsys)
    assert result.code == 0, result.err
    label = _label_of(tmp_path, dns_pebble, capsys)
    record = f"{label}._acme-challenge.team-ns.svc.clusterset.local."
    assert calls.read_text().splitlines() == [f"present {record}", f"cleanup {record}"]


def test_cli_follows_a_cname_delegation_of_the_labelled_record(
    dns_pebble: Pebble, bind: BindServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The limited key may update acme-dns.test only: the CNAME's end is the one way in.
    argv = [
        *without_http(issue_argv(dns_pebble, tmp_path, "acct-delegated.example.test")),
        *_rfc2136_argv(bind, tmp_path, bind.limited_key_name, bind.limited_key_secret),
    ]
    result = run_cli(argv, capsys)
    assert result.code == 0, result.err
    assert "; publishing at _acme-challenge.acct-delegated.acme-dns.test." in result.err
    label = _label_of(tmp_path, dns_pebble, capsys)
    assert f"{label}._acme-challenge.acct-delegated.example.test. is a CNAME" in result.err


class _Together:
    """A dns-01 solver that, once its records are published, waits for the other order's
    perform too: the two validations then overlap for certain."""

    challenge_type: ClassVar[str] = "dns-01"

    def __init__(self, inner: Rfc2136Solver, barrier: threading.Barrier, bind: BindServer,
                 seen: list[dict[str, set[str]]]) -> None:  # fmt: skip
        self.inner, self.barrier, self.bind, self.seen = inner, barrier, bind, seen

    def perform(self, tasks: Sequence[ChallengeTask]) -> None:
        self.inner.perform(tasks)
        self.barrier.wait(timeout=30)
        self.seen.append(self.bind.all_txt())
        self.barrier.wait(timeout=30)

    def cleanup(self, tasks: Sequence[ChallengeTask]) -> None:
        self.inner.cleanup(tasks)


def test_two_accounts_validate_the_same_name_at_once_through_one_zone(
    dns_pebble: Pebble, bind: BindServer
) -> None:
    name = "*.team-ns.svc.clusterset.local"  # served by two clusters, one account each
    barrier = threading.Barrier(2)
    seen: list[dict[str, set[str]]] = []
    results: dict[str, CertificateBundle | AcmeliteError] = {}
    clients = []
    for _ in range(2):
        client = AcmeClient(dns_pebble.directory_url, AccountKey.generate(),
                            ca_bundle=dns_pebble.ca_bundle)  # fmt: skip
        client.register(agree_tos=True)
        clients.append(client)

    def cluster(client: AcmeClient) -> None:
        settings = PropagationSettings(timeout=10, nameserver_port=bind.port)
        inner = Rfc2136Solver(bind.address, bind.key_name, bind.key_secret, propagation=settings)
        solver = _Together(inner, barrier, bind, seen)
        try:
            results[client.account_url] = client.issue(
                [name], solver=solver, challenge_type="dns-account-01", timeout=60
            )
        except AcmeliteError as exc:
            results[client.account_url] = exc
            barrier.abort()

    threads = [threading.Thread(target=cluster, args=(c,)) for c in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=90)
    for client in clients:
        client.close()
    labels = {account_label(c.account_url) for c in clients}
    assert len(labels) == 2
    records = {f"{label}._acme-challenge.team-ns.svc.clusterset.local." for label in labels}
    # While both orders were being validated, both records were there, one value each.
    assert len(seen) == 2
    for snapshot in seen:
        assert set(snapshot) == records
        assert all(len(values) == 1 for values in snapshot.values())
    for client in clients:
        bundle = results[client.account_url]
        assert isinstance(bundle, CertificateBundle), bundle
        assert _sans(bundle.fullchain_pem, dns_pebble, "api.team-ns.svc.clusterset.local") == [name]
