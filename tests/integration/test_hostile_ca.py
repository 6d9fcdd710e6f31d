"""A hostile CA, or the network with a certificate the client trusts (threat model, reliability.md).

Pebble plays the CA behind :class:`FaultProxy`, which turns it hostile: it drips answers,
pads them to hundreds of MiB, hands out URLs on other origins and asks for waits of decades.
A *sink* — a listener on another loopback port that counts connections — stands for the
host the CA would like the client to talk to: every origin test asserts it saw nothing.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import dns.message
import pytest

from acmelite.challenges import ChallengeTask
from acmelite.client import AcmeClient
from acmelite.dns.propagation import PropagationSettings
from acmelite.dns.zone import check_hostname
from acmelite.errors import ProblemError, ProtocolError, SolverError
from acmelite.keys import AccountKey
from acmelite.models import Challenge, Identifier
from acmelite.solvers.hook import HookSolver
from acmelite.solvers.http01 import StandaloneSolver
from acmelite.testing.bind import BindNotFound, BindServer
from acmelite.testing.pebble import Pebble
from acmelite.testing.proxy import Fault, FaultProxy, On
from acmelite.transport import MAX_POLL_WAIT, MAX_RETRY_AFTER, Transport, parse_retry_after
from tests.conftest import unavailable
from tests.reliability import Ledger
from tests.support import CliResult, issue_argv, run_cli, run_cli_subprocess

NAME = "hostile-ca.acmelite.test"


@pytest.fixture(scope="module")
def ledger() -> Iterator[Ledger]:
    book = Ledger(
        "hostile-ca", "A hostile CA or network, through the fault proxy (test_hostile_ca.py)"
    )
    yield book
    book.save()


@pytest.fixture(scope="module")
def proxy(pebble: Pebble) -> Iterator[FaultProxy]:
    with FaultProxy(pebble.directory_url, upstream_ca_bundle=pebble.ca_bundle) as running:
        yield running


@pytest.fixture(autouse=True)
def _clean(proxy: FaultProxy) -> Iterator[None]:
    proxy.clear()
    yield
    proxy.clear()


class Sink:
    """Accepts and at once closes connections on 127.0.0.2 (another host), counting them."""

    def __init__(self) -> None:
        self._sock = socket.create_server(("127.0.0.2", 0))
        self._sock.settimeout(0.1)
        self.port = int(self._sock.getsockname()[1])
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def url(self, path: str, scheme: str = "https") -> str:
        return f"{scheme}://127.0.0.2:{self.port}{path}"

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._sock.close()


@pytest.fixture
def sink() -> Iterator[Sink]:
    running = Sink()
    try:
        yield running
    finally:
        running.close()


def _account_argv(proxy: FaultProxy, tmp: Path, *extra: str) -> list[str]:
    return [
        "account",
        "register",
        "--server",
        proxy.directory_url,
        "--ca-bundle",
        proxy.ca_bundle,
        "--account-key",
        str(tmp / "account.key"),
        "--agree-tos",
        *extra,
    ]


def _issue_argv(proxy: FaultProxy, pebble: Pebble, tmp: Path, *extra: str) -> list[str]:
    argv = issue_argv(
        pebble, tmp, NAME, directory_url=proxy.directory_url, ca_bundle=proxy.ca_bundle
    )
    return [*argv, "-q", *extra]


def _one_error_line(result: CliResult) -> str:
    lines = [line for line in result.err.splitlines() if line.strip()]
    assert len(lines) == 1, result.err
    assert lines[0].startswith("acmelite: error: "), result.err
    return lines[0]


# -- finding 3: bounded reads -------------------------------------------------------------------


@pytest.mark.parametrize("command", ["account register", "issue"])
def test_a_dripping_answer_fails_at_the_deadline_naming_the_url(
    proxy: FaultProxy, pebble: Pebble, tmp_path: Path, command: str, ledger: Ledger
) -> None:
    """One byte a second never trips a socket timeout; --timeout 5 must still end the run."""
    kind = "directory" if command == "account register" else "newOrder"
    if command == "issue":
        argv = _issue_argv(proxy, pebble, tmp_path, "--timeout", "5")
    else:
        argv = _account_argv(proxy, tmp_path, "--timeout", "5", "-q")
    injection = proxy.inject(Fault.drip(1.0, on=On(kind=kind, times=None)))
    start = time.monotonic()
    try:
        result = run_cli_subprocess(argv, timeout=90)
    finally:
        injection.remove()
    took = time.monotonic() - start
    line = _one_error_line(result)
    ledger.record(
        f"{command}: {kind} answer dripped one byte a second, --timeout 5",
        injected=injection.hits,
        failed_cleanly=int(result.code == 1),
        message=line,
    )
    assert result.code == 1, result.err
    assert "still sending its answer to" in line and "at the deadline" in line, line
    assert f"{proxy.netloc}/" in line, line
    assert took < 45, f"the run took {took:.1f} s with --timeout 5"
    if command == "issue":
        # The lock went with the run: the next one goes through.
        assert run_cli_subprocess(argv).code == 0


_RSS_PROBE = (
    "import resource, sys\n"
    "from acmelite.cli import main\n"
    "code = main(sys.argv[1:])\n"
    "print('maxrss-kib', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\n"
    "sys.exit(code)\n"
)


def _run_measured(argv: list[str]) -> tuple[int, str, int]:
    """``acmelite ARGV`` in a child that reports its peak resident memory (KiB)."""
    import subprocess

    done = subprocess.run(
        [sys.executable, "-c", _RSS_PROBE, *argv],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    lines = done.stderr.splitlines()
    rss = int(next(line.split()[1] for line in lines if line.startswith("maxrss-kib")))
    err = "\n".join(line for line in lines if not line.startswith("maxrss-kib"))
    return done.returncode, err, rss


@pytest.mark.parametrize("chunked", [True, False], ids=["chunked", "content-length"])
def test_a_huge_answer_is_refused_at_the_cap_not_read_into_memory(
    proxy: FaultProxy, tmp_path: Path, chunked: bool, ledger: Ledger
) -> None:
    """256 MiB of whitespace after the directory: still valid JSON, but never read whole."""
    size = 256 << 20
    injection = proxy.inject(Fault.oversize(size, chunked=chunked, on=On(kind="directory")))
    code, err, rss = _run_measured(_account_argv(proxy, tmp_path, "-q"))
    line = _one_error_line(CliResult(code, "", err + "\n"))
    ledger.record(
        f"directory padded to 256 MiB ({'chunked' if chunked else 'Content-Length'})",
        injected=injection.hits,
        failed_cleanly=int(code == 1),
        message=line,
    )
    assert code == 1, err
    assert "more than the limit of 1048576 bytes" in line and "/dir" in line, line
    assert rss < 200 * 1024, f"peak memory {rss // 1024} MiB for a refused answer"
    assert not (tmp_path / "account.key.accounts.json").exists()


def test_a_huge_certificate_chain_is_refused_and_the_old_files_stay(
    proxy: FaultProxy,
    pebble: Pebble,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    ledger: Ledger,
) -> None:
    argv = _issue_argv(proxy, pebble, tmp_path)
    assert run_cli(argv, capsys).code == 0
    before = (tmp_path / "out" / "cert.pem").read_bytes()
    injection = proxy.inject(Fault.oversize(2 << 20, on=On(kind="certificate")))
    result = run_cli(argv, capsys)
    line = _one_error_line(result)
    ledger.record(
        "certificate chain padded to 2 MiB",
        injected=injection.hits,
        failed_cleanly=int(result.code == 1),
        data_lost=int((tmp_path / "out" / "cert.pem").read_bytes() != before),
        message=line,
    )
    assert result.code == 1
    assert "more than the limit of 1048576 bytes" in line and "/certZ/" in line, line
    assert (tmp_path / "out" / "cert.pem").read_bytes() == before


def test_the_caps_are_configurable_in_the_library(proxy: FaultProxy) -> None:
    transport = Transport(ca_bundle=proxy.ca_bundle, max_json_bytes=64)
    with (
        AcmeClient(proxy.directory_url, AccountKey.generate(), transport=transport) as client,
        pytest.raises(ProtocolError, match="more than the limit of 64 bytes"),
    ):
        client.directory  # noqa: B018 - the property fetches it


# -- finding 12: Retry-After waits are capped ---------------------------------------------------


def test_library_polling_caps_a_retry_after_of_decades(
    proxy: FaultProxy, pebble: Pebble, ledger: Ledger
) -> None:
    """``issue()`` with no timeout agreed to sleep 31.7 years when the order said so."""
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        time.sleep(min(seconds, 0.05))

    decades = {"Retry-After": "999999999"}
    hits = [
        proxy.inject(Fault.with_headers(decades, on=On(kind=kind, times=None)))
        for kind in ("order", "finalize")
    ]
    transport = Transport(ca_bundle=proxy.ca_bundle, sleep=sleep)
    with AcmeClient(
        proxy.directory_url, AccountKey.generate(), transport=transport, sleep=sleep
    ) as client:
        client.register(agree_tos=True)
        bundle = client.issue(
            [NAME], solver=StandaloneSolver(port=pebble.http_port, address="127.0.0.1")
        )
    fired = sum(h.hits for h in hits)
    ledger.record(
        "Retry-After: 999999999 on every order and finalize answer (library, no timeout)",
        injected=fired,
        recovered=int(max(waits) <= MAX_POLL_WAIT),
    )
    assert fired >= 1
    assert bundle.names == (NAME,)
    assert waits and max(waits) <= MAX_POLL_WAIT, waits


def test_a_rate_limit_of_decades_is_reported_not_waited(
    proxy: FaultProxy, pebble: Pebble, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    injection = proxy.inject(
        Fault.error(429, retry_after=999999999, on=On(kind="newOrder", times=None))
    )
    start = time.monotonic()
    result = run_cli(_issue_argv(proxy, pebble, tmp_path), capsys)
    assert result.code == 1
    assert injection.hits == 1, "refused at once, not retried"
    assert "retry after" in result.err and time.monotonic() - start < 30


def test_retry_after_values_are_bounded() -> None:
    assert parse_retry_after("9" * 40) == parse_retry_after("Fri, 31 Dec 9999 23:59:59 GMT")
    assert parse_retry_after("9" * 40) == 366 * 86400.0
    assert MAX_RETRY_AFTER == 60.0


# -- finding 5: every URL stays on the directory's origin ---------------------------------------


def _assert_refused(result: CliResult, url: str, sink: Sink) -> str:
    line = _one_error_line(result)
    assert result.code == 1, result.err
    assert url in line and "not on its origin" in line, line
    assert sink.connections == 0, "a request went to the other origin"
    return line


def test_a_directory_entry_on_http_is_refused(
    proxy: FaultProxy,
    tmp_path: Path,
    sink: Sink,
    capsys: pytest.CaptureFixture[str],
    ledger: Ledger,
) -> None:
    """The signed newAccount JWS must never go out in plaintext."""
    url = sink.url("/sign-me-up", scheme="http")
    proxy.inject(Fault.patch_json(set_fields={"newAccount": url}, on=On(kind="directory")))
    result = run_cli(_account_argv(proxy, tmp_path, "-q"), capsys)
    line = _assert_refused(result, url, sink)
    ledger.record("directory: newAccount on http://", injected=1, failed_cleanly=1, message=line)
    assert not (tmp_path / "account.key.accounts.json").exists()


SOURCES = {
    # source: (fault, the URL it plants, extra issue options)
    "directory newOrder": (
        lambda url: Fault.patch_json(set_fields={"newOrder": url}, on=On(kind="directory")),
        "/order-plz",
        (),
    ),
    "Location of newAccount": (
        lambda url: Fault.with_headers({"Location": url}, on=On(kind="newAccount")),
        "/my-account/1",
        (),
    ),
    "Location of newOrder": (
        lambda url: Fault.with_headers({"Location": url}, on=On(kind="newOrder")),
        "/my-order/1",
        (),
    ),
    "order authorizations": (
        lambda url: Fault.patch_json(set_fields={"authorizations": [url]}, on=On(kind="newOrder")),
        "/authZ/1",
        (),
    ),
    "order finalize": (
        lambda url: Fault.rewrite(
            r"https://127\.0\.0\.1:\d+/finalize-order/[\w-]+", url, on=On(times=None)
        ),
        "/finalize-order/1",
        (),
    ),
    "challenge url": (
        lambda url: Fault.rewrite(
            r"https://127\.0\.0\.1:\d+/chalZ/[\w-]+", url, on=On(kind="authz", times=None)
        ),
        "/chalZ/1",
        (),
    ),
    "order certificate": (
        lambda url: Fault.patch_json(
            set_fields={"certificate": url}, where={"status": "valid"}, on=On(kind="order")
        ),
        "/certZ/1",
        (),
    ),
    "Link rel=alternate": (
        lambda url: Fault.with_headers(
            {"Link": f'<{url}>;rel="alternate"'}, on=On(kind="certificate")
        ),
        "/certZ/1/1",
        ("--preferred-chain", "No Such Root"),
    ),
}


@pytest.mark.parametrize("source", list(SOURCES))
def test_a_url_on_another_origin_is_refused(
    proxy: FaultProxy,
    pebble: Pebble,
    tmp_path: Path,
    sink: Sink,
    capsys: pytest.CaptureFixture[str],
    source: str,
    ledger: Ledger,
) -> None:
    make, path, extra = SOURCES[source]
    url = sink.url(path)
    injection = proxy.inject(make(url))
    result = run_cli(_issue_argv(proxy, pebble, tmp_path, *extra), capsys)
    stored = tmp_path / "account.key.accounts.json"
    with contextlib.suppress(OSError, ValueError):
        assert str(sink.port) not in json.dumps(json.loads(stored.read_text()))
    line = _assert_refused(result, url, sink)
    ledger.record(
        f"{source} on another origin",
        injected=injection.hits,
        failed_cleanly=1,
        message=line,
    )
    assert injection.hits >= 1
    assert not (tmp_path / "out" / "cert.pem").exists()


@pytest.mark.parametrize("insecure", [False, True], ids=["refused", "with-insecure"])
def test_server_on_plain_http_needs_insecure(
    tmp_path: Path,
    sink: Sink,
    capsys: pytest.CaptureFixture[str],
    insecure: bool,
    ledger: Ledger,
) -> None:
    url = sink.url("/dir", scheme="http")
    argv = ["account", "register", "--server", url, "--account-key", str(tmp_path / "k"), "-q"]
    result = run_cli([*argv, "--insecure"] if insecure else argv, capsys)
    if insecure:
        assert result.code == 1, "the sink is no CA"
        assert sink.connections >= 1, "with --insecure the plain-HTTP test CA is asked"
        return
    line = _one_error_line(result)
    ledger.record("--server http://", bad_inputs=1, failed_cleanly=1, message=line)
    assert result.code == 2, "a usage error"
    assert f"--server {url} is plain HTTP" in line and "--insecure" in line, line
    assert sink.connections == 0


# -- finding 10: names from DNS answers and from the CA reach a hook only as host names ---------

#: CNAME targets a hostile zone (or a spoofed answer) could send; dnspython leaves backticks
#: and pipes as they are.
HOSTILE_CNAMES = {
    "backtick": "x`touch${IFS}/tmp/pwned`|y.acme-dns.test.",
    "quote": 'a\\"b$\\(id\\).acme-dns.test.',
    "escape": "a\\027[2Jb.acme-dns.test.",
}


@pytest.fixture(scope="module")
def hostile_dns() -> Iterator[BindServer]:
    records = [
        f"_acme-challenge.{case}.example.test. CNAME {target}"
        for case, target in HOSTILE_CNAMES.items()
    ]
    server = BindServer(records=records)
    try:
        server.start()
    except BindNotFound as exc:
        unavailable(str(exc))
    try:
        yield server
    finally:
        server.stop()


def _recording_hook(tmp_path: Path) -> tuple[list[str], Path]:
    record = tmp_path / "hook-argv.jsonl"
    script = (
        "import json, os, sys\n"
        f"open({str(record)!r}, 'a').write(json.dumps(sys.argv[1:]) + '\\n')\n"
    )
    return [sys.executable, "-c", script], record


def _dns_task(name: str) -> ChallengeTask:
    token = secrets.token_urlsafe(32)
    return ChallengeTask(
        identifier=Identifier(type="dns", value=name),
        challenge=Challenge(
            type="dns-01", url="https://ca.test/c/1", status="pending", token=token
        ),
        key_authorization=f"{token}.{secrets.token_urlsafe(32)}",
    )


@pytest.mark.parametrize("case", list(HOSTILE_CNAMES))
def test_a_hostile_cname_target_never_reaches_the_hook(
    hostile_dns: BindServer, tmp_path: Path, case: str, ledger: Ledger
) -> None:
    command, record = _recording_hook(tmp_path)
    solver = HookSolver(command, propagation=PropagationSettings(resolver=hostile_dns.address))
    task = _dns_task(f"{case}.example.test")
    with pytest.raises(SolverError) as caught:
        solver.perform([task])
    solver.cleanup([task])
    ran = record.read_text().splitlines() if record.exists() else []
    ledger.record(
        f"CNAME target with {case} characters",
        bad_inputs=1,
        failed_cleanly=int(not ran),
        data_lost=len(ran),
        message=str(caught.value),
    )
    assert ran == [], "the hook ran with the hostile name"
    assert f"_acme-challenge.{case}.example.test. is a CNAME to" in str(caught.value)
    assert "which is not a host name" in str(caught.value)
    assert caught.value.identifiers == (f"{case}.example.test",)


@pytest.mark.parametrize(
    "name", ["a`id`.example.test", "a|b.example.test", "a b.example.test", "a\x1b[2J.example.test"]
)
def test_an_identifier_from_the_ca_reaches_the_hook_only_as_a_host_name(
    tmp_path: Path, name: str, ledger: Ledger
) -> None:
    """The name in ACMELITE_DNS_IDENTIFIER and the record come from the CA's authorization."""
    command, record = _recording_hook(tmp_path)
    settings = PropagationSettings(timeout=0, resolver="127.0.0.1:9")
    solver = HookSolver(command, propagation=settings)
    solver._lookup = _NoCname  # type: ignore[method-assign]
    task = _dns_task(name)
    with pytest.raises(SolverError, match="refusing to run the DNS hook"):
        solver.perform([task])
    solver.cleanup([task])
    ledger.record(f"identifier {name!r} from the CA", bad_inputs=1, failed_cleanly=1)
    assert not record.exists()


class _NoCname:
    """A lookup with no CNAME anywhere, for names no DNS server would take."""

    def ask(self, name: str, rdtype: object) -> dns.message.Message:
        return dns.message.make_response(dns.message.make_query("example.test.", "CNAME"))


def test_host_names_that_are_fine_pass(hostile_dns: BindServer) -> None:
    for name in ("_acme-challenge.example.test.", "xn--bcher-kva.example.test", "a-1.b2.test"):
        assert check_hostname(name) is None, name
    assert check_hostname("*.example.test", wildcard=True) is None
    assert check_hostname("*.example.test") is not None
    assert check_hostname("a._b.example.test") is not None, "_ only in leading labels"


# -- finding 6: the CA's text is escaped, its status values are RFC 8555's ----------------------

FORGERY = (
    "\x1b[2K\r\x1b[1A[  0.42s] certificate for example.com in /etc/acmelite/site, serial 01"
    "\n[  0.43s] all good\u202e\x9b31m\x07"
)
RAW = ("\x1b", "\r", "\x07", "\x9b", "\u202e", "\n[  0.43s] all good")


def _no_raw_control(text: str) -> None:
    for char in RAW:
        assert char not in text, f"{char!r} reached the terminal: {text!r}"


def test_a_problem_detail_cannot_forge_lines(
    proxy: FaultProxy,
    pebble: Pebble,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    ledger: Ledger,
) -> None:
    problem = "urn:ietf:params:acme:error:malformed"
    proxy.inject(Fault.error(400, problem_type=problem, detail=FORGERY, on=On(kind="newOrder")))
    result = run_cli(_issue_argv(proxy, pebble, tmp_path, "-v"), capsys)
    ledger.record(
        "problem detail with escape sequences, CR, newline, C1 and bidi controls",
        bad_inputs=1,
        failed_cleanly=int(result.code == 1),
        message=_one_error_line(CliResult(1, "", result.err.splitlines()[-1])),
    )
    assert result.code == 1
    _no_raw_control(result.err + result.out)
    assert "\\x1b[2K\\x0d\\x1b[1A" in result.err and "\\u202e\\x9b31m\\x07" in result.err


def test_an_order_status_outside_rfc_8555_is_refused(
    proxy: FaultProxy,
    pebble: Pebble,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    ledger: Ledger,
) -> None:
    proxy.inject(Fault.patch_json(set_fields={"status": "\x1b[2Kvalid"}, on=On(kind="newOrder")))
    result = run_cli(_issue_argv(proxy, pebble, tmp_path), capsys)
    line = _one_error_line(result)
    ledger.record("order status with an escape sequence", bad_inputs=1, failed_cleanly=1,
                  message=line)  # fmt: skip
    assert result.code == 1
    _no_raw_control(result.err)
    assert "order: status '\\x1b[2Kvalid' is not one of invalid, pending," in line, line


def test_renew_never_reprints_the_cas_text_raw(
    proxy: FaultProxy,
    pebble: Pebble,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    ledger: Ledger,
) -> None:
    """The failure is stored in .renewal-state.json and shown again on every run."""
    assert run_cli(_issue_argv(proxy, pebble, tmp_path), capsys).code == 0
    problem = "urn:ietf:params:acme:error:serverInternal"
    proxy.inject(Fault.error(500, problem_type=problem, detail=FORGERY, on=On(kind="newOrder")))
    first = run_cli(["renew", str(tmp_path / "out"), "--force"], capsys)
    again = run_cli(["renew", str(tmp_path / "out")], capsys)
    ledger.record("renew stores and shows a hostile problem detail", bad_inputs=1,
                  failed_cleanly=int(first.code == 1))  # fmt: skip
    assert first.code == 1 and "failed" in first.out
    assert "backing-off" in again.out and "last error:" in again.out
    for result in (first, again):
        _no_raw_control(result.out + result.err)


def test_the_library_keeps_the_detail_and_escapes_the_message(
    proxy: FaultProxy, pebble: Pebble
) -> None:
    problem = "urn:ietf:params:acme:error:malformed"
    proxy.inject(Fault.error(400, problem_type=problem, detail=FORGERY, on=On(kind="newOrder")))
    transport = Transport(ca_bundle=proxy.ca_bundle)
    with AcmeClient(proxy.directory_url, AccountKey.generate(), transport=transport) as client:
        client.register(agree_tos=True)
        with pytest.raises(ProblemError) as caught:
            client.issue([NAME], solver=StandaloneSolver(port=pebble.http_port))
    assert caught.value.problem.detail == FORGERY, "the data is the CA's, unchanged"
    _no_raw_control(str(caught.value))
