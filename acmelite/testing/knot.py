"""A real Knot DNS for tests: ``with KnotServer() as knot: ...``.

``knotd`` runs in the foreground on a free loopback port (UDP and TCP) with its
configuration, zone files, journal and control socket in a temporary directory. Every
zone is primary and takes TSIG-signed dynamic updates of TXT records from
``key_name`` (hmac-sha256, a fresh random secret per server) through an ACL, and zone
transfers from loopback. Like :class:`~acmelite.testing.bind.BindServer`, each zone has an
SOA, ``NS ns.<zone>.``, ``ns A 127.0.0.1``, an apex ``A`` and ``* A 127.0.0.1``; ``records``
adds zone-file lines.

``limited_key_name`` is known to Knot but its ACL covers only ``limited_key_zones``:
Knot answers an update of any other zone with NOTAUTH and TSIG error BADKEY — the same
answer as for a key it does not know at all, which is what the tests of acmelite's messages
need. :attr:`key_file` is the key in Knot's own format (``keymgr -t`` output).

``knotd`` is found on ``PATH`` or in ``/usr/sbin`` (Debian package ``knot``); without it
:meth:`KnotServer.start` raises :class:`KnotNotFound`.
"""

from __future__ import annotations

import base64
import os
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

import dns.exception
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype

from .dnsserver import Change, axfr_txt, in_zone, query_txt, terminate, tsig_update, zone_of
from .ports import free_port

__all__ = ["KnotNotFound", "KnotServer", "find_knotd"]

DEFAULT_ZONES = ("example.test", "acme-dns.test")
HOST = "127.0.0.1"
_START_ATTEMPTS = 3


class KnotNotFound(RuntimeError):
    """``knotd`` is not installed (Debian: ``apt-get install knot``)."""


def find_knotd() -> str:
    """The path of ``knotd``: from ``PATH``, else ``/usr/sbin``."""
    found = shutil.which("knotd") or shutil.which("knotd", path="/usr/sbin:/usr/local/sbin")
    if found is None:
        raise KnotNotFound(
            "Knot DNS's `knotd` was found neither on PATH nor in /usr/sbin; "
            "install it with `apt-get install knot`"
        )
    return found


class KnotServer:
    """A Knot DNS ``knotd`` on a free loopback port, authoritative for ``zones``."""

    def __init__(
        self,
        zones: Sequence[str] = DEFAULT_ZONES,
        *,
        records: Sequence[str] = (),
        limited_key_zones: Sequence[str] = (),
        key_name: str = "acmelite-test",
        limited_key_name: str = "acmelite-limited",
        knotd: str | None = None,
        startup_timeout: float = 15.0,
    ) -> None:
        if not zones:
            raise ValueError("KnotServer needs at least one zone")
        self.zones = tuple(name.rstrip(".").lower() for name in zones)
        unknown = [z for z in limited_key_zones if z.rstrip(".").lower() not in self.zones]
        if unknown:
            raise ValueError(f"limited_key_zones not among the zones: {', '.join(unknown)}")
        self.records = tuple(records)
        self.limited_key_zones = tuple(z.rstrip(".").lower() for z in limited_key_zones)
        self.key_name = key_name
        self.key_secret = base64.b64encode(secrets.token_bytes(32)).decode("ascii")
        self.key_algorithm = "hmac-sha256"
        self.limited_key_name = limited_key_name
        self.limited_key_secret = base64.b64encode(secrets.token_bytes(32)).decode("ascii")
        self.host = HOST
        self.port = 0
        self.directory: Path | None = None
        self._knotd = knotd
        self._startup_timeout = startup_timeout
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        """``127.0.0.1:PORT``."""
        return f"{self.host}:{self.port}"

    @property
    def key_file(self) -> str:
        """The main key as ``keymgr -t NAME hmac-sha256`` prints it (Knot's key file)."""
        return (
            f"# {self.key_algorithm}:{self.key_name}:{self.key_secret}\n"
            f"key:\n  - id: {self.key_name}\n    algorithm: {self.key_algorithm}\n"
            f"    secret: {self.key_secret}\n"
        )

    def __repr__(self) -> str:
        state = "running" if self._process is not None else "stopped"
        return f"<KnotServer {self.address} zones={list(self.zones)} {state}>"

    def __enter__(self) -> KnotServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> KnotServer:
        """Write the configuration, start ``knotd``, wait until it answers; return self."""
        if self._process is not None:
            raise RuntimeError("KnotServer is already running")
        knotd = self._knotd or find_knotd()
        if not os.access(knotd, os.X_OK):
            raise KnotNotFound(f"{knotd} is not an executable knotd")
        self.directory = Path(tempfile.mkdtemp(prefix="acmelite-knot-"))
        last_log = ""
        try:
            for _ in range(_START_ATTEMPTS):
                self.port = free_port("tcp+udp", HOST)
                self._write_config()
                if self._launch(knotd):
                    return self
                last_log = self._log_tail()
        except BaseException:
            self.stop()
            raise
        self.stop()
        raise RuntimeError(f"knotd did not start after {_START_ATTEMPTS} tries:\n{last_log}")

    def stop(self) -> None:
        """Terminate ``knotd``, wait for it, and remove the temporary directory."""
        process, self._process = self._process, None
        if process is not None:
            terminate(process)
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None

    def _launch(self, knotd: str) -> bool:
        directory = self._workdir()
        with (directory / "knotd.log").open("wb") as log:
            process = subprocess.Popen(
                [knotd, "-c", str(directory / "knot.conf")],
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
        terminate(process)
        raise RuntimeError(
            f"knotd on {self.address} did not answer within {self._startup_timeout} s:\n"
            + self._log_tail()
        )

    def _answers(self) -> bool:
        """Every zone is loaded (Knot answers SERVFAIL for a zone still loading)."""
        for zone in self.zones:
            query = dns.message.make_query(zone + ".", dns.rdatatype.SOA)
            try:
                response = dns.query.udp(query, self.host, port=self.port, timeout=0.2)
            except (dns.exception.DNSException, OSError):
                return False
            if response.rcode() != dns.rcode.NOERROR or not response.answer:
                return False
        return True

    def _workdir(self) -> Path:
        if self.directory is None:
            raise RuntimeError("KnotServer is not started")
        return self.directory

    def _log_tail(self, lines: int = 30) -> str:
        if self.directory is None:
            return ""
        try:
            text = (self.directory / "knotd.log").read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def _write_config(self) -> None:
        directory = self._workdir()
        (directory / "db").mkdir(exist_ok=True)
        conf = [
            "server:",
            f'    rundir: "{directory}"',
            f"    listen: {HOST}@{self.port}",
            "    udp-workers: 1",
            "    tcp-workers: 1",
            "    background-workers: 1",
            "database:",
            f'    storage: "{directory}/db"',
            "log:",
            "  - target: stderr",
            "    any: info",
            "key:",
            f"  - id: {self.key_name}",
            f"    algorithm: {self.key_algorithm}",
            f"    secret: {self.key_secret}",
            f"  - id: {self.limited_key_name}",
            f"    algorithm: {self.key_algorithm}",
            f"    secret: {self.limited_key_secret}",
            "acl:",
            "  - id: update",
            f"    key: {self.key_name}",
            "    action: update",
            "    update-type: [TXT]",
            "  - id: update-limited",
            f"    key: {self.limited_key_name}",
            "    action: update",
            "    update-type: [TXT]",
            "  - id: transfer",
            f"    address: {HOST}",
            "    action: transfer",
            "template:",
            "  - id: default",
            f'    storage: "{directory}"',
            '    file: "%s.zone"',
            "    zonefile-sync: -1",
            "    zonefile-load: whole",
            "    journal-content: changes",
            "    semantic-checks: off",
            "zone:",
        ]
        for zone in self.zones:
            acl = ["update", "transfer"]
            if zone in self.limited_key_zones:
                acl.append("update-limited")
            conf += [f"  - domain: {zone}", f"    acl: [{', '.join(acl)}]"]
            (directory / f"{zone}.zone").write_text(self._zone_text(zone))
        for stale in (directory / "db").glob("*"):
            if stale.is_file():
                stale.unlink()
        (directory / "knot.conf").write_text("\n".join(conf) + "\n")

    def _zone_text(self, zone: str) -> str:
        origin = zone + "."
        lines = [
            f"$ORIGIN {origin}",
            "$TTL 60",
            f"@ IN SOA ns.{origin} hostmaster.{origin} 1 3600 600 86400 60",
            f"@ IN NS ns.{origin}",
            f"ns IN A {HOST}",
            f"@ IN A {HOST}",
            f"* IN A {HOST}",
        ]
        for record in self.records:
            owner = record.split(maxsplit=1)[0].lower()
            if in_zone(owner, zone) and zone_of(owner, self.zones) == zone:
                lines.append(record)
        return "\n".join(lines) + "\n"

    # -- looking and changing (the ZoneWriter seam) -------------------------------------------

    def txt_values(self, name: str) -> set[str]:
        """The TXT strings at ``name`` right now, asked of this server directly."""
        return query_txt(self.host, self.port, name)[0]

    def txt_ttl(self, name: str) -> int:
        """The TTL of the TXT record set at ``name`` (-1 when there is none)."""
        return query_txt(self.host, self.port, name)[1]

    def all_txt(self) -> dict[str, set[str]]:
        """Every TXT record in every zone (by zone transfer), as ``{fqdn: values}``."""
        return axfr_txt(self.host, self.port, self.zones)

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

    def _update(self, name: str, change: Change) -> None:
        tsig_update(
            self.host, self.port, zone_of(name, self.zones), name, change,
            key_name=self.key_name, secret=self.key_secret, algorithm=self.key_algorithm,
        )  # fmt: skip
