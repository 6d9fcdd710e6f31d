"""Helpers for testing ACME clients, acmelite included, against a local Pebble and DNS servers.

See ``acmelite.testing.pebble`` (``PebbleServer``), ``acmelite.testing.bind`` (``BindServer``,
a real BIND 9 with TSIG-signed dynamic updates), ``acmelite.testing.knot`` (``KnotServer``)
and ``acmelite.testing.powerdns`` (``PowerDnsServer``, with its HTTP API) for the details,
``acmelite.testing.challtestsrv`` (``ChallTestSrv``: the DNS answers Pebble sees),
``acmelite.testing.dns_conformance`` (``check_dns_solver``) for the conformance kit of dns-01
solvers, and ``acmelite.testing.proxy`` (``FaultProxy``, a TLS proxy that counts requests and
injects faults between a client and the CA). ``acmelite.testing.pytest_plugin`` turns them
into pytest fixtures, and ``python -m acmelite.testing install-pebble`` installs Pebble
(``acmelite.testing.install``).

Names are imported on first use (PEP 562), as in ``acmelite``: the pytest plugin is loaded in
every pytest run of an environment that has acmelite installed, and must not pull in requests,
cryptography or dnspython before a fixture asks for a server.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from acmelite.testing.binaries import (
        INSTALL_COMMAND,
        PebbleBinaries,
        PebbleError,
        PebbleNotFound,
        default_pebble_dir,
        find_pebble,
    )
    from acmelite.testing.bind import DEFAULT_ZONES, BindNotFound, BindServer, find_named
    from acmelite.testing.challtestsrv import ChallTestSrv
    from acmelite.testing.dns_conformance import (
        DNS_CHECKS,
        ConformanceError,
        ConformanceReport,
        assert_dns_solver_conforms,
        check_dns_solver,
    )
    from acmelite.testing.dnsserver import ZoneWriter
    from acmelite.testing.install import InstallError, install_pebble
    from acmelite.testing.knot import KnotNotFound, KnotServer
    from acmelite.testing.pebble import (
        DEFAULT_PROFILES,
        ExternalPebble,
        Pebble,
        PebbleServer,
        PebbleStartError,
    )
    from acmelite.testing.ports import PortKind, free_port, free_ports
    from acmelite.testing.powerdns import PowerDnsNotFound, PowerDnsServer
    from acmelite.testing.proxy import Exchange, Fault, FaultProxy, Injection, On

_LAZY = {
    "INSTALL_COMMAND": "binaries",
    "PebbleBinaries": "binaries",
    "PebbleError": "binaries",
    "PebbleNotFound": "binaries",
    "default_pebble_dir": "binaries",
    "find_pebble": "binaries",
    "DEFAULT_ZONES": "bind",
    "BindNotFound": "bind",
    "BindServer": "bind",
    "find_named": "bind",
    "Blackhole": "blackhole",
    "ChallTestSrv": "challtestsrv",
    "DNS_CHECKS": "dns_conformance",
    "ConformanceError": "dns_conformance",
    "ConformanceReport": "dns_conformance",
    "assert_dns_solver_conforms": "dns_conformance",
    "check_dns_solver": "dns_conformance",
    "ZoneWriter": "dnsserver",
    "InstallError": "install",
    "install_pebble": "install",
    "KnotNotFound": "knot",
    "KnotServer": "knot",
    "DEFAULT_PROFILES": "pebble",
    "ExternalPebble": "pebble",
    "Pebble": "pebble",
    "PebbleServer": "pebble",
    "PebbleStartError": "pebble",
    "PortKind": "ports",
    "free_port": "ports",
    "free_ports": "ports",
    "PowerDnsNotFound": "powerdns",
    "PowerDnsServer": "powerdns",
    "Exchange": "proxy",
    "Fault": "proxy",
    "FaultProxy": "proxy",
    "Injection": "proxy",
    "On": "proxy",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


__all__ = [
    "DEFAULT_PROFILES",
    "DEFAULT_ZONES",
    "DNS_CHECKS",
    "INSTALL_COMMAND",
    "BindNotFound",
    "BindServer",
    "Blackhole",
    "ChallTestSrv",
    "ConformanceError",
    "ConformanceReport",
    "Exchange",
    "ExternalPebble",
    "Fault",
    "FaultProxy",
    "Injection",
    "InstallError",
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
    "default_pebble_dir",
    "find_named",
    "find_pebble",
    "free_port",
    "free_ports",
    "install_pebble",
]
