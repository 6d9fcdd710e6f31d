"""Fixtures for the integration tests: session-wide real BIND 9, Knot DNS, PowerDNS, and
Caddy's ACME server.

``bind_server`` is one ``named`` for the whole session (see ``acmelite.testing.bind``), with
the zones the DNS-01 tests need. ``bind`` is the same server for one test, and after the test
it asserts that no TXT value is left in any zone (and removes any, so one failure does not
spill into the next test). ``knot_server``/``knot`` and ``powerdns_server``/``powerdns`` are
the same for Knot DNS and PowerDNS (zones ``example.test`` and ``acme-dns.test``, the
delegation CNAME, the limited key on ``acme-dns.test``). Without the server these tests
skip, except under ``CI=true`` where they fail: CI must run them.

``caddy_lab`` is Caddy's ACME server for the whole session, with a BIND of its own that Caddy
resolves through (see :class:`CaddyLab`); ``caddy`` is the same for one test, which must
leave no TXT value behind. It needs Caddy and root; without, the Caddy tests skip (fail
under ``CI=true``).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass

import pytest

from acmelite.testing.bind import DEFAULT_ZONES, BindNotFound, BindServer
from acmelite.testing.caddy import (
    CaddyAcmeServer,
    CaddyUnavailable,
    find_caddy,
    free_loopback_address,
)
from acmelite.testing.knot import KnotNotFound, KnotServer
from acmelite.testing.powerdns import PowerDnsNotFound, PowerDnsServer
from acmelite.testing.pytest_plugin import server_missing
from acmelite.testing.relay import DnsRelay
from tests.conftest import unavailable

#: ``_acme-challenge.delegated.example.test`` is delegated to a zone the key may update.
DELEGATION_CNAME = (
    "_acme-challenge.delegated.example.test. CNAME _acme-challenge.delegated.acme-dns.test."
)
#: Every dns-account-01 record of ``acct-delegated.example.test`` (any account label) is
#: delegated to one name in the zone the limited key may update.
ACCOUNT_DELEGATION_CNAME = (
    "*._acme-challenge.acct-delegated.example.test. CNAME"
    " _acme-challenge.acct-delegated.acme-dns.test."
)
#: A zone with a second nameserver that never answers (nothing listens on 127.0.0.2).
LAGGING_ZONE = "lagging.test"
LAGGING_RECORDS = (
    "lagging.test. NS ns2.lagging.test.",
    "ns2.lagging.test. A 127.0.0.2",
)
#: The zone the limited key may update; every other zone refuses it.
LIMITED_ZONE = "acme-dns.test"


@pytest.fixture(scope="session")
def bind_server(request: pytest.FixtureRequest) -> Iterator[BindServer]:
    """A real BIND 9 for the whole session, authoritative for the test zones."""
    server = BindServer(
        (*DEFAULT_ZONES, LAGGING_ZONE),
        records=(DELEGATION_CNAME, ACCOUNT_DELEGATION_CNAME, *LAGGING_RECORDS),
        limited_key_zones=(LIMITED_ZONE,),
        recursion=True,  # Pebble's resolver must follow the delegation CNAME
    )
    try:
        server.start()
    except BindNotFound as exc:
        server_missing(request.config, "bind", str(exc))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def bind(bind_server: BindServer) -> Iterator[BindServer]:
    """The session's BIND; the test must leave no TXT value behind in any zone."""
    leftover_before = bind_server.all_txt()
    if leftover_before:
        bind_server.clear_txt()
    yield bind_server
    leftover = bind_server.all_txt()
    if leftover:
        bind_server.clear_txt()
        pytest.fail(f"the test left TXT values in BIND: {leftover}", pytrace=False)


#: The zones of the Knot and PowerDNS servers.
OTHER_ZONES = ("example.test", "acme-dns.test")


@pytest.fixture(scope="session")
def knot_server() -> Iterator[KnotServer]:
    """A real Knot DNS for the whole session."""
    server = KnotServer(OTHER_ZONES, records=(DELEGATION_CNAME,), limited_key_zones=(LIMITED_ZONE,))
    try:
        server.start()
    except KnotNotFound as exc:
        unavailable(str(exc))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def powerdns_server() -> Iterator[PowerDnsServer]:
    """A real PowerDNS Authoritative Server (SQLite, HTTP API, DNS UPDATE) for the session."""
    server = PowerDnsServer(
        OTHER_ZONES, records=(DELEGATION_CNAME,), limited_key_zones=(LIMITED_ZONE,)
    )
    try:
        server.start()
    except PowerDnsNotFound as exc:
        unavailable(str(exc))
    try:
        yield server
    finally:
        server.stop()


@contextlib.contextmanager
def _no_leftovers(server: KnotServer | PowerDnsServer, kind: str) -> Iterator[None]:
    if server.all_txt():
        server.clear_txt()
    yield
    leftover = server.all_txt()
    if leftover:
        server.clear_txt()
        pytest.fail(f"the test left TXT values in {kind}: {leftover}", pytrace=False)


@pytest.fixture
def knot(knot_server: KnotServer) -> Iterator[KnotServer]:
    """The session's Knot; the test must leave no TXT value behind."""
    with _no_leftovers(knot_server, "Knot"):
        yield knot_server


@pytest.fixture
def powerdns(powerdns_server: PowerDnsServer) -> Iterator[PowerDnsServer]:
    """The session's PowerDNS; the test must leave no TXT value behind."""
    with _no_leftovers(powerdns_server, "PowerDNS"):
        yield powerdns_server


# -- Caddy's ACME server (step-ca) -------------------------------------------------------------

#: The zone whose names the Caddy tests use: every name in it resolves to ``CaddyLab.address``.
CADDY_ZONE = "caddy.test"


@dataclass
class CaddyLab:
    """Caddy's ACME server with name resolution of its own, for the whole session.

    ``address`` is a loopback address of the session's own (``127.x.y.z``): every name of
    ``CADDY_ZONE`` resolves there (in the BIND ``bind``, which Caddy asks through a relay on
    ``address:53``), so HTTP-01 answers are served on ``address:80``.
    """

    caddy: CaddyAcmeServer
    bind: BindServer
    relay: DnsRelay
    address: str

    @property
    def directory_url(self) -> str:
        return self.caddy.directory_url

    @property
    def ca_bundle(self) -> str:
        return self.caddy.ca_bundle


@pytest.fixture(scope="session")
def caddy_lab() -> Iterator[CaddyLab]:
    """Caddy (``apt-get install caddy``), a BIND for ``caddy.test`` and the relay; needs root
    (port 80 and 53, ``unshare --mount``). Missing: a skip, or a failure under ``CI=true``."""
    from tests.conftest import unavailable

    try:
        find_caddy()
        if os.geteuid() != 0:
            raise CaddyUnavailable(
                "the Caddy tests need root: HTTP-01 on port 80, DNS on port 53, unshare --mount"
            )
        address = free_loopback_address(tcp=(80, 53), udp=(53,))
    except CaddyUnavailable as exc:
        unavailable(str(exc))
    with ExitStack() as stack:
        bind = BindServer((CADDY_ZONE,), address=address, recursion=True)
        try:
            bind.start()
        except BindNotFound as exc:
            unavailable(str(exc))
        stack.callback(bind.stop)
        relay = stack.enter_context(DnsRelay(address, bind.host, bind.port))
        caddy = CaddyAcmeServer(resolver=address)
        stack.callback(caddy.stop)
        caddy.start()
        yield CaddyLab(caddy=caddy, bind=bind, relay=relay, address=address)


@pytest.fixture
def caddy(caddy_lab: CaddyLab) -> Iterator[CaddyLab]:
    """The session's Caddy lab; the test must leave no TXT value in its BIND."""
    caddy_lab.bind.clear_txt()
    yield caddy_lab
    leftover = caddy_lab.bind.all_txt()
    if leftover:
        caddy_lab.bind.clear_txt()
        pytest.fail(f"the test left TXT values in BIND: {leftover}", pytrace=False)
