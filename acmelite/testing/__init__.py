"""Helpers for testing ACME clients, acmelite included, against a local Pebble and DNS servers.

See ``acmelite.testing.pebble`` (``PebbleServer``), ``acmelite.testing.bind`` (``BindServer``,
a real BIND 9 with TSIG-signed dynamic updates), ``acmelite.testing.knot`` (``KnotServer``)
and ``acmelite.testing.powerdns`` (``PowerDnsServer``, with its HTTP API) for the details,
``acmelite.testing.dns_conformance`` (``check_dns_solver``) for the conformance kit of dns-01
solvers, and ``acmelite.testing.proxy`` (``FaultProxy``) for a TLS proxy that counts
requests and injects faults between a client and the CA.
"""

from __future__ import annotations

from acmelite.testing.bind import DEFAULT_ZONES, BindNotFound, BindServer, find_named
from acmelite.testing.dns_conformance import (
    DNS_CHECKS,
    ConformanceError,
    ConformanceReport,
    assert_dns_solver_conforms,
    check_dns_solver,
)
from acmelite.testing.dnsserver import ZoneWriter
from acmelite.testing.knot import KnotNotFound, KnotServer
from acmelite.testing.pebble import (
    DEFAULT_PROFILES,
    ExternalPebble,
    Pebble,
    PebbleBinaries,
    PebbleError,
    PebbleNotFound,
    PebbleServer,
    PebbleStartError,
    find_pebble,
)
from acmelite.testing.ports import PortKind, free_port, free_ports
from acmelite.testing.powerdns import PowerDnsNotFound, PowerDnsServer
from acmelite.testing.proxy import Exchange, Fault, FaultProxy, Injection, On

__all__ = [
    "DEFAULT_PROFILES",
    "DEFAULT_ZONES",
    "DNS_CHECKS",
    "BindNotFound",
    "BindServer",
    "ConformanceError",
    "ConformanceReport",
    "Exchange",
    "ExternalPebble",
    "Fault",
    "FaultProxy",
    "Injection",
    "KnotNotFound",
    "KnotServer",
    "On",
    "Pebble",
    "PebbleBinaries",
    "PebbleError",
    "PebbleNotFound",
    "PebbleServer",
    "PebbleStartError",
    "PortKind",
    "PowerDnsNotFound",
    "PowerDnsServer",
    "ZoneWriter",
    "assert_dns_solver_conforms",
    "check_dns_solver",
    "find_named",
    "find_pebble",
    "free_port",
    "free_ports",
]
