"""Run Caddy's embedded ACME server (smallstep's step-ca inside it) for integration tests.

``CaddyAcmeServer`` starts ``caddy run`` with the ``acme_server`` directive and its
``pki { ca local }`` on a free loopback port, waits until the directory answers, and stops
it again::

    from acmelite.testing.caddy import CaddyAcmeServer

    with CaddyAcmeServer(resolver="127.53.1.2") as caddy:
        caddy.directory_url   # https://127.0.0.1:<port>/acme/local/directory
        caddy.ca_bundle       # Caddy's local root: verifies its HTTPS and what it issues

What the tests must know about how this CA validates (Caddy 2.6.2 in Debian 12, built with
step-ca 0.19.0; checked against their sources):

* validation happens during the challenge POST, and its answer says how it went: ``valid``;
  ``invalid`` (a wrong answer: the authorization and the order stay ``pending``); or
  ``pending`` with an ``error`` when the answer could not be fetched at all, which step-ca
  tries again only when the client POSTs the challenge again;
* HTTP-01 fetches ``http://<identifier>:80/...`` — the port cannot be configured — so a
  test listens on port 80 of a loopback address of its own (binding it needs root);
* names are resolved with the system resolver (``acme_server`` has no ``resolvers`` option
  before Caddy 2.7). With ``resolver="IP"`` Caddy runs under ``unshare --mount`` with a
  private ``/etc/resolv.conf`` (``nameserver IP``; port 53, the only one a stub resolver
  knows) and ``/etc/hosts`` bind-mounted over the machine's for its process alone, which
  needs root too; the machine's own files are never touched;
* certificates last 12 hours; there is no ARI (RFC 9773), no ``meta.profiles`` and no
  key change (``keyChange`` is in the directory but answers HTTP 501).

``caddy`` is looked up in ``$ACMELITE_CADDY_BIN``, then on ``PATH`` (Debian package ``caddy``).
"""

from __future__ import annotations

import atexit
import http.client
import os
import random
import shlex
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO

from acmelite.testing.ports import free_ports

__all__ = [
    "CaddyAcmeServer",
    "CaddyBinary",
    "CaddyError",
    "CaddyStartError",
    "CaddyUnavailable",
    "find_caddy",
    "free_loopback_address",
]

_INSTALL_HINT = "install it with `apt-get install caddy`, or set ACMELITE_CADDY_BIN"
_READY_POLL = 0.1
_STOP_TIMEOUT = 5.0
_START_ATTEMPTS = 3
_PROXY_VARS = {"http_proxy", "https_proxy", "all_proxy", "no_proxy"}
#: Mount the private files over the machine's, in the new mount namespace only, then run
#: Caddy in that namespace (``exec``: the process Popen started is Caddy itself).
_ISOLATE = (
    'mount --bind "$1" /etc/resolv.conf && mount --bind "$2" /etc/hosts'
    ' && exec "$3" run --config "$4" --adapter caddyfile'
)


class CaddyError(RuntimeError):
    """Base for the harness's own failures."""


class CaddyUnavailable(CaddyError):
    """Caddy is not installed, or cannot run here as asked (the message says why)."""


class CaddyStartError(CaddyError):
    """Caddy did not come up; the message ends with the tail of its log."""


@dataclass(frozen=True, slots=True, kw_only=True)
class CaddyBinary:
    """Where ``caddy`` is and which release it is ("2.6.2")."""

    path: Path
    version: str


def find_caddy(caddy_bin: str | os.PathLike[str] | None = None) -> CaddyBinary:
    """Locate ``caddy`` (``caddy_bin``, ``$ACMELITE_CADDY_BIN``, ``PATH``) or raise
    :class:`CaddyUnavailable`; also check that it has the ``acme_server`` module."""
    explicit = caddy_bin or os.environ.get("ACMELITE_CADDY_BIN")
    found = str(explicit) if explicit else shutil.which("caddy")
    if not found or not os.access(found, os.X_OK):
        where = f"at {found}" if explicit else "on PATH"
        raise CaddyUnavailable(f"caddy not found {where}; {_INSTALL_HINT}")
    path = Path(found).resolve()
    try:
        version = subprocess.run(
            [str(path), "version"], capture_output=True, text=True, timeout=10, check=False
        ).stdout.split()
        modules = subprocess.run(
            [str(path), "list-modules"], capture_output=True, text=True, timeout=10, check=False
        ).stdout.split()
    except (OSError, subprocess.SubprocessError) as exc:
        raise CaddyUnavailable(f"{path} does not run: {exc}") from exc
    if "http.handlers.acme_server" not in modules:
        raise CaddyUnavailable(f"{path} has no acme_server module (see `caddy list-modules`)")
    return CaddyBinary(path=path, version=(version[0].lstrip("v") if version else "unknown"))


def free_loopback_address(tcp: tuple[int, ...] = (80,), udp: tuple[int, ...] = ()) -> str:
    """A random ``127.x.y.z`` (not in 127.0.0.0/16) where the given ports are free now.

    A test server of its own on well-known ports (80 for HTTP-01, 53 for DNS) cannot clash
    with another test run on the same machine. Binding ports below 1024 needs root.
    """
    rng = random.SystemRandom()
    for _ in range(50):
        address = f"127.{rng.randint(1, 254)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
        try:
            with ExitStack() as held:
                for kind, ports in ((socket.SOCK_STREAM, tcp), (socket.SOCK_DGRAM, udp)):
                    for port in ports:
                        sock = held.enter_context(socket.socket(socket.AF_INET, kind))
                        sock.bind((address, port))
        except PermissionError as exc:
            raise CaddyUnavailable(
                f"cannot bind {address} ports {tcp + udp} ({exc.strerror}): run as root"
            ) from exc
        except OSError:
            continue
        return address
    raise CaddyError(f"no loopback address with ports {tcp + udp} free after 50 tries")


class CaddyAcmeServer:
    """Caddy with ``acme_server`` on a free port of 127.0.0.1; see the module docstring.

    ``resolver`` (an IPv4 address whose port 53 answers DNS) and ``hosts`` (extra
    ``/etc/hosts`` lines as ``{name: address}``) give Caddy private name resolution; both
    need root and ``unshare``. ``ca_name`` names the local CA (its root's common name is
    ``"<ca_name> - <year> ECC Root"``).
    """

    def __init__(
        self,
        *,
        resolver: str | None = None,
        hosts: Mapping[str, str] | None = None,
        ca_name: str = "acmelite test CA",
        caddy_bin: str | os.PathLike[str] | None = None,
        ready_timeout: float = 30.0,
        keep_files: bool = False,
    ) -> None:
        if '"' in ca_name or "\n" in ca_name:
            raise ValueError("ca_name must not contain quotes or newlines")
        self.resolver = resolver
        self.hosts = dict(hosts or {})
        self.ca_name = ca_name
        self._caddy_bin = caddy_bin
        self._ready_timeout = ready_timeout
        self._keep_files = keep_files
        self._version = "unknown"
        self._dir: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._log_offset = 0
        self._port = 0

    # -- what a test uses ---------------------------------------------------------------

    @property
    def directory_url(self) -> str:
        return f"https://127.0.0.1:{self._port}/acme/local/directory"

    @property
    def ca_bundle(self) -> str:
        """Caddy's local root certificate: it verifies Caddy's HTTPS and the certificates
        its ACME server issues (they chain to it through ``intermediate_pem()``)."""
        return str(self._require_dir() / "data" / "pki" / "authorities" / "local" / "root.crt")

    @property
    def version(self) -> str:
        return self._version

    @property
    def isolated(self) -> bool:
        """Whether Caddy runs with its private resolv.conf and hosts."""
        return self.resolver is not None or bool(self.hosts)

    @property
    def log_path(self) -> Path:
        return self._require_dir() / "caddy.log"

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def root_pem(self) -> str:
        return Path(self.ca_bundle).read_text(encoding="ascii")

    def intermediate_pem(self) -> str:
        return (Path(self.ca_bundle).parent / "intermediate.crt").read_text(encoding="ascii")

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except (OSError, CaddyError):
            return ""
        return "\n".join(text.splitlines()[-lines:])

    # -- life cycle ---------------------------------------------------------------------

    def start(self) -> CaddyAcmeServer:
        """Start and wait until the ACME directory answers over HTTPS."""
        if self._proc is not None:
            return self
        binary = find_caddy(self._caddy_bin)
        self._version = binary.version
        if self.isolated:
            if os.geteuid() != 0:
                raise CaddyUnavailable(
                    "Caddy's private resolv.conf and hosts need root (unshare --mount)"
                )
            if shutil.which("unshare") is None:
                raise CaddyUnavailable("unshare (util-linux) is not installed")
        self._dir = Path(tempfile.mkdtemp(prefix="acmelite-caddy-"))
        atexit.register(self.stop)
        try:
            self._write_resolver_files()
            for attempt in range(1, _START_ATTEMPTS + 1):
                self._launch(binary.path)
                try:
                    self._wait_ready()
                except _PortClashError:
                    self._kill()
                    if attempt == _START_ATTEMPTS:
                        raise CaddyStartError(
                            f"ports kept clashing after {attempt} attempts\n{self.log_tail()}"
                        ) from None
                else:
                    return self
        except BaseException:
            self.stop()
            raise
        raise AssertionError("unreachable")  # pragma: no cover

    def stop(self) -> None:
        """Stop Caddy (terminate, then kill) and remove its files. Idempotent."""
        self._kill(gently=True)
        if self._dir is not None and not self._keep_files:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None
        atexit.unregister(self.stop)

    def __enter__(self) -> CaddyAcmeServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<CaddyAcmeServer {self.directory_url} caddy {self._version}>"

    # -- internals ----------------------------------------------------------------------

    def _require_dir(self) -> Path:
        if self._dir is None:
            raise CaddyError("this CaddyAcmeServer is not started")
        return self._dir

    def _write_resolver_files(self) -> None:
        directory = self._require_dir()
        hosts = ["127.0.0.1 localhost", "::1 localhost ip6-localhost"]
        hosts += [f"{address} {name}" for name, address in self.hosts.items()]
        (directory / "hosts").write_text("\n".join(hosts) + "\n", encoding="ascii")
        resolv = f"nameserver {self.resolver}\n" if self.resolver else ""
        # Without a resolver, the machine's own: the hosts file alone is private then.
        if not resolv:
            resolv = Path("/etc/resolv.conf").read_text(encoding="utf-8", errors="replace")
        (directory / "resolv.conf").write_text(resolv + "options timeout:2 attempts:2\n")

    def _caddyfile(self, https_port: int, http_port: int) -> str:
        data = self._require_dir() / "data"
        return f"""{{
	admin off
	skip_install_trust
	default_bind 127.0.0.1
	http_port {http_port}
	https_port {https_port}
	auto_https disable_redirects
	servers {{
		protocols h1 h2
	}}
	storage file_system {{
		root {data}
	}}
	pki {{
		ca local {{
			name "{self.ca_name}"
		}}
	}}
}}

https://127.0.0.1:{https_port} {{
	tls internal
	acme_server
}}
"""

    def _launch(self, caddy: Path) -> None:
        directory = self._require_dir()
        # http_port is never listened on (no redirects), but Caddy must not take port 80.
        self._port, http_port = free_ports(2, "tcp")
        config = directory / "Caddyfile"
        config.write_text(self._caddyfile(self._port, http_port), encoding="utf-8")
        if self.isolated:
            args = ["unshare", "--mount", "--propagation", "private", "sh", "-c", _ISOLATE]
            args += ["sh", str(directory / "resolv.conf"), str(directory / "hosts")]
            args += [str(caddy), str(config)]
        else:
            args = [str(caddy), "run", "--config", str(config), "--adapter", "caddyfile"]
        env = {k: v for k, v in os.environ.items() if k.lower() not in _PROXY_VARS}
        # The ACME database lives in the app data dir ($XDG_DATA_HOME/caddy/acme_server).
        env.update(
            HOME=str(directory),
            XDG_DATA_HOME=str(directory / "xdg-data"),
            XDG_CONFIG_HOME=str(directory / "xdg-config"),
        )
        if self._log is not None:
            self._log.close()
        self._log = open(directory / "caddy.log", "ab")  # noqa: SIM115 - closed in _kill()
        self._log.write(f"$ {shlex.join(args)}\n".encode())
        self._log.flush()
        self._log_offset = self._log.tell()
        self._proc = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=directory,
        )

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self._ready_timeout
        while True:
            self._check_alive()
            if Path(self.ca_bundle).is_file() and self._answers():
                return
            if time.monotonic() > deadline:
                raise CaddyStartError(
                    f"Caddy's ACME directory not answering after {self._ready_timeout:g} s"
                    f"\n{self.log_tail()}"
                )
            time.sleep(_READY_POLL)

    def _answers(self) -> bool:
        """Whether the directory answers 200 over HTTPS verified with Caddy's root."""
        try:
            context = ssl.create_default_context(cafile=self.ca_bundle)
            conn = http.client.HTTPSConnection("127.0.0.1", self._port, context=context, timeout=2)
            try:
                conn.request("GET", "/acme/local/directory")
                return conn.getresponse().status == 200
            finally:
                conn.close()
        except (OSError, ssl.SSLError, http.client.HTTPException):
            return False

    def _check_alive(self) -> None:
        with open(self.log_path, "rb") as log:
            log.seek(self._log_offset)
            if b"address already in use" in log.read():
                raise _PortClashError
        if self._proc is not None and self._proc.poll() is not None:
            raise CaddyStartError(
                f"caddy exited with status {self._proc.returncode} while starting"
                f"\n{self.log_tail()}"
            )

    def _kill(self, *, gently: bool = False) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            if gently:
                proc.terminate()
                try:
                    proc.wait(timeout=_STOP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            else:
                proc.kill()
                proc.wait()
        if self._log is not None:
            self._log.close()
            self._log = None


class _PortClashError(Exception):
    pass
