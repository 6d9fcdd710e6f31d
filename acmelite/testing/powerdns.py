"""A real PowerDNS Authoritative Server for tests: ``with PowerDnsServer() as pdns: ...``.

``pdns_server`` runs in the foreground with the SQLite backend (Debian packages
``pdns-server`` and ``pdns-backend-sqlite3``), everything it writes — ``pdns.conf``, the
database, the control socket and its log — in a temporary directory, DNS on a free loopback
port (UDP and TCP) and its HTTP API (``api_url``, key ``api_key``) on another. It sends
nothing out: ``security-poll-suffix=`` is empty and the zones are ``Native`` (no NOTIFY);
its caches are off, so a change is served at once.

Each zone is created through the API with ``NS ns.<zone>.``, ``ns A 127.0.0.1``, an apex
``A`` and ``* A 127.0.0.1``, plus ``records`` (zone-file lines: ``NAME TYPE DATA``,
e.g. a CNAME). With ``dns_update`` (the default) DNS UPDATE (RFC 2136) is on, and each
zone's ``TSIG-ALLOW-DNSUPDATE`` metadata names ``key_name`` — and ``limited_key_name`` for
the ``limited_key_zones``; both keys are known to the server. ``dns_update=False`` turns
updates off (``dnsupdate=no``), for the tests of what a client is told then.

``pdns_server`` is found on ``PATH`` or in ``/usr/sbin``; without it (or without the SQLite
schema of ``pdns-backend-sqlite3``) :meth:`PowerDnsServer.start` raises
:class:`PowerDnsNotFound`.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import sqlite3
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

from .dnsserver import in_zone, query_txt, terminate, zone_of
from .ports import free_ports

__all__ = ["SQLITE_SCHEMA", "PowerDnsNotFound", "PowerDnsServer", "find_pdns_server"]

DEFAULT_ZONES = ("example.test", "acme-dns.test")
HOST = "127.0.0.1"
#: Where Debian's pdns-backend-sqlite3 puts the database schema.
SQLITE_SCHEMA = "/usr/share/pdns-backend-sqlite3/schema/schema.sqlite3.sql"
_START_ATTEMPTS = 3


class PowerDnsNotFound(RuntimeError):
    """``pdns_server`` or its SQLite backend is not installed."""


def find_pdns_server() -> str:
    """The path of ``pdns_server``: from ``PATH``, else ``/usr/sbin``."""
    found = shutil.which("pdns_server") or shutil.which(
        "pdns_server", path="/usr/sbin:/usr/local/sbin"
    )
    if found is None or not Path(SQLITE_SCHEMA).is_file():
        raise PowerDnsNotFound(
            "PowerDNS's `pdns_server` or its SQLite backend is not installed; install them"
            " with `apt-get install pdns-server pdns-backend-sqlite3`"
        )
    return found


class PowerDnsServer:
    """A PowerDNS Authoritative Server on free loopback ports, with its HTTP API."""

    server_id = "localhost"

    def __init__(
        self,
        zones: Sequence[str] = DEFAULT_ZONES,
        *,
        records: Sequence[str] = (),
        limited_key_zones: Sequence[str] = (),
        key_name: str = "acmelite-test",
        limited_key_name: str = "acmelite-limited",
        dns_update: bool = True,
        pdns_server: str | None = None,
        startup_timeout: float = 20.0,
    ) -> None:
        if not zones:
            raise ValueError("PowerDnsServer needs at least one zone")
        self.zones = tuple(name.rstrip(".").lower() for name in zones)
        unknown = [z for z in limited_key_zones if z.rstrip(".").lower() not in self.zones]
        if unknown:
            raise ValueError(f"limited_key_zones not among the zones: {', '.join(unknown)}")
        self.records = tuple(records)
        self.limited_key_zones = tuple(z.rstrip(".").lower() for z in limited_key_zones)
        self.dns_update = dns_update
        self.key_name = key_name
        self.key_secret = base64.b64encode(secrets.token_bytes(32)).decode("ascii")
        self.key_algorithm = "hmac-sha256"
        self.limited_key_name = limited_key_name
        self.limited_key_secret = base64.b64encode(secrets.token_bytes(32)).decode("ascii")
        self.api_key = secrets.token_urlsafe(24)
        self.host = HOST
        self.port = 0
        self.api_port = 0
        self.directory: Path | None = None
        self._pdns_server = pdns_server
        self._startup_timeout = startup_timeout
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        """``127.0.0.1:PORT`` of the DNS service."""
        return f"{self.host}:{self.port}"

    @property
    def api_url(self) -> str:
        """The base URL of the HTTP API (``http://127.0.0.1:PORT``)."""
        return f"http://{self.host}:{self.api_port}"

    def __repr__(self) -> str:
        state = "running" if self._process is not None else "stopped"
        return f"<PowerDnsServer {self.address} api={self.api_url} {state}>"

    def __enter__(self) -> PowerDnsServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> PowerDnsServer:
        """Write the configuration and database, start the server, create the zones."""
        if self._process is not None:
            raise RuntimeError("PowerDnsServer is already running")
        binary = self._pdns_server or find_pdns_server()
        if not os.access(binary, os.X_OK):
            raise PowerDnsNotFound(f"{binary} is not an executable pdns_server")
        self.directory = Path(tempfile.mkdtemp(prefix="acmelite-pdns-"))
        last_log = ""
        try:
            for _ in range(_START_ATTEMPTS):
                self.port = free_ports(1, "tcp+udp", HOST)[0]
                self.api_port = free_ports(1, "tcp", HOST)[0]
                self._write_config()
                if self._launch(binary):
                    self._populate()
                    return self
                last_log = self._log_tail()
        except BaseException:
            self.stop()
            raise
        self.stop()
        raise RuntimeError(f"pdns_server did not start after {_START_ATTEMPTS} tries:\n{last_log}")

    def stop(self) -> None:
        """Terminate the server, wait for it, and remove the temporary directory."""
        process, self._process = self._process, None
        if process is not None:
            terminate(process)
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None

    def _workdir(self) -> Path:
        if self.directory is None:
            raise RuntimeError("PowerDnsServer is not started")
        return self.directory

    def _write_config(self) -> None:
        directory = self._workdir()
        database = directory / "pdns.sqlite3"
        database.unlink(missing_ok=True)
        with sqlite3.connect(database) as db:
            db.executescript(Path(SQLITE_SCHEMA).read_text())
        db.close()
        conf = {
            "launch": "gsqlite3",
            "gsqlite3-database": str(database),
            "local-address": f"{HOST}:{self.port}",
            "socket-dir": str(directory),
            "webserver": "yes",
            "webserver-address": HOST,
            "webserver-port": str(self.api_port),
            "webserver-allow-from": "127.0.0.0/8",
            "api": "yes",
            "api-key": self.api_key,
            "dnsupdate": "yes" if self.dns_update else "no",
            "allow-dnsupdate-from": "",
            "allow-axfr-ips": "127.0.0.0/8",
            "security-poll-suffix": "",
            "default-soa-content": "ns.@ hostmaster.@ 0 3600 600 86400 60",
            "cache-ttl": "0",
            "negquery-cache-ttl": "0",
            "query-cache-ttl": "0",
            "zone-cache-refresh-interval": "0",
            "receiver-threads": "1",
            "distributor-threads": "1",
            "guardian": "no",
            "daemon": "no",
            "disable-syslog": "yes",
            "loglevel": "5",
        }
        (directory / "pdns.conf").write_text("".join(f"{k}={v}\n" for k, v in conf.items()))

    def _launch(self, binary: str) -> bool:
        directory = self._workdir()
        with (directory / "pdns.log").open("wb") as log:
            process = subprocess.Popen(
                [binary, f"--config-dir={directory}"],
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
            if self._api_answers():
                return True
            time.sleep(0.05)
        self._process = None
        terminate(process)
        raise RuntimeError(
            f"pdns_server on {self.address} did not answer within {self._startup_timeout} s:\n"
            + self._log_tail()
        )

    def _api_answers(self) -> bool:
        try:
            self.api("GET", "")
        except (OSError, RuntimeError):
            return False
        return True

    def _log_tail(self, lines: int = 30) -> str:
        if self.directory is None:
            return ""
        try:
            text = (self.directory / "pdns.log").read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def _populate(self) -> None:
        for name, secret in ((self.key_name, self.key_secret),
                             (self.limited_key_name, self.limited_key_secret)):  # fmt: skip
            self.api("POST", "/tsigkeys", {"name": name, "algorithm": self.key_algorithm,
                                           "key": secret})  # fmt: skip
        for zone in self.zones:
            origin = zone + "."
            rrsets = [
                _rrset(f"ns.{origin}", "A", [HOST]),
                _rrset(origin, "A", [HOST]),
                _rrset(f"*.{origin}", "A", [HOST]),
            ]
            extra: dict[tuple[str, str], list[str]] = {}
            for record in self.records:
                owner, rtype, data = record.split(maxsplit=2)
                if in_zone(owner, zone) and zone_of(owner, self.zones) == zone:
                    extra.setdefault((owner.lower(), rtype.upper()), []).append(data)
            rrsets += [_rrset(owner, rtype, data) for (owner, rtype), data in extra.items()]
            zone_data = {"name": origin, "kind": "Native", "nameservers": [f"ns.{origin}"],
                         "rrsets": rrsets}  # fmt: skip
            self.api("POST", "/zones", zone_data)
            keys = [self.key_name]
            if zone in self.limited_key_zones:
                keys.append(self.limited_key_name)
            self.api("PUT", f"/zones/{origin}/metadata/TSIG-ALLOW-DNSUPDATE", {"metadata": keys})
            self.api("PUT", f"/zones/{origin}/metadata/ALLOW-DNSUPDATE-FROM",
                     {"metadata": ["127.0.0.0/8"]})  # fmt: skip

    # -- the HTTP API -------------------------------------------------------------------------

    def api(self, method: str, path: str, body: Mapping[str, object] | None = None) -> object:
        """One request to ``/api/v1/servers/localhost<path>``; the decoded JSON (or None).

        Raises RuntimeError with the server's error text for an HTTP error status.
        """
        url = f"{self.api_url}/api/v1/servers/{self.server_id}{path}"
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(url, data=data, method=method)  # noqa: S310 - loopback
        request.add_header("X-API-Key", self.api_key)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
                text = response.read()
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode("utf-8", "replace")
            raise RuntimeError(f"PowerDNS API {method} {path}: {exc.code} {detail}") from None
        return json.loads(text) if text else None

    def zone_rrsets(self, zone: str) -> list[dict[str, object]]:
        """The record sets of ``zone`` as the API lists them."""
        data = self.api("GET", f"/zones/{zone.rstrip('.')}.")
        if not isinstance(data, dict) or not isinstance(data.get("rrsets"), list):
            raise RuntimeError(f"PowerDNS API: no rrsets for zone {zone}")
        return list(data["rrsets"])

    # -- looking and changing (the ZoneWriter seam) -------------------------------------------

    def txt_values(self, name: str) -> set[str]:
        """The TXT strings at ``name`` right now, asked of the DNS service directly."""
        return query_txt(self.host, self.port, name)[0]

    def txt_ttl(self, name: str) -> int:
        """The TTL of the TXT record set at ``name`` (-1 when there is none)."""
        return query_txt(self.host, self.port, name)[1]

    def all_txt(self) -> dict[str, set[str]]:
        """Every TXT record in every zone, as ``{fqdn: values}`` (from the API)."""
        found: dict[str, set[str]] = {}
        for zone in self.zones:
            for rrset in self.zone_rrsets(zone):
                if rrset.get("type") == "TXT" and _contents(rrset):
                    found[str(rrset["name"])] = {c.strip('"') for c in _contents(rrset)}
        return found

    def add_txt(self, name: str, value: str, *, ttl: int = 60) -> None:
        """Add one TXT value at ``name`` (for seeding a "foreign" value in a test)."""
        fqdn = name.rstrip(".").lower() + "."
        zone = zone_of(fqdn, self.zones)
        current = self._txt_rrset(zone, fqdn)
        contents = [f'"{value}"']
        if current is not None:
            ttl = _ttl(current)
            contents += _contents(current)
        self._replace(zone, fqdn, ttl, sorted(set(contents)))

    def delete_txt(self, name: str, value: str | None = None) -> None:
        """Delete one TXT value at ``name``, or every TXT value there."""
        fqdn = name.rstrip(".").lower() + "."
        zone = zone_of(fqdn, self.zones)
        current = self._txt_rrset(zone, fqdn)
        if current is None:
            return
        left = [] if value is None else [c for c in _contents(current) if c != f'"{value}"']
        self._replace(zone, fqdn, _ttl(current), left)

    def clear_txt(self) -> None:
        """Delete every TXT record in every zone."""
        for name in self.all_txt():
            self.delete_txt(name)

    def _txt_rrset(self, zone: str, fqdn: str) -> dict[str, object] | None:
        for rrset in self.zone_rrsets(zone):
            if rrset.get("type") == "TXT" and rrset.get("name") == fqdn:
                return rrset
        return None

    def _replace(self, zone: str, fqdn: str, ttl: int, contents: list[str]) -> None:
        rrset: dict[str, object] = {"name": fqdn, "type": "TXT", "changetype": "DELETE"}
        if contents:
            rrset = {**_rrset(fqdn, "TXT", contents), "ttl": ttl}
        self.api("PATCH", f"/zones/{zone}.", {"rrsets": [rrset]})


def _contents(rrset: Mapping[str, object]) -> list[str]:
    records = rrset.get("records")
    if not isinstance(records, list):
        return []
    return [str(r["content"]) for r in records if isinstance(r, dict) and "content" in r]


def _ttl(rrset: Mapping[str, object]) -> int:
    ttl = rrset.get("ttl")
    return ttl if isinstance(ttl, int) else 60


def _rrset(name: str, rtype: str, contents: Sequence[str]) -> dict[str, object]:
    return {
        "name": name,
        "type": rtype,
        "ttl": 60,
        "changetype": "REPLACE",
        "records": [{"content": c, "disabled": False} for c in contents],
    }
