"""How bench/run.py runs each ACME client: the command, its environment and where the
certificate lands.

Every client starts from nothing (a fresh account, a fresh key, an empty state directory),
talks to the CA only through the counting proxy, and answers HTTP-01 on Pebble's
``http_port``: acmelite, certbot and lego with their own standalone servers, acme-tiny
through a webroot that the bench serves itself (acme-tiny has no server of its own).
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("ACMELITE_CACHE_DIR", PROJECT / ".cache"))
VENV = CACHE / "bench-venv"
LEGO = CACHE / "lego" / "usr" / "bin" / "lego"

#: Variables that would send a client elsewhere or make it trust another CA.
_SCRUB = (
    # An installed package has its bytecode; without this every run would compile acmelite.
    "PYTHONDONTWRITEBYTECODE",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "LEGO_CA_CERTIFICATES",
    "ACMELITE_SERVER",
    "ACMELITE_CA_BUNDLE",
    "ACMELITE_ACCOUNT_KEY",
)


@dataclass(frozen=True, slots=True)
class Target:
    """Where the clients go: the proxy's directory URL and CA, and the HTTP-01 port."""

    directory_url: str
    ca_bundle: str
    http_port: int


@dataclass
class Invocation:
    """One process to run; ``cert`` is the leaf (or chain) PEM it must leave behind."""

    argv: list[str]
    env: dict[str, str]
    cert: Path
    #: Context manager factories entered around the run (the acme-tiny webroot server).
    around: Sequence[Callable[[], contextlib.AbstractContextManager[object]]] = field(
        default_factory=list
    )


def base_env() -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("PEBBLE_")
        and k not in _SCRUB
        and k.lower() not in ("http_proxy", "https_proxy", "all_proxy", "no_proxy")
    }
    env["NO_PROXY"] = env["no_proxy"] = "*"
    return env


def acmelite_cli_argv() -> list[str]:
    """The installed ``acmelite`` console script beside this interpreter, else ``-m``."""
    script = Path(sys.executable).parent / "acmelite"
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-m", "acmelite"]


def acmelite_cli(
    target: Target, work: Path, names: Sequence[str], *, account_key: Path | None = None
) -> Invocation:
    argv = [*acmelite_cli_argv(), "issue", "-q"]
    for name in names:
        argv += ["-d", name]
    argv += [
        "--server",
        target.directory_url,
        "--ca-bundle",
        target.ca_bundle,
        "--agree-tos",
        "--account-key",
        str(account_key or work / "account.key"),
        "--http-port",
        str(target.http_port),
        "--http-address",
        "127.0.0.1",
        "--out",
        str(work / "out"),
    ]
    return Invocation(argv, base_env(), work / "out" / "cert.pem")


def acmelite_lib(
    target: Target, work: Path, names: Sequence[str], *, certs: int = 0, workers: int = 8
) -> Invocation:
    argv = [
        sys.executable,
        str(PROJECT / "bench" / "lib_driver.py"),
        "--directory",
        target.directory_url,
        "--ca-bundle",
        target.ca_bundle,
        "--http-port",
        str(target.http_port),
        "--out",
        str(work / "out"),
    ]
    for name in names:
        argv += ["-d", name]
    if certs:
        argv += ["--certs", str(certs), "--workers", str(workers)]
        cert = work / "out" / f"cert-{certs - 1}" / "cert.pem"
    else:
        cert = work / "out" / "cert.pem"
    return Invocation(argv, base_env(), cert)


def certbot(target: Target, work: Path, names: Sequence[str]) -> Invocation:
    argv = [
        str(VENV / "bin" / "certbot"),
        "certonly",
        "--standalone",
        "--non-interactive",
        "--quiet",
        "--agree-tos",
        "--register-unsafely-without-email",
        "--server",
        target.directory_url,
        "--http-01-port",
        str(target.http_port),
        "--http-01-address",
        "127.0.0.1",
        "--config-dir",
        str(work / "config"),
        "--work-dir",
        str(work / "work"),
        "--logs-dir",
        str(work / "logs"),
    ]
    for name in names:
        argv += ["-d", name]
    env = base_env()
    env["REQUESTS_CA_BUNDLE"] = target.ca_bundle
    return Invocation(argv, env, work / "config" / "live" / names[0] / "cert.pem")


def lego(target: Target, work: Path, names: Sequence[str]) -> Invocation:
    argv = [
        str(LEGO),
        "--server",
        target.directory_url,
        "--accept-tos",
        "--email",
        "bench@example.test",
        "--path",
        str(work / "lego"),
        "--http",
        "--http.port",
        f"127.0.0.1:{target.http_port}",
    ]
    for name in names:
        argv += ["--domains", name]
    argv.append("run")
    env = base_env()
    env["LEGO_CA_CERTIFICATES"] = target.ca_bundle
    return Invocation(argv, env, work / "lego" / "certificates" / f"{names[0]}.crt")


def acme_tiny(target: Target, work: Path, names: Sequence[str]) -> Invocation:
    """acme-tiny wants an RSA account key and a CSR made beforehand, and a web server.

    The keys and the CSR are made here, outside the measured run (in acme-tiny's favour).
    """
    webroot = work / "webroot"
    challenges = webroot / ".well-known" / "acme-challenge"
    challenges.mkdir(parents=True)
    _openssl(["genrsa", "-out", str(work / "account.key"), "2048"])
    _openssl(
        ["ecparam", "-genkey", "-name", "prime256v1", "-noout", "-out", str(work / "domain.key")]
    )
    san = ",".join(f"DNS:{n}" for n in names)
    _openssl(
        [
            "req",
            "-new",
            "-sha256",
            "-key",
            str(work / "domain.key"),
            "-subj",
            "/",
            "-addext",
            f"subjectAltName={san}",
            "-out",
            str(work / "domain.csr"),
        ]
    )
    chain = work / "chain.pem"
    # acme-tiny prints the chain on stdout; sh -c keeps it a single measured process tree.
    argv = [
        "/bin/sh",
        "-c",
        'exec "$0" "$@" > ' + _quote(str(chain)),
        str(VENV / "bin" / "acme-tiny"),
        "--quiet",
        "--disable-check",
        "--account-key",
        str(work / "account.key"),
        "--csr",
        str(work / "domain.csr"),
        "--acme-dir",
        str(challenges),
        "--directory-url",
        target.directory_url,
    ]
    env = base_env()
    # acme-tiny uses urllib, which trusts SSL_CERT_FILE.
    env["SSL_CERT_FILE"] = env["REQUESTS_CA_BUNDLE"] = target.ca_bundle
    around = [functools.partial(serve_directory, webroot, target.http_port)]
    return Invocation(argv, env, chain, around)


def _quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def _openssl(args: list[str]) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


@contextlib.contextmanager
def serve_directory(root: Path, port: int) -> Iterator[object]:
    """A static web server for ``root`` on 127.0.0.1:``port`` while the block runs."""
    handler = functools.partial(_Quiet, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def versions() -> dict[str, str]:
    """The version of every peer that is installed, by client name."""
    out: dict[str, str] = {}
    python = VENV / "bin" / "python"
    if python.is_file():
        for dist in ("certbot", "acme-tiny"):
            proc = subprocess.run(
                [str(python), "-c", f"import importlib.metadata as m; print(m.version({dist!r}))"],
                capture_output=True,
                text=True,
                check=False,
            )
            if proc.returncode == 0:
                out[dist] = proc.stdout.strip()
    version_file = LEGO.parent.parent.parent / "VERSION"
    if version_file.is_file():
        out["lego"] = version_file.read_text().strip() + " (Debian)"
    return out


def missing() -> list[str]:
    """Peers that bench/install-peers has not installed yet."""
    need = {
        "certbot": VENV / "bin" / "certbot",
        "acme-tiny": VENV / "bin" / "acme-tiny",
        "lego": LEGO,
    }
    gone = [name for name, path in need.items() if not path.is_file()]
    if shutil.which("openssl") is None:
        gone.append("openssl (for acme-tiny's keys)")
    return gone
