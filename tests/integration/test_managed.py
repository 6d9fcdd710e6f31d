"""The managed-certificate library API against Pebble (and BIND), and directories written by
acmelite 0.1.0 renewed by today's code.

``ManagedCertificate.create`` -> ``renew()`` (not due) -> ``renew(force=True)`` (renewed,
files switched at once) is the library's renewal story; ``open`` works on what the CLI
wrote and the CLI on what the library wrote; ``status()`` makes no request at all.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509

from acmelite import (
    AccountKey,
    AcmeClient,
    CertificateConfig,
    ChallengeConfig,
    ManagedCertificate,
)
from acmelite.errors import DirectoryLocked
from acmelite.managed import STATE_FILE
from acmelite.storage import OutputLock
from acmelite.testing.bind import BindServer
from acmelite.testing.pebble import Pebble, PebbleServer
from tests.support import (
    issue_argv,
    key_matches_cert,
    pebble_finds_for_replaces,
    run_cli,
    tree_snapshot,
    verify_chain,
)

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "acmelite-0.1.0"
DOCS = Path(__file__).resolve().parents[2] / "docs"
SERVED = ("privkey.pem", "cert.pem", "chain.pem", "fullchain.pem")


def config_for(pebble: Pebble, tmp: Path, *names: str, **extra: object) -> CertificateConfig:
    return CertificateConfig(
        names=names,
        server=pebble.directory_url,
        ca_bundle=pebble.ca_bundle,
        account_key=str(tmp / "account.key"),
        challenge=ChallengeConfig(
            solver="standalone", options={"port": str(pebble.http_port), "address": "127.0.0.1"}
        ),
        profile="default",  # Pebble picks a random profile without one
        **extra,  # type: ignore[arg-type]
    )


def served(path: Path) -> dict[str, bytes]:
    return {n: (path / n).read_bytes() for n in SERVED}


def test_create_then_renew_not_due_then_forced(pebble: Pebble, tmp_path: Path) -> None:
    path = tmp_path / "certs" / "api"
    cert = ManagedCertificate.create(
        path, config_for(pebble, tmp_path, "managed.lib.test"), agree_tos=True
    )
    assert cert.last_bundle is not None
    verify_chain((path / "fullchain.pem").read_bytes(), pebble.roots(), "managed.lib.test")
    stored = json.loads((path / "renewal.json").read_text())
    assert stored["version"] == 2
    assert stored["challenge"]["solver"] == "standalone"
    assert stored["account_key"] == str(tmp_path / "account.key")
    before = served(path)

    again = ManagedCertificate.open(path)
    assert again.config == cert.config
    first = again.renew()
    assert first.status == "not-due", first.reason
    assert first.window is not None and first.next_check is not None
    assert "ARI window" in first.reason
    assert served(path) == before

    forced = again.renew(force=True)
    assert forced.status == "renewed", forced.reason
    assert forced.certificate is not None and forced.error is None
    old = x509.load_pem_x509_certificate(before["cert.pem"])
    # RFC 9773 replaces, accepted by Pebble (but for 1 serial in 256: tests/support.py)
    assert (forced.replaces is not None) is pebble_finds_for_replaces(old)
    after = served(path)
    assert after["cert.pem"] != before["cert.pem"] and after["privkey.pem"] != before["privkey.pem"]
    assert key_matches_cert(after["privkey.pem"], after["cert.pem"])
    # All four files switched together: every served name resolves into one new version.
    versions = {os.path.realpath(path / n).rsplit("/", 2)[-2] for n in SERVED}
    assert len(versions) == 1
    assert forced.serial == format(
        ManagedCertificate.open(path).certificate().serial_number,  # type: ignore[union-attr]
        "x",
    )

    # status() answers from the files alone: no socket is even opened.
    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("status() made a network connection")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket.socket, "connect", no_network)
        status = ManagedCertificate.open(path).status()
    assert status.status in ("not-due", "due")
    assert status.serial == forced.serial


def test_renew_result_statuses_skipped_and_failed(pebble: Pebble, tmp_path: Path) -> None:
    path = tmp_path / "out"
    config = config_for(pebble, tmp_path, "statuses.lib.test")
    ManagedCertificate.create(path, config, agree_tos=True)
    before = served(path)
    with OutputLock(path):
        skipped = ManagedCertificate.open(path).renew(force=True)
    assert skipped.status == "skipped"
    assert "locked by another acmelite run" in skipped.reason
    with OutputLock(path), pytest.raises(DirectoryLocked):
        ManagedCertificate.create(path, config)
    # A solver listening where Pebble does not look: the validation fails, nothing changes.
    # (And a name never validated: Pebble reuses a valid authorization 1% of the time even
    # with PEBBLE_AUTHZREUSE=0, which would skip the validation meant to fail.)
    broken = json.loads((path / "renewal.json").read_text())
    broken["challenge"]["options"]["port"] = "0"
    broken["names"].append("never.statuses.lib.test")
    (path / "renewal.json").write_text(json.dumps(broken))
    failed = ManagedCertificate.open(path).renew(force=True)
    assert failed.status == "failed" and failed.error is not None
    assert "validation failed for" in failed.reason
    assert "never.statuses.lib.test" in failed.reason
    assert failed.failures == 1
    assert served(path) == before
    backing_off = ManagedCertificate.open(path).renew()
    assert backing_off.status == "backing-off"
    assert json.loads((path / STATE_FILE).read_text())["failures"] == 1


def test_cli_and_library_share_the_directory(
    pebble: Pebble, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [*issue_argv(pebble, tmp_path, "shared.lib.test"), "--profile", "default"]
    assert run_cli(argv, capsys).code == 0
    out = tmp_path / "out"
    cert = ManagedCertificate.open(out)
    assert cert.config.names == ("shared.lib.test",)
    assert cert.config.challenge == ChallengeConfig(
        solver="standalone", options={"port": str(pebble.http_port), "address": "127.0.0.1"}
    )
    assert cert.renew(force=True).status == "renewed"
    # ... and the CLI renews what the library wrote.
    lib = tmp_path / "lib"
    ManagedCertificate.create(lib, config_for(pebble, tmp_path, "lib.lib.test"))
    result = run_cli(["renew", "--force", "--json", str(lib)], capsys)
    assert result.code == 3, result.err
    assert json.loads(result.out)["certificates"][0]["status"] == "renewed"


def test_docs_managed_example(pebble: Pebble, tmp_path: Path) -> None:
    blocks = re.findall(r"```python\n(.*?)```", (DOCS / "library.md").read_text(), flags=re.S)
    (example,) = [b for b in blocks if "ManagedCertificate.create" in b]
    env = {
        **os.environ,
        "ACME_DIRECTORY": pebble.directory_url,
        "ACME_CA_BUNDLE": pebble.ca_bundle,
        "HTTP_PORT": str(pebble.http_port),
        "CERT_DIR": str(tmp_path),
    }
    proc = subprocess.run([sys.executable, "-c", example], env=env, capture_output=True,
                          text=True, timeout=120, check=False)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("not-due ")
    assert lines[1].startswith("renewed ")
    assert lines[2] in ("not-due", "due")
    verify_chain(
        (tmp_path / "managed" / "fullchain.pem").read_bytes(), pebble.roots(),
        "managed.acmelite.test",
    )  # fmt: skip


# -- directories written by acmelite 0.1.0 ----------------------------------------------------


def legacy_tree(tmp: Path, pebble: Pebble, bind: BindServer | None = None) -> Path:
    """The 0.1.0 fixture, copied with its links, pointed at this Pebble (and BIND)."""
    root = tmp / "legacy"
    shutil.copytree(FIXTURE, root, symlinks=True)
    for renewal in root.glob("*/renewal.json"):
        text = renewal.read_text()
        text = text.replace("{{SERVER}}", pebble.directory_url)
        text = text.replace("{{CA_BUNDLE}}", pebble.ca_bundle)
        text = text.replace("{{HTTP_PORT}}", str(pebble.http_port))
        text = text.replace("{{BIND}}", bind.address if bind else "127.0.0.1:1")
        renewal.write_text(text.replace("{{DIR}}", str(root)))
    os.chmod(root / "account.key", 0o600)
    if bind is not None:
        (root / "tsig.key").write_text(
            f'key "{bind.key_name}" {{\n\talgorithm hmac-sha256;\n'
            f'\tsecret "{bind.key_secret}";\n}};\n'
        )
    # The account exists at "this" CA, as it did at the CA that 0.1.0 talked to.
    with AcmeClient(pebble.directory_url, AccountKey.load(root / "account.key"),
                    ca_bundle=pebble.ca_bundle) as client:  # fmt: skip
        client.register(agree_tos=True)
    return root


def test_a_0_1_0_directory_renews_unchanged(
    pebble: Pebble, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = legacy_tree(tmp_path, pebble)
    out = root / "http"
    config_before = (out / "renewal.json").read_bytes()
    before = served(out)
    status = ManagedCertificate.open(out).status()
    assert status.names == ("legacy.acmelite.test",)
    assert status.window is not None  # the 0.1.0 state file's ARI answer was read
    result = run_cli(["renew", "--force", "--json", str(out)], capsys)
    assert result.code == 3, result.err
    (decision,) = json.loads(result.out)["certificates"]
    assert decision["status"] == "renewed", decision
    after = served(out)
    assert after["cert.pem"] != before["cert.pem"]
    verify_chain(after["fullchain.pem"], pebble.roots(), "legacy.acmelite.test")
    assert key_matches_cert(after["privkey.pem"], after["cert.pem"])
    assert (out / "renewal.json").read_bytes() == config_before  # left as 0.1.0 wrote it
    assert (root / "deployed.log").read_text() == "deployed\n"  # its deploy hook ran
    assert len(list((out / ".versions").iterdir())) == 2


def test_a_0_1_0_dns_directory_renews_with_its_key_file(
    pebble_factory: Callable[..., PebbleServer],
    bind: BindServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    dns_pebble = pebble_factory(dns_server=bind.address)
    root = legacy_tree(tmp_path, dns_pebble, bind)
    out = root / "dns"
    cert = ManagedCertificate.open(out)
    assert cert.config.challenge.options["tsig-secret"] == f"@{root / 'tsig.key'}"
    snapshot = tree_snapshot(out)
    result = cert.renew(force=True)
    assert result.status == "renewed", result.reason
    fullchain = (out / "fullchain.pem").read_bytes()
    verify_chain(fullchain, dns_pebble.roots(), "api.legacy.example.test")
    assert tree_snapshot(out)["cert.pem"] != snapshot["cert.pem"]
    assert bind.key_secret not in (out / "renewal.json").read_text()
