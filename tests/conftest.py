"""Fixtures for every test: the ``integration`` marker and the session's servers.

The servers come from acmelite's own pytest plugin (``acmelite.testing.pytest_plugin``, loaded
through its ``pytest11`` entry point because the package is installed): ``pebble`` is the
plugin's ``acme_pebble`` — one Pebble for the whole session with Pebble's default 5% badNonce
rejection on, or the Pebble named by ``ACMELITE_TEST_PEBBLE_URL`` — and ``pebble_factory`` is
its ``acme_pebble_factory``. Without Pebble the integration tests skip, except under
``CI=true`` where they fail: CI must run them.

``make test`` installs Pebble into ``.cache/pebble`` and points ``ACMELITE_PEBBLE_BIN`` at it;
a plain ``pytest`` in this checkout uses that install too.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from acmelite.testing.binaries import PebbleBinaries, PebbleNotFound, find_pebble
from acmelite.testing.caddy import CaddyUnavailable, find_caddy
from acmelite.testing.pebble import Pebble
from acmelite.testing.pytest_plugin import PebbleFactory, server_missing
from acmelite.testing.pytest_plugin import skip_or_fail as unavailable

__all__ = ["PebbleFactory", "unavailable"]  # for the other conftest and the tests

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parent.parent
INTEGRATION_DIR = ROOT / "tests" / "integration"
CHECKOUT_PEBBLE = ROOT / ".cache" / "pebble" / "usr" / "bin" / "pebble"

if "ACMELITE_PEBBLE_BIN" not in os.environ and CHECKOUT_PEBBLE.is_file():
    os.environ["ACMELITE_PEBBLE_BIN"] = str(CHECKOUT_PEBBLE)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "integration: runs against real servers (Pebble, BIND) that the suite starts"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if INTEGRATION_DIR in item.path.resolve().parents:
            item.add_marker(pytest.mark.integration)


def pytest_report_header(config: pytest.Config) -> list[str]:
    return [_pebble_header(), _caddy_header()]


def _pebble_header() -> str:
    url = os.environ.get("ACMELITE_TEST_PEBBLE_URL")
    if url:
        return f"pebble: external, {url}"
    try:
        binaries = find_pebble()
    except PebbleNotFound as exc:
        return f"pebble: not found ({exc})"
    return f"pebble: {binaries.version} ({binaries.pebble})"


def _caddy_header() -> str:
    try:
        caddy = find_caddy()
    except CaddyUnavailable as exc:
        return f"caddy: not found ({exc})"
    return f"caddy: {caddy.version} ({caddy.path})"


@pytest.fixture(scope="session")
def pebble_binaries(request: pytest.FixtureRequest) -> PebbleBinaries:
    """The local Pebble binaries, for tests that build their own ``PebbleServer``."""
    try:
        return find_pebble()
    except PebbleNotFound as exc:
        server_missing(request.config, "pebble", str(exc))


@pytest.fixture(scope="session")
def pebble_factory(acme_pebble_factory: PebbleFactory) -> PebbleFactory:
    """``factory(**PebbleServer options) -> started PebbleServer``; shared per option set."""
    return acme_pebble_factory


@pytest.fixture(scope="session")
def pebble(acme_pebble: Pebble) -> Pebble:
    """The session's Pebble: badNonce at Pebble's 5% default, no validation sleeps."""
    return acme_pebble
