"""Fixtures for the integration tests: a session-wide real BIND 9.

``bind_server`` is one ``named`` for the whole session (see ``acmelite.testing.bind``), with
the zones the DNS-01 tests need. ``bind`` is the same server for one test, and after the test
it asserts that no TXT value is left in any zone (and removes any, so one failure does not
spill into the next test). Without ``named`` these tests skip, except under ``CI=true``
where they fail: CI must run them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from acmelite.testing.bind import DEFAULT_ZONES, BindNotFound, BindServer

#: ``_acme-challenge.delegated.example.test`` is delegated to a zone the key may update.
DELEGATION_CNAME = (
    "_acme-challenge.delegated.example.test. CNAME _acme-challenge.delegated.acme-dns.test."
)
#: A zone with a second nameserver that never answers (nothing listens on 127.0.0.2).
LAGGING_ZONE = "lagging.test"
LAGGING_RECORDS = (
    "lagging.test. NS ns2.lagging.test.",
    "ns2.lagging.test. A 127.0.0.2",
)
#: The zone the limited key may update; every other zone refuses it.
LIMITED_ZONE = "acme-dns.test"


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("true", "1", "yes")


@pytest.fixture(scope="session")
def bind_server() -> Iterator[BindServer]:
    """A real BIND 9 for the whole session, authoritative for the test zones."""
    server = BindServer(
        (*DEFAULT_ZONES, LAGGING_ZONE),
        records=(DELEGATION_CNAME, *LAGGING_RECORDS),
        limited_key_zones=(LIMITED_ZONE,),
        recursion=True,  # Pebble's resolver must follow the delegation CNAME
    )
    try:
        server.start()
    except BindNotFound as exc:
        if _in_ci():
            pytest.fail(f"{exc} (CI=true, so this is a failure, not a skip)", pytrace=False)
        pytest.skip(str(exc))
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
