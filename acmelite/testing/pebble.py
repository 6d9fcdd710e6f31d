"""Run Let's Encrypt's Pebble ACME test server for integration tests.

``PebbleServer`` starts a private Pebble (and a ``pebble-challtestsrv`` as its DNS server) on
free loopback ports, waits until it answers, and stops it again::

    from acmelite.testing import PebbleServer

    with PebbleServer(nonce_reject=0) as pebble:
        pebble.directory_url   # https://127.0.0.1:<port>/dir, to give to your ACME client
        pebble.ca_bundle       # PEM file that verifies Pebble's HTTPS (use as verify=...)
        pebble.http_port       # Pebble's validator connects here for http-01: listen on it
        pebble.root_bundle_path()  # Pebble's issuing root(s), to verify issued certificates

Every name resolves to 127.0.0.1 through the challenge test server, so an http-01 responder
listening on ``127.0.0.1:<http_port>`` can prove any name. Pass ``dns_server="host:port"`` to
have Pebble resolve through your own DNS server instead (dns-01 against a real BIND, say).

Binaries are looked up in ``$ACMELITE_PEBBLE_BIN`` (the ``pebble`` path; ``pebble-challtestsrv``
beside it), then the per-user cache filled by ``python -m acmelite.testing install-pebble``, then
``$PATH`` (see ``acmelite.testing.binaries``). ``pebble.challtestsrv`` changes the DNS answers
Pebble gets (see ``acmelite.testing.challtestsrv``).

``ExternalPebble`` describes a Pebble someone else runs (``pebble-compose.yml``);
``ExternalPebble.from_env()`` reads ``ACMELITE_TEST_PEBBLE_URL`` and friends.
"""

from __future__ import annotations

import atexit
import datetime
import functools
import ipaddress
import json
import os
import shlex
import shutil
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, TypeVar

import dns.exception
import dns.message
import dns.query
import dns.rdatatype
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from acmelite.testing.binaries import (
    PebbleBinaries,
    PebbleError,
    PebbleNotFound,
    find_pebble,
    install_hint,
)
from acmelite.testing.challtestsrv import ChallTestSrv
from acmelite.testing.ports import free_port, free_ports

__all__ = [
    "DEFAULT_PROFILES",
    "ExternalPebble",
    "Pebble",
    "PebbleBinaries",
    "PebbleError",
    "PebbleNotFound",
    "PebbleServer",
    "PebbleStartError",
    "find_pebble",
]

DEFAULT_PROFILES: Mapping[str, Mapping[str, object]] = {
    "default": {"description": "90-day certificates", "validityPeriod": 7776000},
    "shortlived": {"description": "6-day certificates", "validityPeriod": 518400},
}
"""The ``profiles`` Pebble is configured with unless told otherwise (Pebble 2.7 and later).

Pebble 2.10 gives an order that names no profile a randomly chosen one, so without ``profile``
in newOrder a certificate lasts 90 or 6 days. Pass ``profiles`` with a single entry for a fixed
validity period.
"""

_READY_POLL = 0.05
_STOP_TIMEOUT = 5.0
_PROXY_VARS = {"http_proxy", "https_proxy", "all_proxy", "no_proxy"}

_T = TypeVar("_T", bound="Pebble")
_S = TypeVar("_S", bound="PebbleServer")


class PebbleStartError(PebbleError):
    """Pebble or pebble-challtestsrv did not come up; the message ends with the log tail."""


@functools.lru_cache(maxsize=8)
def _challtestsrv_flags(challtestsrv: Path) -> frozenset[str]:
    """The flags this build accepts: the DNS flag was ``-dns01`` before Pebble 2.7."""
    usage = subprocess.run(
        [str(challtestsrv), "-h"], capture_output=True, text=True, timeout=10, check=False
    )
    words = (usage.stdout + usage.stderr).split()
    return frozenset(w.lstrip("-") for w in words if w.startswith("-") and len(w) > 1)


def _write_tls_files(directory: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a localhost/127.0.0.1/::1 certificate it signed, for Pebble's HTTPS.

    Returns the CA, certificate and key PEM paths.
    """
    now = datetime.datetime.now(datetime.timezone.utc)
    start, end = now - datetime.timedelta(hours=1), now + datetime.timedelta(days=30)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "acmelite test CA for Pebble")])
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = [
        x509.DNSName("localhost"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.IPAddress(ipaddress.ip_address("::1")),
    ]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    paths = (directory / "ca.pem", directory / "cert.pem", directory / "key.pem")
    paths[0].write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    paths[2].chmod(0o600)
    return paths


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


class Pebble:
    """What a test needs from a running Pebble, local (``PebbleServer``) or external.

    ``directory_url``, ``ca_bundle`` (PEM path for ``verify=``), ``http_port``/``tls_port``
    (where Pebble's validator connects), ``management_url``, ``version``, and ``challtestsrv``
    (the DNS answers Pebble gets, when a pebble-challtestsrv is its DNS server).
    """

    def __init__(
        self,
        *,
        directory_url: str,
        ca_bundle: str,
        http_port: int,
        tls_port: int,
        management_url: str | None,
        version: str,
        challtestsrv_url: str | None = None,
    ) -> None:
        self._directory_url = directory_url
        self._ca_bundle = ca_bundle
        self._http_port = http_port
        self._tls_port = tls_port
        self._management_url = management_url
        self._version = version
        self._challtestsrv_url = challtestsrv_url
        self._challtestsrv: ChallTestSrv | None = None
        self._default_ipv4 = "127.0.0.1"
        self._roots_file: Path | None = None

    @property
    def directory_url(self) -> str:
        """The ACME directory URL (RFC 8555 §7.1.1)."""
        return self._directory_url

    @property
    def ca_bundle(self) -> str:
        """Path of a PEM file that verifies Pebble's own HTTPS certificate."""
        return self._ca_bundle

    @property
    def http_port(self) -> int:
        """The port Pebble's validator connects to for http-01 (RFC 8555 §8.3)."""
        return self._http_port

    @property
    def tls_port(self) -> int:
        """The port Pebble's validator connects to for tls-alpn-01 (RFC 8737)."""
        return self._tls_port

    @property
    def management_url(self) -> str | None:
        """Pebble's management interface (roots, cert status), if known."""
        return self._management_url

    @property
    def version(self) -> str:
        """The Pebble release, e.g. "2.10.0+ds1-2", or "unknown"."""
        return self._version

    @property
    def challtestsrv_url(self) -> str | None:
        """pebble-challtestsrv's management URL (http), or None when it is not Pebble's DNS."""
        return self._challtestsrv_url

    @property
    def challtestsrv(self) -> ChallTestSrv:
        """Change the DNS answers Pebble gets: add records, make a name's validation fail.

        Raises ``PebbleError`` when this Pebble resolves through another DNS server.
        """
        if not self._challtestsrv_url:
            raise PebbleError(
                "this Pebble has no pebble-challtestsrv as its DNS server (a PebbleServer "
                "started with dns_server=, or an external Pebble without "
                "ACMELITE_TEST_CHALLTESTSRV_URL); change the records in that DNS server instead"
            )
        if self._challtestsrv is None or self._challtestsrv.url != self._challtestsrv_url:
            self._challtestsrv = ChallTestSrv(
                self._challtestsrv_url, default_ipv4=self._default_ipv4
            )
        return self._challtestsrv

    def roots(self, index: int = 0) -> str:
        """PEM of root number ``index`` (0, or 1.. with ``alternate_roots``)."""
        return self._management_get(f"/roots/{index}").text

    def intermediates(self, index: int = 0) -> str:
        """PEM of the intermediate under root number ``index``."""
        return self._management_get(f"/intermediates/{index}").text

    def root_bundle_path(self, count: int = 1) -> str:
        """Write roots ``0 .. count-1`` to one PEM file in a temp dir and return its path.

        That file verifies certificates this Pebble issued; it changes with every Pebble run.
        """
        pem = "".join(self.roots(i) for i in range(count))
        if self._roots_file is None:
            scratch = tempfile.mkdtemp(prefix="acmelite-pebble-roots-")
            self._roots_file = Path(scratch, "pebble-roots.pem")
        self._roots_file.write_text(pem, encoding="ascii")
        return str(self._roots_file)

    def cert_status(self, serial: int) -> dict[str, object]:
        """Pebble's record of the certificate with this serial: Status, Reason, Certificate ..."""
        data = self._management_get(f"/cert-status-by-serial/{serial:x}").json()
        if not isinstance(data, dict):
            raise PebbleError(f"cert-status-by-serial/{serial:x} returned {type(data).__name__}")
        return data

    def start(self: _T) -> _T:
        """Make the server ready; nothing to do for a Pebble someone else runs."""
        return self

    def stop(self) -> None:
        """Release what this object made (the file behind ``root_bundle_path``)."""
        if self._roots_file is not None:
            shutil.rmtree(self._roots_file.parent, ignore_errors=True)
            self._roots_file = None

    def __enter__(self: _T) -> _T:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._directory_url} pebble {self._version}>"

    def _management_get(self, path: str) -> requests.Response:
        if not self._management_url:
            raise PebbleError(
                "this Pebble's management URL is unknown; for an external Pebble set "
                "ACMELITE_TEST_PEBBLE_MANAGEMENT_URL (e.g. https://localhost:15000)"
            )
        url = self._management_url + path
        try:
            response = _get(url, self._ca_bundle, timeout=10)
        except requests.RequestException as exc:
            raise PebbleError(f"GET {url} failed: {exc}") from exc
        if response.status_code != 200:
            raise PebbleError(f"GET {url} answered {response.status_code}: {response.text[:200]}")
        return response


def _get(url: str, ca_bundle: str, *, timeout: float) -> requests.Response:
    """GET with our CA only: no proxies, and REQUESTS_CA_BUNDLE cannot override ``verify``."""
    with requests.Session() as session:
        session.trust_env = False
        return session.get(url, verify=ca_bundle, timeout=timeout)


class PebbleServer(Pebble):
    """A Pebble (plus pebble-challtestsrv for DNS) started on free loopback ports.

    Environment knobs default to deterministic, fast tests: ``va_nosleep`` (no random
    validation delay), ``authz_reuse=0``; ``nonce_reject=None`` keeps Pebble's own 5% badNonce
    rate, as the normal test runs should. ``nonce_reject``, ``va_sleeptime``,
    ``alternate_roots``, ``chain_length``, ``authz_reuse`` map to Pebble's ``PEBBLE_*``
    variables; ``env`` adds any other. Config file knobs: ``eab_required``, ``eab_mac_keys``
    (key id -> base64url HMAC key), ``retry_after_authz``/``retry_after_order`` (seconds;
    Pebble sends them as an HTTP-date while a resource is processing), ``profiles``
    (see ``DEFAULT_PROFILES``), ``key_algorithm`` ("ecdsa" or "rsa": the CA's own keys),
    ``domain_blocklist``.
    """

    def __init__(
        self,
        *,
        nonce_reject: int | None = None,
        va_nosleep: bool = True,
        va_sleeptime: int | None = None,
        always_valid: bool = False,
        alternate_roots: int = 0,
        chain_length: int | None = None,
        authz_reuse: int = 0,
        eab_required: bool = False,
        eab_mac_keys: Mapping[str, str] | None = None,
        retry_after_authz: int = 1,
        retry_after_order: int = 1,
        profiles: Mapping[str, Mapping[str, object]] | None = None,
        key_algorithm: str | None = None,
        domain_blocklist: Sequence[str] = (),
        strict: bool = False,
        dns_server: str | None = None,
        default_ipv4: str = "127.0.0.1",
        env: Mapping[str, str] | None = None,
        pebble_bin: str | os.PathLike[str] | None = None,
        ready_timeout: float = 20.0,
        keep_files: bool = False,
    ) -> None:
        if retry_after_authz < 0 or retry_after_order < 0:
            raise ValueError("retry_after_authz and retry_after_order are seconds, >= 0")
        super().__init__(
            directory_url="",
            ca_bundle="",
            http_port=0,
            tls_port=0,
            management_url=None,
            version="unknown",
        )
        self._pebble_env = _pebble_env(
            nonce_reject=nonce_reject,
            va_nosleep=va_nosleep,
            va_sleeptime=va_sleeptime,
            always_valid=always_valid,
            alternate_roots=alternate_roots,
            chain_length=chain_length,
            authz_reuse=authz_reuse,
            extra=env or {},
        )
        self._config: dict[str, object] = {
            "ocspResponderURL": "",
            "externalAccountBindingRequired": eab_required,
            "externalAccountMACKeys": dict(eab_mac_keys or {}),
            "domainBlocklist": list(domain_blocklist),
            "retryAfter": {"authz": retry_after_authz, "order": retry_after_order},
            "profiles": {name: dict(p) for name, p in (profiles or DEFAULT_PROFILES).items()},
        }
        if key_algorithm is not None:
            self._config["keyAlgorithm"] = key_algorithm
        self._strict = strict
        self._external_dns = dns_server
        self._dns_server = dns_server or ""
        self._default_ipv4 = default_ipv4
        self._pebble_bin = pebble_bin
        self._ready_timeout = ready_timeout
        self._keep_files = keep_files
        self._dir: Path | None = None
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._logs: dict[str, IO[bytes]] = {}
        self._challtestsrv_mgmt = ""
        self._log_offsets: dict[str, int] = {}

    @property
    def dns_server(self) -> str:
        """``host:port`` of the DNS server Pebble resolves names with."""
        return self._dns_server

    @property
    def log_path(self) -> Path:
        """Pebble's stdout and stderr; pebble-challtestsrv logs to ``challtestsrv.log`` beside."""
        return self._require_dir() / "pebble.log"

    @property
    def pids(self) -> dict[str, int]:
        """Process ids of the running children, by name ("pebble", "challtestsrv")."""
        return {name: proc.pid for name, proc in self._procs.items()}

    @property
    def running(self) -> bool:
        """Whether every child process is still alive."""
        return bool(self._procs) and all(p.poll() is None for p in self._procs.values())

    def start(self: _S) -> _S:
        """Start and wait until Pebble answers; raise ``PebbleNotFound``/``PebbleStartError``."""
        if self._procs:
            return self
        binaries = find_pebble(self._pebble_bin)
        challtestsrv = None if self._external_dns else binaries.challtestsrv
        if self._external_dns is None and challtestsrv is None:
            raise PebbleNotFound(
                f"pebble-challtestsrv not found beside {binaries.pebble} or on PATH; "
                + install_hint()
            )
        self._version = binaries.version
        self._dir = Path(tempfile.mkdtemp(prefix="acmelite-pebble-"))
        atexit.register(self.stop)
        try:
            self._ca_bundle, cert, key = (str(p) for p in _write_tls_files(self._dir))
            self._config.update(certificate=cert, privateKey=key)
            self._launch(binaries.pebble, challtestsrv)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop the children (terminate, then kill) and remove the temp dir. Idempotent."""
        for proc in self._procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self._procs.values():
            try:
                proc.wait(timeout=_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._procs.clear()
        for log in self._logs.values():
            log.close()
        self._logs.clear()
        if self._dir is not None and not self._keep_files:
            shutil.rmtree(self._dir, ignore_errors=True)
        atexit.unregister(self.stop)
        super().stop()

    def log_tail(self, lines: int = 30) -> str:
        """The last ``lines`` lines of each child's log, for failure messages."""
        parts = []
        for name in ("challtestsrv", "pebble"):
            path = self._require_dir() / f"{name}.log"
            if path.exists():
                text = path.read_text(encoding="utf-8", errors="replace").splitlines()
                parts.append(
                    f"--- {name}.log (last {lines} lines) ---\n" + "\n".join(text[-lines:])
                )
        return "\n".join(parts)

    def _require_dir(self) -> Path:
        if self._dir is None:
            raise PebbleError("this PebbleServer was never started")
        return self._dir

    # Theory of operation: ports are picked by binding to port 0 and closing, so another
    # process can grab one before Pebble binds it. Pebble then exits with "address already in
    # use" (pebble-challtestsrv only logs it), and we start over with fresh ports.
    def _launch(self, pebble: Path, challtestsrv: Path | None) -> None:
        attempts = 3
        for attempt in range(1, attempts + 1):
            self._pick_ports()
            if challtestsrv is not None:
                self._spawn_challtestsrv(challtestsrv)
            self._spawn_pebble(pebble)
            try:
                self._wait_ready()
            except _PortClashError:
                if attempt == attempts:
                    raise PebbleStartError(
                        f"ports kept clashing after {attempts} attempts\n{self.log_tail()}"
                    ) from None
                self._stop_children()
            else:
                return

    def _pick_ports(self) -> None:
        listen, management, http, tls, challtest_mgmt = free_ports(5, "tcp")
        self._port = listen
        self._management_port = management
        self._http_port = http
        self._tls_port = tls
        self._directory_url = f"https://127.0.0.1:{listen}/dir"
        self._management_url = f"https://127.0.0.1:{management}"
        if self._external_dns is None:
            self._dns_server = f"127.0.0.1:{free_port('tcp+udp')}"
            self._challtestsrv_mgmt = f"127.0.0.1:{challtest_mgmt}"
            self._challtestsrv_url = f"http://{self._challtestsrv_mgmt}"

    def _spawn_challtestsrv(self, challtestsrv: Path) -> None:
        flags = _challtestsrv_flags(challtestsrv)
        dns_flag = "dnsserver" if "dnsserver" in flags else "dns01"
        args = [str(challtestsrv), f"-{dns_flag}", self._dns_server]
        args += ["-management", self._challtestsrv_mgmt]
        # Every listener is explicit: the defaults take fixed ports (5001-5003, 8443, ...).
        for listener in ("http01", "https01", "tlsalpn01", "doh"):
            if listener in flags:
                args += [f"-{listener}", ""]
        args += ["-defaultIPv4", self._default_ipv4, "-defaultIPv6", ""]
        self._spawn("challtestsrv", args, env=_child_env({}))

    def _spawn_pebble(self, pebble: Path) -> None:
        config = dict(self._config)
        config.update(
            listenAddress=f"127.0.0.1:{self._port}",
            managementListenAddress=f"127.0.0.1:{self._management_port}",
            httpPort=self._http_port,
            tlsPort=self._tls_port,
        )
        config_path = self._require_dir() / "pebble-config.json"
        config_path.write_text(json.dumps({"pebble": config}, indent=2), encoding="utf-8")
        args = [str(pebble), "-config", str(config_path), "-dnsserver", self._dns_server]
        args.append(f"-strict={str(self._strict).lower()}")
        self._spawn("pebble", args, env=self._pebble_env)

    def _spawn(self, name: str, args: list[str], env: dict[str, str]) -> None:
        log = open(self._require_dir() / f"{name}.log", "ab")  # noqa: SIM115 - closed in stop()
        self._logs[name] = log
        log.write(f"$ {shlex.join(args)}\n".encode())
        log.flush()
        self._log_offsets[name] = log.tell()
        self._procs[name] = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=self._require_dir(),
        )

    def _stop_children(self) -> None:
        for proc in self._procs.values():
            proc.kill()
            proc.wait()
        self._procs.clear()
        for log in self._logs.values():
            log.write(b"--- restarting with other ports ---\n")
            log.close()
        self._logs.clear()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self._ready_timeout
        pending = (
            ["dns", "acme", "management"] if self._external_dns is None else ["acme", "management"]
        )
        while pending:
            self._check_alive()
            check = pending[0]
            if self._probe(check):
                pending.pop(0)
                continue
            if time.monotonic() > deadline:
                raise PebbleStartError(
                    f"Pebble not ready after {self._ready_timeout:g} s ({check} not answering)"
                    f"\n{self.log_tail()}"
                )
            time.sleep(_READY_POLL)

    def _check_alive(self) -> None:
        for name, proc in self._procs.items():
            with open(self._require_dir() / f"{name}.log", "rb") as log:
                log.seek(self._log_offsets[name])
                if b"address already in use" in log.read():
                    raise _PortClashError
            if proc.poll() is not None:
                raise PebbleStartError(
                    f"{name} exited with status {proc.returncode} while starting\n{self.log_tail()}"
                )

    def _probe(self, check: str) -> bool:
        if check == "dns":
            host, _, port = self._dns_server.rpartition(":")
            query = dns.message.make_query("ready.acmelite.test.", dns.rdatatype.A)
            try:
                dns.query.udp(query, host, port=int(port), timeout=0.5)
            except (dns.exception.DNSException, OSError):
                return False
            return True
        url = self._directory_url if check == "acme" else f"{self._management_url}/roots/0"
        try:
            return _get(url, self._ca_bundle, timeout=2).status_code == 200
        except requests.RequestException:
            return False


class _PortClashError(Exception):
    pass


def _child_env(extra: Mapping[str, str]) -> dict[str, str]:
    """Our environment without PEBBLE_* knobs and proxies (the validator must dial directly)."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("PEBBLE_") and key.lower() not in _PROXY_VARS
    }
    env.update(extra)
    return env


def _pebble_env(
    *,
    nonce_reject: int | None,
    va_nosleep: bool,
    va_sleeptime: int | None,
    always_valid: bool,
    alternate_roots: int,
    chain_length: int | None,
    authz_reuse: int,
    extra: Mapping[str, str],
) -> dict[str, str]:
    knobs: dict[str, str] = {"PEBBLE_AUTHZREUSE": str(authz_reuse)}
    if nonce_reject is not None:
        if not 0 <= nonce_reject <= 100:
            raise ValueError(f"nonce_reject is a percentage, not {nonce_reject}")
        knobs["PEBBLE_WFE_NONCEREJECT"] = str(nonce_reject)
    if va_nosleep:
        knobs["PEBBLE_VA_NOSLEEP"] = "1"
    if va_sleeptime is not None:
        knobs["PEBBLE_VA_SLEEPTIME"] = str(va_sleeptime)
    if always_valid:
        knobs["PEBBLE_VA_ALWAYS_VALID"] = "1"
    if alternate_roots:
        knobs["PEBBLE_ALTERNATE_ROOTS"] = str(alternate_roots)
    if chain_length is not None:
        knobs["PEBBLE_CHAIN_LENGTH"] = str(chain_length)
    knobs.update(extra)
    return _child_env(knobs)


class ExternalPebble(Pebble):
    """A Pebble run by someone else, e.g. with ``pebble-compose.yml``; start/stop do nothing."""

    def __init__(
        self,
        directory_url: str,
        *,
        ca_bundle: str,
        http_port: int = 5002,
        tls_port: int = 5001,
        management_url: str | None = None,
        challtestsrv_url: str | None = None,
        version: str = "external",
    ) -> None:
        super().__init__(
            directory_url=directory_url,
            ca_bundle=ca_bundle,
            http_port=http_port,
            tls_port=tls_port,
            management_url=management_url,
            version=version,
            challtestsrv_url=challtestsrv_url,
        )

    def start(self: _T) -> _T:
        """Check that the directory answers; nothing is started (raise ``PebbleStartError``)."""
        url = self.directory_url
        try:
            response = _get(url, self.ca_bundle, timeout=10)
        except requests.RequestException as exc:
            raise PebbleStartError(
                f"the external Pebble at {url} does not answer ({exc}); is it running? "
                "(docker compose -f pebble-compose.yml up -d)"
            ) from exc
        if response.status_code != 200:
            raise PebbleStartError(f"the external Pebble at {url} answered {response.status_code}")
        return self

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ExternalPebble | None:
        """Build from ``ACMELITE_TEST_PEBBLE_URL``, or None when that is unset.

        ``ACMELITE_TEST_PEBBLE_CA`` (required: PEM verifying Pebble's HTTPS, for the Docker image
        its test/certs/pebble.minica.pem), ``ACMELITE_TEST_PEBBLE_HTTP_PORT`` (5002),
        ``ACMELITE_TEST_PEBBLE_TLS_PORT`` (5001), ``ACMELITE_TEST_PEBBLE_MANAGEMENT_URL``,
        ``ACMELITE_TEST_CHALLTESTSRV_URL`` (its DNS server's management API, if any).
        """
        env = os.environ if environ is None else environ
        url = env.get("ACMELITE_TEST_PEBBLE_URL", "")
        if not url:
            return None
        ca_bundle = env.get("ACMELITE_TEST_PEBBLE_CA", "")
        if not ca_bundle or not Path(ca_bundle).is_file():
            raise PebbleError(
                f"ACMELITE_TEST_PEBBLE_URL is set but ACMELITE_TEST_PEBBLE_CA ({ca_bundle!r}) is "
                "not a PEM file; for the Docker image: "
                "docker compose -f pebble-compose.yml cp pebble:/test/certs/pebble.minica.pem ."
            )
        try:
            http_port = int(env.get("ACMELITE_TEST_PEBBLE_HTTP_PORT", "5002"))
            tls_port = int(env.get("ACMELITE_TEST_PEBBLE_TLS_PORT", "5001"))
        except ValueError as exc:
            raise PebbleError(f"ACMELITE_TEST_PEBBLE_*_PORT must be a number: {exc}") from exc
        return cls(
            url,
            ca_bundle=ca_bundle,
            http_port=http_port,
            tls_port=tls_port,
            management_url=env.get("ACMELITE_TEST_PEBBLE_MANAGEMENT_URL") or None,
            challtestsrv_url=env.get("ACMELITE_TEST_CHALLTESTSRV_URL") or None,
        )
