"""Secrets hygiene: no key, EAB HMAC key or TSIG secret in any output; key files born 0600.

Every command runs with ``-vv`` (``check`` has no ``-v``) with stdout, stderr and every log
record captured — the root logger at DEBUG, so dnspython's and urllib3's records count too —
and none of it may contain a private key in any spelling (PEM lines, the private numbers in
decimal, hex or base64url), the EAB HMAC key or the TSIG secret, right or wrong ones, on
success or failure. Then the same flow in a child process with ``umask 000`` records how
every file was created: each file that holds a private key was created with mode 0600 by
``os.open`` (never by ``open()``, which would be 0666 for an instant), and every directory
that holds one is 0700. Last, HTTPS verification of the CA cannot be switched off except
with ``--insecure``, which warns on every run.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import stat
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from acmelite.testing.bind import BindServer
from acmelite.testing.pebble import Pebble
from acmelite.testing.proxy import FaultProxy
from acmelite.transport import Transport
from tests.conftest import PebbleFactory
from tests.reliability import Ledger
from tests.support import CliResult, key_matches_cert, run_cli

EAB_KID = "secrets-kid"
EAB_KEY = base64.urlsafe_b64encode(bytes(range(7, 39))).rstrip(b"=").decode()
WRONG_EAB_KEY = base64.urlsafe_b64encode(bytes(range(90, 122))).rstrip(b"=").decode()
WRONG_TSIG = base64.b64encode(bytes(range(200, 232))).decode()


@pytest.fixture(scope="module")
def ledger() -> Iterator[Ledger]:
    book = Ledger("secrets", "Secrets in output, file modes, TLS verification (test_secrets.py)")
    yield book
    book.save()


@pytest.fixture
def eab_pebble(pebble_factory: PebbleFactory) -> Pebble:
    return pebble_factory(eab_required=True, eab_mac_keys={EAB_KID: EAB_KEY})


class Recorder:
    """Runs ``acmelite`` in-process and keeps every byte it printed and every log record."""

    def __init__(self, capsys: pytest.CaptureFixture[str]) -> None:
        self.capsys = capsys
        self.texts: list[str] = []
        self.records: list[logging.LogRecord] = []
        self.runs = 0

    def __call__(self, *argv: str, expect: int | None = 0) -> CliResult:
        """Run ``acmelite ARGV``; its exit status must be ``expect`` (None: any)."""
        result = run_cli(list(argv), self.capsys)
        self.runs += 1
        self.texts += [result.out, result.err]
        if expect is not None:
            assert result.code == expect, f"{argv[:2]}: {result.err}"
        return result

    def everything(self) -> str:
        formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
        logged = [formatter.format(r) + repr(getattr(r, "args", ())) for r in self.records]
        return "\n".join(self.texts + logged)


@pytest.fixture
def recorder(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[Recorder]:
    recorder = Recorder(capsys)
    real_handle = logging.Logger.handle

    def handle(self: logging.Logger, record: logging.LogRecord) -> None:
        recorder.records.append(record)
        real_handle(self, record)

    monkeypatch.setattr(logging.Logger, "handle", handle)
    root_level = logging.root.level
    logging.root.setLevel(logging.DEBUG)
    try:
        yield recorder
    finally:
        logging.root.setLevel(root_level)


# -- what a secret looks like ----------------------------------------------------------------


def _b64url(number: int) -> str:
    raw = number.to_bytes((number.bit_length() + 7) // 8 or 1, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def key_spellings(pem: bytes) -> set[str]:
    """Every way a private key could leak: PEM body lines, private numbers in three bases."""
    text = pem.decode()
    spellings = {line for line in text.splitlines() if len(line) >= 40 and "-----" not in line}
    key = serialization.load_pem_private_key(pem, password=None)
    numbers: list[int] = []
    if isinstance(key, ec.EllipticCurvePrivateKey):
        numbers.append(key.private_numbers().private_value)
    elif isinstance(key, rsa.RSAPrivateKey):
        private = key.private_numbers()
        numbers += [private.d, private.p, private.q]
    for number in numbers:
        spellings |= {str(number)[:40], format(number, "x")[:40], _b64url(number)[:40]}
    return spellings


def secret_spellings(secret: str) -> set[str]:
    padded = secret + "=" * (-len(secret) % 4)
    raw = base64.urlsafe_b64decode(padded.replace("+", "-").replace("/", "_"))
    return {
        secret,
        base64.b64encode(raw).decode().rstrip("="),
        raw.hex(),
        base64.urlsafe_b64encode(raw).decode().rstrip("="),
    }


def assert_no_secret(text: str, secrets: dict[str, set[str]]) -> None:
    for what, spellings in secrets.items():
        for spelling in spellings:
            assert spelling not in text, f"{what} appears in the output ({spelling[:12]}...)"
    assert "PRIVATE KEY-----" not in text


def _keys_below(*roots: Path) -> dict[str, set[str]]:
    """The spellings of every private key file below ``roots`` (versions included)."""
    found: dict[str, set[str]] = {}
    for root in roots:
        for path in root.rglob("*"):
            if (
                path.is_file()
                and not path.is_symlink()
                and path.suffix in (".pem", ".key")
                and b"PRIVATE KEY" in path.read_bytes()
            ):
                data = path.read_bytes()
                found[f"{path} ({hash(data):x})"] = key_spellings(data)
    return found


# -- no secret in any output -----------------------------------------------------------------


def test_no_secret_in_any_output_of_any_command(
    eab_pebble: Pebble, tmp_path: Path, recorder: Recorder, ledger: Ledger
) -> None:
    key = tmp_path / "config" / "acmelite" / "account.key"
    ca = [
        "--server",
        eab_pebble.directory_url,
        "--ca-bundle",
        eab_pebble.ca_bundle,
        "--account-key",
        str(key),
    ]
    http = ["--http-port", str(eab_pebble.http_port), "--http-address", "127.0.0.1"]
    out = tmp_path / "out"
    seen_keys: dict[str, set[str]] = {}

    # A wrong HMAC key first: the refusal must not echo either key.
    recorder(
        "account",
        "register",
        *ca,
        "--agree-tos",
        "--eab-kid",
        EAB_KID,
        "--eab-hmac-key",
        WRONG_EAB_KEY,
        "-vv",
        expect=1,
    )
    recorder(
        "account",
        "register",
        *ca,
        "--agree-tos",
        "--email",
        "ops@example.test",
        "--eab-kid",
        EAB_KID,
        "--eab-hmac-key",
        EAB_KEY,
        "-vv",
        "--json",
    )
    seen_keys |= _keys_below(key.parent)
    recorder("account", "show", *ca, "-vv", "--json")
    recorder("account", "update", *ca, "--email", "new@example.test", "-vv")
    recorder(
        "issue",
        "-d",
        "secrets.acmelite.test",
        *ca,
        *http,
        "--out",
        str(out),
        "--key-type",
        "rsa2048",
        "--k8s-secret",
        "web-tls/prod",
        "-vv",
        "--json",
    )
    seen_keys |= _keys_below(out)
    recorder("renew", str(out), "--force", "-vv", "--json", expect=3)
    seen_keys |= _keys_below(out)
    recorder(
        "check",
        "--cert",
        str(out / "fullchain.pem"),
        "--name",
        "secrets.acmelite.test",
        expect=None,
    )
    recorder(
        "revoke", "--cert", str(out / "cert.pem"), "--key", str(out / "privkey.pem"), *ca, "-vv"
    )
    recorder("issue", "-d", "secrets.acmelite.test", *ca, *http, "--out", str(out), "-vv")
    seen_keys |= _keys_below(out)
    recorder("revoke", "--cert", str(out / "cert.pem"), *ca, "--reason", "superseded", "-vv")
    recorder("account", "rollover", *ca, "--key-type", "ec384", "-vv")
    seen_keys |= _keys_below(key.parent)
    recorder("account", "deactivate", *ca, "--yes-deactivate", "-vv")
    recorder(
        "issue",
        "-d",
        "after.acmelite.test",
        *ca,
        *http,
        "--out",
        str(tmp_path / "x"),
        "-vv",
        expect=1,
    )

    secrets = {f"private key {name}": s for name, s in seen_keys.items()}
    secrets["EAB HMAC key"] = secret_spellings(EAB_KEY)
    secrets["wrong EAB HMAC key"] = secret_spellings(WRONG_EAB_KEY)
    everything = recorder.everything()
    leaked = [w for w, spellings in secrets.items() if any(s in everything for s in spellings)]
    ledger.record(
        f"{recorder.runs} command runs with -vv (EAB, account, issue, renew, revoke, check)",
        bad_inputs=2,
        failed_cleanly=2,
        data_lost=len(leaked),
    )
    assert len(seen_keys) >= 5, "account keys (2), certificate keys and the k8s secret"
    assert len(recorder.records) > 100, "-vv logs the wire"
    assert_no_secret(everything, secrets)
    for stored in (out / "renewal.json", key.with_name("account.key.accounts.json")):
        assert_no_secret(stored.read_text(), {"EAB HMAC key": secret_spellings(EAB_KEY)})


def test_no_tsig_secret_in_any_output(
    pebble_factory: PebbleFactory,
    bind: BindServer,
    tmp_path: Path,
    recorder: Recorder,
    monkeypatch: pytest.MonkeyPatch,
    ledger: Ledger,
) -> None:
    dns_pebble = pebble_factory(dns_server=bind.address)
    out = tmp_path / "out"
    dns = [
        "--server", dns_pebble.directory_url, "--ca-bundle", dns_pebble.ca_bundle,
        "--agree-tos", "--account-key", str(tmp_path / "account.key"),
        "--challenge", "dns-01", "--dns", "rfc2136", "--dns-server", bind.address,
        "--tsig-key-name", bind.key_name, "--dns-resolver", bind.address,
        "--dns-propagation-timeout", "10", "--out", str(out),
    ]  # fmt: skip
    names = ["-d", "secrets.example.test", "-d", "*.secrets.example.test"]
    recorder("issue", *names, *dns, "--tsig-secret", WRONG_TSIG, "-vv", expect=1)
    recorder("issue", *names, *dns, "--tsig-secret", bind.key_secret, "-vv")
    monkeypatch.setenv("ACMELITE_TSIG_SECRET", bind.key_secret)
    recorder("renew", str(out), "--force", "-vv", expect=3)
    monkeypatch.setenv("ACMELITE_TSIG_SECRET", WRONG_TSIG)
    recorder("renew", str(out), "--force", "-vv", expect=1)
    secrets = {
        "TSIG secret": secret_spellings(bind.key_secret),
        "wrong TSIG secret": secret_spellings(WRONG_TSIG),
    }
    secrets |= {f"private key {n}": s for n, s in _keys_below(out, tmp_path).items()}
    everything = recorder.everything()
    leaked = [w for w, spellings in secrets.items() if any(s in everything for s in spellings)]
    ledger.record(
        f"{recorder.runs} dns-01 runs with -vv (TSIG secret right and wrong)",
        bad_inputs=2,
        failed_cleanly=2,
        data_lost=len(leaked),
    )
    assert_no_secret(everything, secrets)
    assert_no_secret((out / "renewal.json").read_text(), secrets)


# -- file modes from creation ----------------------------------------------------------------

#: Runs ``acmelite`` with umask 000 and writes how every file and directory was created
#: (path, mode asked for, by what) to ``$ACMELITE_CREATED`` as JSON.
CHILD = """
import atexit, builtins, functools, io, json, os, sys
created, real_os_open, real_open, real_mkdir = [], os.open, builtins.open, os.mkdir

def os_open(path, flags, mode=0o777, *args, **kwargs):
    if flags & os.O_CREAT:
        created.append([os.path.abspath(os.fspath(path)), mode, "os.open"])
    return real_os_open(path, flags, mode, *args, **kwargs)

def py_open(file, mode="r", *args, **kwargs):
    if isinstance(file, (str, os.PathLike)) and any(c in mode for c in "wax+"):
        created.append([os.path.abspath(os.fspath(file)), 0o666, "open"])
    return real_open(file, mode, *args, **kwargs)

def mkdir(path, mode=0o777, *args, **kwargs):
    created.append([os.path.abspath(os.fspath(path)), mode, "mkdir"])
    return real_mkdir(path, mode, *args, **kwargs)

# partial() objects do not bind as methods: Python 3.10's pathlib keeps os.mkdir and io.open
# as class attributes of its accessor.
os_open, py_open, mkdir = (functools.partial(f) for f in (os_open, py_open, mkdir))
os.open, builtins.open, io.open, os.mkdir = os_open, py_open, py_open, mkdir
atexit.register(lambda: real_open(os.environ["ACMELITE_CREATED"], "w").write(json.dumps(created)))
os.umask(0)
from acmelite.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _run_recorded(argv: Sequence[str], log: Path, *, expect: int = 0) -> list[tuple[str, int, str]]:
    env = {**os.environ, "ACMELITE_CREATED": str(log)}
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, *argv],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert proc.returncode == expect, proc.stderr
    return [(path, mode, how) for path, mode, how in json.loads(log.read_text())]


def _born_as(path: Path, created: list[tuple[str, int, str]]) -> list[tuple[int, str]]:
    """How ``path`` came to be: itself, or the temporary file renamed onto it."""
    directory, name = str(path.parent.resolve()), path.name
    return [
        (mode, how)
        for p, mode, how in created
        if os.path.dirname(p) == directory
        and (os.path.basename(p) == name or os.path.basename(p).startswith(f".{name}."))
    ]


def test_key_files_are_0600_from_creation_even_with_umask_000(
    pebble: Pebble, tmp_path: Path, ledger: Ledger
) -> None:
    key = tmp_path / "config" / "acmelite" / "account.key"
    out = tmp_path / "certs" / "web"
    argv = [
        "--server",
        pebble.directory_url,
        "--ca-bundle",
        pebble.ca_bundle,
        "--account-key",
        str(key),
    ]
    created = _run_recorded(
        [
            "issue",
            "-d",
            "modes.acmelite.test",
            *argv,
            "--agree-tos",
            "--out",
            str(out),
            "--http-port",
            str(pebble.http_port),
            "--http-address",
            "127.0.0.1",
            "--k8s-secret",
            "web-tls",
        ],
        tmp_path / "issue.json",
    )
    created += _run_recorded(["account", "rollover", *argv], tmp_path / "rollover.json")
    created += _run_recorded(["renew", str(out), "--force"], tmp_path / "renew.json", expect=3)
    key_files = [
        p
        for p in tmp_path.rglob("*")
        if p.is_file()
        and not p.is_symlink()
        and p.suffix != ".json"
        and (b"PRIVATE KEY" in p.read_bytes() or p.name == "secret.yaml")
    ]
    wrong = []
    for path in key_files:
        births = _born_as(path, created)
        if not births or any(how != "os.open" or mode & 0o077 for mode, how in births):
            wrong.append(f"{path.relative_to(tmp_path)} created as {births}")
        if stat.S_IMODE(path.stat().st_mode) != 0o600:
            wrong.append(f"{path.relative_to(tmp_path)} is {oct(path.stat().st_mode)}")
    holders = {p.parent for p in key_files}
    for directory in holders | {key.parent, out, out / ".versions"}:
        if stat.S_IMODE(directory.stat().st_mode) != 0o700:
            wrong.append(
                f"{directory.relative_to(tmp_path)}/ is "
                f"{oct(stat.S_IMODE(directory.stat().st_mode))}"
            )
    ledger.record(
        f"{len(key_files)} key files and {len(holders)} directories checked under umask 000",
        injected=len(key_files),
        data_lost=len(wrong),
    )
    names = {p.name for p in key_files}
    assert {"account.key", "privkey.pem", "secret.yaml"} <= names, key_files
    assert len(key_files) >= 4, key_files  # and a privkey.pem per version
    assert not wrong, "\n".join(wrong)
    assert key_matches_cert((out / "privkey.pem").read_bytes(), (out / "cert.pem").read_bytes())


# -- HTTPS verification ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def proxy(pebble: Pebble) -> Iterator[FaultProxy]:
    """Pebble behind a proxy whose certificate no trust store knows."""
    with FaultProxy(pebble.directory_url, upstream_ca_bundle=pebble.ca_bundle) as running:
        yield running


def _issue(proxy: FaultProxy, pebble: Pebble, tmp_path: Path, *extra: str) -> list[str]:
    return [
        "issue",
        "-d",
        "tls.acmelite.test",
        "--server",
        proxy.directory_url,
        "--agree-tos",
        "--account-key",
        str(tmp_path / "account.key"),
        "--http-port",
        str(pebble.http_port),
        "--http-address",
        "127.0.0.1",
        "--out",
        str(tmp_path / "out"),
        *extra,
    ]


@pytest.mark.parametrize(
    "env",
    [
        {},
        {"ACMELITE_INSECURE": "1", "PYTHONHTTPSVERIFY": "0"},
        {"CURL_CA_BUNDLE": "", "REQUESTS_CA_BUNDLE": ""},
    ],
    ids=["plain", "insecure-looking-env", "empty-ca-env"],
)
def test_verification_cannot_be_switched_off_by_the_environment(
    proxy: FaultProxy,
    pebble: Pebble,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    env: dict[str, str],
    ledger: Ledger,
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    result = run_cli(_issue(proxy, pebble, tmp_path), capsys)
    refused = result.code == 1 and "TLS verification" in result.err.splitlines()[-1]
    ledger.record(
        f"untrusted CA certificate, environment {sorted(env) or 'clean'}",
        injected=1,
        failed_cleanly=int(refused),
    )
    assert refused, result.err
    assert not (tmp_path / "out" / "cert.pem").exists()
    assert proxy.requests == [] or all(e.status == 0 for e in proxy.requests)


def test_insecure_works_and_warns_on_every_run(
    proxy: FaultProxy,
    pebble: Pebble,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    ledger: Ledger,
) -> None:
    for extra in ((), ("-q",)):
        result = run_cli(_issue(proxy, pebble, tmp_path, "--insecure", *extra), capsys)
        assert result.code == 0, result.err
        warnings = [line for line in result.err.splitlines() if "warning:" in line]
        assert len(warnings) == 1, result.err
        assert "verification" in warnings[0] and "OFF" in warnings[0]
        assert "InsecureRequestWarning" not in result.err
    ledger.record(
        "--insecure against an untrusted CA certificate: works, warns every run",
        injected=2,
        recovered=2,
    )


def test_the_library_warns_too(caplog: pytest.LogCaptureFixture) -> None:
    library = logging.getLogger("acmelite")
    library.addHandler(caplog.handler)  # the CLI, run in-process before, stops propagation
    try:
        with caplog.at_level(logging.WARNING, logger="acmelite"):
            Transport(insecure=True).close()
            Transport().close()
    finally:
        library.removeHandler(caplog.handler)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "OFF" in warnings[0].getMessage()
