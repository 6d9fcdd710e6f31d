"""Helpers for testing ACME clients, acmelite included, against a local Pebble and BIND.

See ``acmelite.testing.pebble`` (``PebbleServer``) and ``acmelite.testing.bind``
(``BindServer``, a real BIND 9 with TSIG-signed dynamic updates) for the details.
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

__all__ = [
    "DEFAULT_PROFILES",
    "DEFAULT_ZONES",
    "BindNotFound",
    "BindServer",
    "ExternalPebble",
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
