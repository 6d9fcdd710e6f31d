"""Helpers for testing ACME clients, acmelite included, against a local Pebble.

See ``acmelite.testing.pebble`` for the details; ``PebbleServer`` is the entry point.
"""

from __future__ import annotations

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
    "ExternalPebble",
    "Pebble",
    "PebbleBinaries",
    "PebbleError",
    "PebbleNotFound",
    "PebbleServer",
    "PebbleStartError",
    "PortKind",
    "find_pebble",
    "free_port",
    "free_ports",
]
