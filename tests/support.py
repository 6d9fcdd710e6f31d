"""Helpers shared by the tests: run the CLI, verify chains, serve a webroot."""

from __future__ import annotations

import contextlib
import functools
import http.server
import ipaddress
import os
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509 import verification

from acmelite.cli import main
from acmelite.testing.pebble import Pebble


@dataclass
class CliResult:
    code: int
    out: str
    err: str


def run_cli(argv: Sequence[str], capsys: object) -> CliResult:
    """``acmelite ARGV`` in-process; ``capsys`` is pytest's fixture."""
    try:
        code = main(list(argv))
    except SystemExit as exc:  # argparse usage errors
        code = int(exc.code or 0)
    captured = capsys.readouterr()  # type: ignore[attr-defined]
    return CliResult(code, captured.out, captured.err)


def default_signals() -> None:
    """``preexec_fn`` for a child that a test will signal: SIGINT, SIGTERM and SIGHUP at
    their defaults. A test run started in the background of a non-interactive shell (or
    under nohup) inherits them ignored, and Python keeps an ignored SIGINT ignored."""
    import signal

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)


def run_cli_subprocess(
    argv: Sequence[str],
    *,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 120,
) -> CliResult:
    """``acmelite ARGV`` as a real process (``python -m acmelite``)."""
    proc = subprocess.run(
        [sys.executable, "-m", "acmelite", *argv],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=cwd,
        timeout=timeout,
        check=False,
    )
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


def issue_argv(
    pebble: Pebble,
    tmp: Path,
    *names: str,
    out: str = "out",
    directory_url: str | None = None,
    ca_bundle: str | None = None,
) -> list[str]:
    """``issue`` against ``pebble`` (or, e.g., a proxy in front of it: ``directory_url`` and
    ``ca_bundle``), with the account key and ``out`` under ``tmp``."""
    argv = ["issue"]
    for name in names:
        argv += ["-d", name]
    return [
        *argv,
        "--server",
        directory_url or pebble.directory_url,
        "--ca-bundle",
        ca_bundle or pebble.ca_bundle,
        "--agree-tos",
        "--account-key",
        str(tmp / "account.key"),
        "--http-port",
        str(pebble.http_port),
        "--http-address",
        "127.0.0.1",
        "--out",
        str(tmp / out),
    ]


def without_http(argv: Sequence[str]) -> list[str]:
    """``argv`` less the standalone server's ``--http-port``/``--http-address`` (for runs
    with ``--webroot`` or ``--challenge dns-01``, which refuse them)."""
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg in ("--http-port", "--http-address"):
            skip = True
        else:
            out.append(arg)
    return out


def verify_chain(fullchain_pem: bytes, root_pem: str, name: str | None = None) -> x509.Certificate:
    """Verify a leaf + intermediates against Pebble's root like a TLS client would."""
    certs = x509.load_pem_x509_certificates(fullchain_pem)
    roots = x509.load_pem_x509_certificates(root_pem.encode())
    builder = verification.PolicyBuilder().store(verification.Store(roots))
    if name is None:
        verifier = builder.build_client_verifier()
        verifier.verify(certs[0], certs[1:])
    else:
        subject: verification.Subject
        try:
            subject = verification.IPAddress(ipaddress.ip_address(name))
        except ValueError:
            subject = verification.DNSName(name)
        builder.build_server_verifier(subject).verify(certs[0], certs[1:])
    return certs[0]


def key_matches_cert(key_pem: bytes, cert_pem: bytes) -> bool:
    key = serialization.load_pem_private_key(key_pem, password=None)
    cert = x509.load_pem_x509_certificate(cert_pem)
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    der = serialization.Encoding.DER
    return key.public_key().public_bytes(der, spki) == cert.public_key().public_bytes(der, spki)


def pebble_finds_for_replaces(cert: x509.Certificate) -> bool:
    """Whether Pebble accepts ``replaces`` naming ``cert``. It files a certificate under the
    hex of its serial's minimal bytes and looks ``replaces`` up under the hex of the
    certID's, which RFC 9773 makes the DER content octets: a serial whose top bit needs a
    leading 0x00 (bit length a multiple of 8: about 1 in 256 of Pebble's 63-bit serials) is
    never found, and the renewal orders without ``replaces`` (docs/interop.md)."""
    return cert.serial_number.bit_length() % 8 != 0


def tree_snapshot(path: Path) -> dict[str, bytes]:
    """Every regular file below ``path`` (following the output links), by relative name."""
    out: dict[str, bytes] = {}
    if not path.exists():
        return out
    for p in sorted(path.rglob("*")):
        if p.is_file():
            out[str(p.relative_to(path))] = p.read_bytes()
    return out


@contextlib.contextmanager
def serve_directory(root: Path, port: int, host: str = "127.0.0.1") -> Iterator[None]:
    """A plain static web server for ``root`` on ``host:port`` (for --webroot tests)."""
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer((host, port), handler)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass
