"""Helpers for testing ACME clients, acmelite included, against a local Pebble and BIND.

See ``acmelite.testing.pebble`` (``PebbleServer``) and ``acmelite.testing.bind``
(``BindServer``, a real BIND 9 with TSIG-signed dynamic updates) for the details, and
``acmelite.testing.proxy`` (``FaultProxy``) for a TLS proxy that counts requests and injects
faults between a client and the CA.
"""

from __future__ import annotations

from acmelite.testing.bind import DEFAULT_ZONES, BindNotFound, BindServer, find_named
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
from acmelite.testing.proxy import Exchange, Fault, FaultProxy, Injection, On

__all__ = [
    "DEFAULT_PROFILES",
    "DEFAULT_ZONES",
    "BindNotFound",
    "BindServer",
    "Exchange",
    "ExternalPebble",
    "Fault",
    "FaultProxy",
    "Injection",
    "On",
    "Pebble",
    "PebbleBinaries",
    "PebbleError",
    "PebbleNotFound",
    "PebbleServer",
    "PebbleStartError",
    "PortKind",
    "find_named",
    "find_pebble",
    "free_port",
    "free_ports",
]
