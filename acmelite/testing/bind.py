"""A real BIND 9 for tests: ``with BindServer() as bind: ...``.

``named -g`` runs in the foreground on a free loopback port (UDP and TCP) with everything it
writes — ``named.conf``, the zone files, the journals, the pid file and its log — in a temporary
directory. Every zone is primary, allows dynamic updates of TXT records signed with an
hmac-sha256 TSIG key (a fresh random secret per server) and zone transfers to loopback, and has
an SOA, ``NS ns.<zone>.``, ``ns A 127.0.0.1``, an apex ``A 127.0.0.1`` and ``* A 127.0.0.1`` so
the HTTP-01 names a test CA asks for resolve to this machine.

``address`` puts ``ns``, the apex and ``*`` at another address (``127.x.y.z``, for a CA that
must reach port 80 there). BIND listens only on addresses an interface has, so to serve a
stub resolver (``/etc/resolv.conf`` knows no port) on ``127.x.y.z:53`` put a
:class:`acmelite.testing.relay.DnsRelay` in front of it.

With ``recursion=True`` it also answers like the resolver a CA uses: a query that asks for
recursion follows a CNAME from one of its zones into another (an authoritative-only BIND does
not), which Pebble needs to validate a CNAME-delegated ``_acme-challenge``. A local, empty
root zone makes every other name NXDOMAIN at once, so nothing ever leaves the machine.

A second key (``limited_key_name``) may update only the zones in ``limited_key_zones``; with it
a test can provoke "the key may not update this zone". ``records`` adds zone-file lines, e.g. a
CNAME that delegates ``_acme-challenge`` to another zone::

    BindServer(records=["_acme-challenge.delegated.example.test. CNAME "
                        "_acme-challenge.delegated.acme-dns.test."])

``named`` is found on ``PATH`` or in ``/usr/sbin`` (Debian package ``bind9``); without it
:meth:`BindServer.start` raises :class:`BindNotFound`.
"""

from __future__ import annotations

import base64
import os
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.tsig
import dns.update
import dns.xfr
import dns.zone

from .dnsserver import query_txt
from .ports import free_port

__all__ = ["DEFAULT_ZONES", "BindNotFound", "BindServer", "find_named"]

DEFAULT_ZONES = ("example.test", "acme-dns.test", "svc.clusterset.local")
HOST = "127.0.0.1"
#: Who may transfer zones and ask for recursion: this machine (any loopback source).
_LOOPBACK = "127.0.0.0/8"
_Change = Callable[[dns.update.UpdateMessage, dns.name.Name], None]
_START_ATTEMPTS = 3


class BindNotFound(RuntimeError):
    """``named`` is not installed (Debian: ``apt-get install bind9``)."""


def find_named() -> str:
    """The path of ``named``: from ``PATH``, else ``/usr/sbin``."""
    found = shutil.which("named") or shutil.which("named", path="/usr/sbin:/usr/local/sbin")
    if found is None:
        raise BindNotFound(
            "BIND 9's `named` was found neither on PATH nor in /usr/sbin; "
            "install it with `apt-get install bind9 bind9-utils`"
        )
    return found


def _fqdn(name: str) -> str:
    return name.rstrip(".") + "."


class BindServer:
    """A BIND 9 ``named`` on a free loopback port, authoritative for ``zones``.

    Use as a context manager, or call :meth:`start` and :meth:`stop`.
    """

    def __init__(
        self,
        zones: Sequence[str] = DEFAULT_ZONES,
        *,
        records: Sequence[str] = (),
        limited_key_zones: Sequence[str] = (),
        key_name: str = "acmelite-test",
        limited_key_name: str = "acmelite-limited",
        recursion: bool = False,
        address: str = HOST,
        named: str | None = None,
        startup_timeout: float = 15.0,
    ) -> None:
        if not zones:
            raise ValueError("BindServer needs at least one zone")
        self.zones = tuple(name.rstrip(".").lower() for name in zones)
        unknown = [z for z in limited_key_zones if z.rstrip(".").lower() not in self.zones]
        if unknown:
            raise ValueError(f"limited_key_zones not among the zones: {', '.join(unknown)}")
        self.records = tuple(records)
        self.recursion = recursion
        self.limited_key_zones = tuple(z.rstrip(".").lower() for z in limited_key_zones)
        self.key_name = key_name
        self.key_secret = base64.b64encode(secrets.token_bytes(32)).decode("ascii")
        self.key_algorithm = "hmac-sha256"
        self.limited_key_name = limited_key_name
        self.limited_key_secret = base64.b64encode(secrets.token_bytes(32)).decode("ascii")
        self.host = HOST
        self.port = 0
        #: The address of ``ns``, the apex and ``*`` in every zone.
        self.a_address = address
        self.directory: Path | None = None
        self._named = named
        self._startup_timeout = startup_timeout
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        """``127.0.0.1:PORT``, the form ``--dns-server`` and ``--dns-resolver`` take."""
        return f"{self.host}:{self.port}"

    def __repr__(self) -> str:
        state = "running" if self._process is not None else "stopped"
        return f"<BindServer {self.address} zones={list(self.zones)} {state}>"

    # -- lifecycle --------------------------------------------------------------------------

    def __enter__(self) -> BindServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> BindServer:
        """Write the configuration, start ``named``, wait until it answers; return self."""
        if self._process is not None:
            raise RuntimeError("BindServer is already running")
        named = self._named or find_named()
        if not os.access(named, os.X_OK):
            raise BindNotFound(f"{named} is not an executable named")
        self.directory = Path(tempfile.mkdtemp(prefix="acmelite-bind-"))
        last_log = ""
        try:
            for _ in range(_START_ATTEMPTS):
                self.port = free_port("tcp+udp", HOST)
                self._write_config()
                if self._launch(named):
                    return self
                last_log = self._log_tail()
        except BaseException:
            self.stop()
            raise
        self.stop()
        raise RuntimeError(f"named did not start after {_START_ATTEMPTS} tries:\n{last_log}")

    def stop(self) -> None:
        """Terminate ``named``, wait for it, and remove the temporary directory."""
        process, self._process = self._process, None
        if process is not None:
            _terminate(process)
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None

    def _launch(self, named: str) -> bool:
        """Start named once; True when it answers, False (and stopped) when it died."""
        directory = self._workdir()
        log = (directory / "named.log").open("wb")
        with log:
            process = subprocess.Popen(
                [named, "-g", "-n", "2", "-c", str(directory / "named.conf")],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=directory,
            )
        self._process = process
        deadline = time.monotonic() + self._startup_timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                self._process = None
                return False
            if self._answers():
                return True
            time.sleep(0.05)
        self._process = None
        _terminate(process)
        raise RuntimeError(
            f"named on {self.address} did not answer within {self._startup_timeout} s:\n"
            + self._log_tail()
        )

    def _answers(self) -> bool:
        query = dns.message.make_query(_fqdn(self.zones[0]), dns.rdatatype.SOA)
        try:
            response = dns.query.udp(query, self.host, port=self.port, timeout=0.2)
        except (dns.exception.DNSException, OSError):
            return False
        return response.rcode() == dns.rcode.NOERROR and bool(response.answer)

    def _workdir(self) -> Path:
        if self.directory is None:
            raise RuntimeError("BindServer is not started")
        return self.directory

    def _log_tail(self, lines: int = 30) -> str:
        if self.directory is None:
            return ""
        try:
            text = (self.directory / "named.log").read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    # -- configuration ----------------------------------------------------------------------

    def _write_config(self) -> None:
        directory = self._workdir()
        conf = [
            "options {",
            f'    directory "{directory}";',
            f'    pid-file "{directory}/named.pid";',
            f'    session-keyfile "{directory}/session.key";',
            f'    managed-keys-directory "{directory}";',
            f"    listen-on port {self.port} {{ {HOST}; }};",
            "    listen-on-v6 { none; };",
            *(
                ["    recursion yes;", f"    allow-recursion {{ {_LOOPBACK}; }};"]
                if self.recursion
                else ["    recursion no;"]
            ),
            "    dnssec-validation no;",
            "    notify no;",
            f"    allow-transfer {{ {_LOOPBACK}; }};",
            "};",
            "controls { };",
            _key_clause(self.key_name, self.key_algorithm, self.key_secret),
            _key_clause(self.limited_key_name, self.key_algorithm, self.limited_key_secret),
        ]
        for zone in self.zones:
            grants = [f'        grant "{self.key_name}" zonesub TXT;']
            if zone in self.limited_key_zones:
                grants.append(f'        grant "{self.limited_key_name}" zonesub TXT;')
            conf += [
                f'zone "{zone}" {{',
                "    type primary;",
                f'    file "{zone}.db";',
                "    update-policy {",
                *grants,
                "    };",
                "};",
            ]
            for stale in directory.glob(f"{zone}.db*"):
                stale.unlink()
            (directory / f"{zone}.db").write_text(self._zone_text(zone))
        if self.recursion:
            conf += ['zone "." {', "    type primary;", '    file "root.db";', "};"]
            (directory / "root.db").write_text(
                "$TTL 60\n"
                ". IN SOA ns.root.invalid. hostmaster.root.invalid. 1 3600 600 86400 60\n"
                ". IN NS ns.root.invalid.\n"
                f"ns.root.invalid. IN A {self.a_address}\n"
            )
        (directory / "named.conf").write_text("\n".join(conf) + "\n")

    def _zone_text(self, zone: str) -> str:
        origin = _fqdn(zone)
        lines = [
            f"$ORIGIN {origin}",
            "$TTL 60",
            f"@ IN SOA ns.{origin} hostmaster.{origin} 1 3600 600 86400 60",
            f"@ IN NS ns.{origin}",
            f"ns IN A {self.a_address}",
            f"@ IN A {self.a_address}",
            f"* IN A {self.a_address}",
        ]
        for record in self.records:
            owner = record.split(maxsplit=1)[0].lower()
            if _in_zone(owner, zone) and not any(
                _in_zone(owner, other) and len(other) > len(zone) for other in self.zones
            ):
                lines.append(record)
        return "\n".join(lines) + "\n"

    # -- looking and changing ---------------------------------------------------------------

    def txt_values(self, name: str) -> set[str]:
        """The TXT strings at ``name`` right now, asked of this server directly."""
        query = dns.message.make_query(_fqdn(name), dns.rdatatype.TXT)
        query.flags &= ~dns.flags.RD
        response = dns.query.tcp(query, self.host, port=self.port, timeout=5)
        values: set[str] = set()
        for rrset in response.answer:
            if rrset.rdtype == dns.rdatatype.TXT:
                values.update(b"".join(rdata.strings).decode() for rdata in rrset)
        return values

    def txt_ttl(self, name: str) -> int:
        """The TTL of the TXT record set at ``name`` (-1 when there is none)."""
        return query_txt(self.host, self.port, name)[1]

    def all_txt(self) -> dict[str, set[str]]:
        """Every TXT record in every zone (by zone transfer), as ``{fqdn: values}``."""
        found: dict[str, set[str]] = {}
        for zone in self.zones:
            origin = dns.name.from_text(zone)
            transferred = dns.zone.Zone(origin)
            dns.query.inbound_xfr(self.host, transferred, port=self.port, timeout=5)
            for name, rdataset in transferred.iterate_rdatasets(dns.rdatatype.TXT):
                owner = name.derelativize(origin).to_text()
                found.setdefault(owner, set()).update(
                    b"".join(rdata.strings).decode() for rdata in rdataset
                )
        return found

    def add_txt(self, name: str, value: str, *, ttl: int = 60) -> None:
        """Add one TXT value at ``name`` (for seeding a "foreign" value in a test)."""
        self._update(name, lambda update, rel: update.add(rel, ttl, "TXT", f'"{value}"'))

    def delete_txt(self, name: str, value: str | None = None) -> None:
        """Delete one TXT value at ``name``, or every TXT value there."""
        if value is None:
            self._update(name, lambda update, rel: update.delete(rel, "TXT"))
        else:
            self._update(name, lambda update, rel: update.delete(rel, "TXT", f'"{value}"'))

    def clear_txt(self) -> None:
        """Delete every TXT record in every zone."""
        for name in self.all_txt():
            self.delete_txt(name)

    def _update(self, name: str, change: _Change) -> None:
        fqdn = dns.name.from_text(name)
        zone = max((z for z in self.zones if _in_zone(name, z)), key=len, default=None)
        if zone is None:
            raise ValueError(f"{name} is in none of the zones {list(self.zones)}")
        origin = dns.name.from_text(zone)
        keyring = {
            dns.name.from_text(self.key_name): dns.tsig.Key(
                self.key_name, self.key_secret, self.key_algorithm
            )
        }
        update = dns.update.UpdateMessage(origin, keyring=keyring)
        change(update, fqdn.relativize(origin))
        response = dns.query.tcp(update, self.host, port=self.port, timeout=5)
        if response.rcode() != dns.rcode.NOERROR:
            raise RuntimeError(f"update of {name} failed: {dns.rcode.to_text(response.rcode())}")


def _in_zone(name: str, zone: str) -> bool:
    name = name.rstrip(".").lower()
    zone = zone.rstrip(".").lower()
    return name == zone or name.endswith("." + zone)


def _key_clause(name: str, algorithm: str, secret: str) -> str:
    return f'key "{name}" {{\n    algorithm {algorithm};\n    secret "{secret}";\n}};'


def _terminate(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
