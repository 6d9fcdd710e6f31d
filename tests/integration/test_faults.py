"""Every fault between acmelite and the CA: recovered, or one clear line and exit 1.

The real CLI runs against the session's Pebble behind :class:`FaultProxy`, re-issuing into an
``--out`` that already holds a certificate. Whatever the fault, afterwards that directory
holds a key that matches its certificate: the old set untouched after a failure, a new
consistent set after a recovery. See docs/reliability.md for the policy under test.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest
from cryptography import x509

from acmelite.cli import main
from acmelite.errors import InvalidInput
from acmelite.testing.bind import BindServer
from acmelite.testing.pebble import Pebble
from acmelite.testing.proxy import Fault, FaultProxy, Injection, On
from tests.conftest import PebbleFactory
from tests.reliability import Ledger
from tests.support import (
    CliResult,
    issue_argv,
    key_matches_cert,
    run_cli,
    run_cli_subprocess,
    tree_snapshot,
)

NAME = "faults.acmelite.test"
ORDER_STUCK = {
    "set_fields": {"status": "processing"},
    "remove_fields": ("certificate",),
    "where": {"status": "valid"},
}


@pytest.fixture(scope="module")
def ledger() -> Iterator[Ledger]:
    book = Ledger("faults", "Faults injected between acmelite and the CA (test_faults.py)")
    yield book
    book.save()


@pytest.fixture(scope="module")
def proxy(pebble: Pebble) -> Iterator[FaultProxy]:
    with FaultProxy(pebble.directory_url, upstream_ca_bundle=pebble.ca_bundle) as running:
        yield running


@pytest.fixture(scope="module")
def seed(proxy: FaultProxy, pebble: Pebble, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An account key (registered through the proxy) and an --out with a certificate."""
    root = tmp_path_factory.mktemp("faults-seed")
    assert main(_argv(proxy, pebble, root, "-q")) == 0
    return root


@dataclass
class Work:
    """One test's copy of the seed: ``run()`` re-issues into its ``out``."""

    root: Path
    proxy: FaultProxy
    pebble: Pebble
    capsys: pytest.CaptureFixture[str]
    before: dict[str, bytes] = field(default_factory=dict)
    elapsed: float = 0.0

    @property
    def out(self) -> Path:
        return self.root / "out"

    def run(self, *extra: str) -> CliResult:
        self.before = tree_snapshot(self.out)
        start = time.monotonic()
        result = run_cli(_argv(self.proxy, self.pebble, self.root, *extra), self.capsys)
        self.elapsed = time.monotonic() - start
        return result


@pytest.fixture
def work(
    seed: Path,
    proxy: FaultProxy,
    pebble: Pebble,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> Iterator[Work]:
    proxy.clear()
    proxy.reset_counts()
    root = tmp_path / "w"
    shutil.copytree(seed, root, symlinks=True)
    try:
        yield Work(root, proxy, pebble, capsys)
    finally:
        proxy.clear()


def _argv(proxy: FaultProxy, pebble: Pebble, root: Path, *extra: str) -> list[str]:
    argv = issue_argv(
        pebble, root, NAME, directory_url=proxy.directory_url, ca_bundle=proxy.ca_bundle
    )
    return [*argv, *extra]


def _consistent(out: Path) -> bool:
    """The live files belong together: the key matches the cert, fullchain = cert + chain."""
    try:
        key, cert = (out / "privkey.pem").read_bytes(), (out / "cert.pem").read_bytes()
        chain, full = (out / "chain.pem").read_bytes(), (out / "fullchain.pem").read_bytes()
        return key_matches_cert(key, cert) and full == cert + chain
    except (OSError, ValueError):
        return False


def _serial(out: Path) -> int:
    return x509.load_pem_x509_certificate((out / "cert.pem").read_bytes()).serial_number


def check_recovered(
    ledger: Ledger,
    case: str,
    work: Work,
    result: CliResult,
    injection: Injection,
    *,
    min_hits: int = 1,
) -> None:
    lost = 0 if _consistent(work.out) else 1
    ok = result.code == 0 and injection.hits >= min_hits
    ledger.record(case, injected=injection.hits, recovered=int(ok), data_lost=lost)
    assert result.code == 0, result.err
    assert injection.hits >= min_hits, f"the fault never fired: {injection}"
    assert lost == 0
    old_serial = x509.load_pem_x509_certificate(work.before["cert.pem"]).serial_number
    assert _serial(work.out) != old_serial, "recovered, so a new certificate is installed"
    assert "Traceback" not in result.err


def check_failed_cleanly(
    ledger: Ledger,
    case: str,
    work: Work,
    result: CliResult,
    injection: Injection,
    *fragments: str,
    max_seconds: float = 45,
) -> None:
    lines = result.err.strip().splitlines()
    errors = [line for line in lines if line.startswith("acmelite: error: ")]
    clean = (
        result.code == 1
        and len(errors) == 1
        and lines[-1] == errors[0]
        and "Traceback" not in result.err
        and not result.out
    )
    intact = tree_snapshot(work.out) == work.before and _consistent(work.out)
    ledger.record(
        case,
        injected=injection.hits,
        failed_cleanly=int(clean),
        data_lost=0 if intact else 1,
        message=errors[-1] if errors else "",
    )
    assert injection.hits >= 1, f"the fault never fired: {injection}"
    assert result.code == 1, result.err
    assert clean, result.err
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    assert intact, "a failed run must leave --out exactly as it was"
    assert work.elapsed < max_seconds, f"took {work.elapsed:.1f} s to fail"


# -- recovered -------------------------------------------------------------------------------

RECOVERED = {
    "badNonce on every 3rd POST": (
        Fault.bad_nonce(on=On(method="POST", nth=3, every=3, times=None)),
        2,
    ),
    "429 rateLimited, Retry-After 1 s, on newOrder": (
        Fault.error(429, retry_after=1, on=On(kind="newOrder")),
        1,
    ),
    "503, Retry-After as HTTP-date, on finalize": (
        Fault.error(503, retry_after=2, retry_after_date=True, on=On(kind="finalize")),
        1,
    ),
    "503, Retry-After 1 s, on an order poll (POST-as-GET)": (
        Fault.error(503, retry_after=1, on=On(kind="order")),
        1,
    ),
    "429 twice on the certificate download": (
        Fault.error(429, retry_after=1, on=On(kind="certificate", times=2)),
        2,
    ),
    "503, Retry-After 1 s, on GET directory": (
        Fault.error(503, retry_after=1, on=On(kind="directory")),
        1,
    ),
    "503, Retry-After 1 s, on HEAD newNonce": (
        Fault.error(503, retry_after=1, on=On(method="HEAD", kind="newNonce")),
        1,
    ),
    "connection reset before the answer to an order poll": (Fault.reset(on=On(kind="order")), 1),
    "connection reset after the CA answered an authz fetch": (
        Fault.reset(forward=True, on=On(kind="authz")),
        1,
    ),
    "connection reset mid-body of the certificate download": (
        Fault.reset_mid_body(on=On(kind="certificate")),
        1,
    ),
    "connection reset mid-body of an order poll": (
        Fault.reset_mid_body(keep=0.3, on=On(kind="order")),
        1,
    ),
    "connection reset on GET directory": (Fault.reset(on=On(kind="directory")), 1),
    "connection reset on HEAD newNonce": (Fault.reset(on=On(method="HEAD")), 1),
    "wrong Content-Type (text/plain) on the directory": (
        Fault.wrong_content_type("text/plain", on=On(kind="directory")),
        1,
    ),
    "wrong Content-Type on the certificate": (
        Fault.wrong_content_type("application/octet-stream", on=On(kind="certificate")),
        1,
    ),
    "badNonce problem labelled application/json": (
        Fault.error(
            400,
            problem_type="urn:ietf:params:acme:error:badNonce",
            content_type="application/json",
            on=On(method="POST", kind="order"),
        ),
        1,
    ),
    "slow answer (2 s) within the timeout": (Fault.delay(2, on=On(kind="order")), 1),
}


@pytest.mark.parametrize("case", list(RECOVERED))
def test_recovered(case: str, work: Work, proxy: FaultProxy, ledger: Ledger) -> None:
    fault, min_hits = RECOVERED[case]
    injection = proxy.inject(fault)
    result = work.run("--timeout", "60")
    check_recovered(ledger, case, work, result, injection, min_hits=min_hits)


# -- failed cleanly --------------------------------------------------------------------------

FAILED: dict[str, tuple[Fault, tuple[str, ...], tuple[str, ...]]] = {
    "HTML 502 page on newOrder": (
        Fault.html(502, on=On(kind="newOrder")),
        (),
        ("HTTP 502", "text/html", "Bad Gateway"),
    ),
    "HTML 200 page instead of the directory": (
        Fault.html(200, on=On(kind="directory")),
        (),
        ("not JSON", "/dir"),
    ),
    "HTML 200 page instead of an order": (
        Fault.html(200, on=On(kind="order")),
        (),
        ("not JSON", "/my-order/"),
    ),
    "HTML 502 page on an order poll": (Fault.html(502, on=On(kind="order")), (), ("HTTP 502",)),
    "malformed JSON order": (Fault.malformed_json(on=On(kind="order")), (), ("not JSON",)),
    "malformed JSON directory": (Fault.malformed_json(on=On(kind="directory")), (), ("not JSON",)),
    "directory missing newOrder": (
        Fault.patch_json(remove_fields=("newOrder",), on=On(kind="directory")),
        (),
        ("newOrder",),
    ),
    "certificate PEM truncated in the middle": (
        Fault.truncated_pem(keep=0.3, on=On(kind="certificate")),
        (),
        ("truncated or corrupt",),
    ),
    "certificate PEM truncated inside the 2nd BEGIN line": (
        Fault.truncated_pem(
            after=b"-----END CERTIFICATE-----\n-----BEGIN CERT", on=On(kind="certificate")
        ),
        (),
        ("truncated or corrupt",),
    ),
    "certificate PEM with garbage inside": (
        Fault.garbage_pem(on=On(kind="certificate")),
        (),
        ("truncated or corrupt",),
    ),
    "HTML page instead of the certificate": (
        Fault.html(200, on=On(kind="certificate")),
        (),
        ("no PEM certificate",),
    ),
    "order stuck processing, --timeout 5": (
        Fault.patch_json(
            **ORDER_STUCK, on=On(method="POST", path="^/(my-order|finalize-order)/", times=None)
        ),
        ("--timeout", "5"),
        ("still processing", NAME),
    ),
    "answer delayed past --timeout on an order poll": (
        Fault.delay(60, on=On(kind="order")),
        ("--timeout", "4"),
        ("deadline",),
    ),
    "answer delayed past --timeout on the directory": (
        Fault.delay(60, on=On(kind="directory")),
        ("--timeout", "4"),
        ("deadline",),
    ),
    "connection reset on newOrder (not safe to resend)": (
        Fault.reset(forward=True, on=On(kind="newOrder")),
        (),
        ("/order-plz",),
    ),
    "connection reset on finalize (not safe to resend)": (
        Fault.reset(forward=True, on=On(kind="finalize")),
        (),
        ("/finalize-order/",),
    ),
    "429 with Retry-After past the ceiling (1 h)": (
        Fault.error(429, retry_after=3600, on=On(kind="newOrder")),
        (),
        ("rateLimited", "retry after"),
    ),
    "429 without Retry-After": (Fault.error(429, on=On(kind="newOrder")), (), ("rateLimited",)),
    "503 on every newOrder": (
        Fault.error(503, retry_after=1, on=On(kind="newOrder", times=None)),
        (),
        ("serverInternal", "Service Unavailable"),
    ),
    "badNonce on every POST": (
        Fault.bad_nonce(on=On(method="POST", kind="newOrder", times=None)),
        (),
        ("badNonce",),
    ),
}


@pytest.mark.parametrize("case", list(FAILED))
def test_failed_cleanly(case: str, work: Work, proxy: FaultProxy, ledger: Ledger) -> None:
    fault, extra, fragments = FAILED[case]
    injection = proxy.inject(fault)
    result = work.run(*extra)
    check_failed_cleanly(ledger, case, work, result, injection, *fragments)


def test_nothing_unsafe_is_resent(work: Work, proxy: FaultProxy) -> None:
    """A POST with a payload that may have taken effect is sent once; a poll is resent."""
    proxy.inject(Fault.reset(forward=True, on=On(kind="newOrder")))
    assert work.run().code == 1
    assert proxy.counts()[("POST", "newOrder")] == 1
    proxy.clear()
    proxy.reset_counts()
    proxy.inject(Fault.reset(on=On(kind="order", times=2)))
    assert work.run().code == 0
    statuses = [e.status for e in proxy.requests if proxy.kind_of(e.path) == "order"]
    assert statuses[:2] == [0, 0] and 200 in statuses[2:]  # Pebble may badNonce the 3rd


def test_keep_alive_survives_a_reset(work: Work, proxy: FaultProxy) -> None:
    """After a reset the client opens one new connection, not one per request."""
    proxy.inject(Fault.reset(on=On(kind="authz")))
    assert work.run().code == 0
    assert proxy.connections <= 3, proxy.connections
    assert len(proxy.requests) > 8


def test_failure_in_a_real_process(work: Work, proxy: FaultProxy, ledger: Ledger) -> None:
    """``python -m acmelite``: exit status 1, one line on stderr, no traceback."""
    injection = proxy.inject(Fault.html(502, on=On(kind="newOrder")))
    work.before = tree_snapshot(work.out)
    start = time.monotonic()
    result = run_cli_subprocess(_argv(proxy, work.pebble, work.root))
    work.elapsed = time.monotonic() - start
    check_failed_cleanly(
        ledger, "HTML 502 page on newOrder (subprocess)", work, result, injection, "HTTP 502"
    )


# -- renew, account and dns-01 under the same faults ------------------------------------------


def _live(out: Path) -> dict[str, bytes]:
    return {n: (out / n).read_bytes() for n in ("privkey.pem", "cert.pem", "fullchain.pem")}


#: (fault, extra arguments, recovered?, what the failure line must say)
RENEW: dict[str, tuple[Fault, tuple[str, ...], bool, str]] = {
    "renew: badNonce on every 2nd POST": (
        Fault.bad_nonce(on=On(method="POST", nth=2, every=2, times=None)),
        (),
        True,
        "",
    ),
    "renew: 503, Retry-After 1 s, on finalize": (
        Fault.error(503, retry_after=1, on=On(kind="finalize")),
        (),
        True,
        "",
    ),
    "renew: connection reset mid-body of the certificate download": (
        Fault.reset_mid_body(on=On(kind="certificate")),
        (),
        True,
        "",
    ),
    "renew: HTML page instead of renewalInfo (falls back to the lifetime rule)": (
        Fault.html(200, on=On(kind="renewalInfo")),
        (),
        True,
        "",
    ),
    "renew: HTML 502 page on newOrder": (
        Fault.html(502, on=On(kind="newOrder")),
        (),
        False,
        "HTTP 502",
    ),
    "renew: certificate PEM truncated": (
        Fault.truncated_pem(keep=0.4, on=On(kind="certificate")),
        (),
        False,
        "truncated",
    ),
    "renew: answer delayed past --timeout on the directory": (
        Fault.delay(60, on=On(kind="directory", times=None)),
        ("--timeout", "4"),
        False,
        "deadline",
    ),
}


@pytest.mark.parametrize("case", list(RENEW))
def test_renew_under_faults(case: str, work: Work, proxy: FaultProxy, ledger: Ledger) -> None:
    """``renew --force`` of the seeded --out (its renewal.json names the proxy)."""
    fault, extra, recovers, fragment = RENEW[case]
    before = _live(work.out)
    injection = proxy.inject(fault)
    start = time.monotonic()
    result = run_cli(["renew", str(work.out), "--force", *extra], work.capsys)
    took = time.monotonic() - start
    after = _live(work.out)
    whole = _consistent(work.out) and (after != before) == recovers
    failure = [line for line in result.err.splitlines() if "renewal failed" in line]
    if recovers:
        ok = result.code == 3 and not failure
    else:
        ok = result.code == 1 and len(failure) == 1 and fragment in failure[0]
    ok = ok and "Traceback" not in result.err and injection.hits >= 1
    ledger.record(
        case,
        injected=injection.hits,
        recovered=int(ok and recovers),
        failed_cleanly=int(ok and not recovers),
        data_lost=0 if whole else 1,
        message="" if recovers else (failure[0].split(": ", 1)[-1] if failure else ""),
    )
    assert injection.hits >= 1, injection
    assert ok, result.err
    assert whole, "the live files are the old set after a failure, a new whole set after"
    assert took < 45, f"{took:.0f} s: a hang, not a clean failure"


ACCOUNT: dict[str, tuple[Fault, bool]] = {
    "account show: 503, Retry-After 1 s, on the account POST": (
        Fault.error(503, retry_after=1, on=On(kind="newAccount")),
        True,
    ),
    "account show: connection reset on the account lookup": (
        Fault.reset(on=On(kind="newAccount")),
        False,
    ),
    "account show: HTML 502 page": (Fault.html(502, on=On(kind="newAccount")), False),
}


@pytest.mark.parametrize("case", list(ACCOUNT))
def test_account_under_faults(case: str, work: Work, proxy: FaultProxy, ledger: Ledger) -> None:
    fault, recovers = ACCOUNT[case]
    injection = proxy.inject(fault)
    argv = [
        "account",
        "show",
        "--server",
        proxy.directory_url,
        "--ca-bundle",
        proxy.ca_bundle,
        "--account-key",
        str(work.root / "account.key"),
        "--json",
    ]
    result = run_cli(argv, work.capsys)
    lines = result.err.strip().splitlines()
    if recovers:
        ok = result.code == 0 and '"status": "valid"' in result.out
    else:
        ok = result.code == 1 and lines[-1].startswith("acmelite: error: ")
    ok = ok and "Traceback" not in result.err
    ledger.record(
        case,
        injected=injection.hits,
        recovered=int(ok and recovers),
        failed_cleanly=int(ok and not recovers),
        message="" if recovers else lines[-1],
    )
    assert injection.hits >= 1, injection
    assert ok, result.err


def test_dns01_issue_through_faults(
    pebble_factory: PebbleFactory,
    bind: BindServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    ledger: Ledger,
) -> None:
    """A wildcard by dns-01 (RFC 2136 + TSIG) while the CA rejects every 2nd nonce, asks to
    wait once and drops one poll: recovered (and the ``bind`` fixture checks that no TXT
    record is left behind)."""
    dns_pebble = pebble_factory(dns_server=bind.address)
    monkeypatch.setenv("ACMELITE_TSIG_SECRET", bind.key_secret)
    with FaultProxy(dns_pebble.directory_url, upstream_ca_bundle=dns_pebble.ca_bundle) as dns_proxy:
        faults = [
            dns_proxy.inject(Fault.bad_nonce(on=On(method="POST", nth=2, every=2, times=None))),
            dns_proxy.inject(Fault.error(503, retry_after=1, on=On(kind="finalize"))),
            dns_proxy.inject(Fault.reset(on=On(kind="order"))),
        ]
        argv = [
            "issue", "-d", "faults.example.test", "-d", "*.faults.example.test",
            "--server", dns_proxy.directory_url, "--ca-bundle", dns_proxy.ca_bundle,
            "--agree-tos", "--account-key", str(tmp_path / "account.key"),
            "--out", str(tmp_path / "out"), "--challenge", "dns-01", "--dns", "rfc2136",
            "--dns-server", bind.address, "--tsig-key-name", bind.key_name,
            "--dns-resolver", bind.address, "--dns-propagation-timeout", "10",
        ]  # fmt: skip
        result = run_cli(argv, capsys)
    hits = sum(f.hits for f in faults)
    ok = result.code == 0 and all(f.hits for f in faults)
    ledger.record(
        "dns-01 wildcard: badNonce every 2nd POST, 503 on finalize, reset on a poll",
        injected=hits,
        recovered=int(ok),
        data_lost=0 if _consistent(tmp_path / "out") else 1,
    )
    assert ok, (result.err, faults)
    assert _consistent(tmp_path / "out")


@pytest.mark.parametrize(
    "argv",
    [
        ["issue", "-d", NAME, "--out", "o"],
        ["account", "show"],
        ["revoke", "--cert", "c.pem"],
    ],
)
def test_every_command_has_a_deadline_by_default(argv: list[str]) -> None:
    """Without --timeout an order stuck processing would hang a cron job for ever."""
    from acmelite.cli import build_parser
    from acmelite.cli.common import DEFAULT_TIMEOUT

    assert 0 < build_parser().parse_args(argv).timeout == DEFAULT_TIMEOUT <= 900


def test_renew_has_a_deadline_by_default() -> None:
    """renew without --timeout bounds each certificate by its renewal.json's timeout, which
    is always there: a file without one gets the default, and 0 or less is refused."""
    from acmelite.cli import build_parser
    from acmelite.cli.common import DEFAULT_TIMEOUT
    from acmelite.config import CertificateConfig

    assert build_parser().parse_args(["renew", "o"]).timeout is None
    config = CertificateConfig(names=("a.test",), server="https://ca.test/dir",
                               account_key="/a.key")  # fmt: skip
    assert 0 < config.timeout == DEFAULT_TIMEOUT <= 900
    data = config.to_json()
    del data["timeout"]
    assert CertificateConfig.from_json(data, source="t").timeout == DEFAULT_TIMEOUT
    with pytest.raises(InvalidInput, match="timeout must be > 0"):
        replace(config, timeout=0)
