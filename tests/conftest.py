"""Fixtures for every test: the ``integration`` marker and a session-wide Pebble.

``pebble`` is one Pebble for the whole session with Pebble's default 5% badNonce rejection on
(or the Pebble named by ``ACMELITE_TEST_PEBBLE_URL``). ``pebble_factory(**options)`` starts
another with ``PebbleServer`` options, once per distinct set of options. Without Pebble the
integration tests skip, except under ``CI=true`` where they fail: CI must run them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn

import pytest

from acmelite.testing import (
    ExternalPebble,
    Pebble,
    PebbleBinaries,
    PebbleError,
    PebbleNotFound,
    PebbleServer,
    find_pebble,
)
from acmelite.testing.caddy import CaddyUnavailable, find_caddy

PebbleFactory = Callable[..., PebbleServer]

INTEGRATION_DIR = Path(__file__).resolve().parent / "integration"


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


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("true", "1", "yes")


def unavailable(message: str) -> NoReturn:
    """Skip a test that needs a missing server; fail instead on CI, where it must run."""
    if in_ci():
        pytest.fail(f"{message} (CI=true, so this is a failure, not a skip)", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def pebble_binaries() -> PebbleBinaries:
    """The local Pebble binaries, for tests that build their own ``PebbleServer``."""
    try:
        return find_pebble()
    except PebbleNotFound as exc:
        unavailable(str(exc))


@pytest.fixture(scope="session")
def pebble_factory() -> Iterator[PebbleFactory]:
    """``factory(**PebbleServer options) -> started PebbleServer``; shared per option set."""
    started: dict[str, PebbleServer] = {}

    def factory(**options: Any) -> PebbleServer:
        key = json.dumps(options, sort_keys=True, default=repr)
        if key not in started:
            try:
                started[key] = PebbleServer(**options).start()
            except PebbleNotFound as exc:
                unavailable(str(exc))
        return started[key]

    try:
        yield factory
    finally:
        for server in started.values():
            server.stop()


@pytest.fixture(scope="session")
def pebble(pebble_factory: PebbleFactory) -> Pebble:
    """The session's Pebble: badNonce at Pebble's 5% default, no validation sleeps."""
    try:
        external = ExternalPebble.from_env()
    except PebbleError as exc:
        pytest.fail(str(exc), pytrace=False)
    if external is not None:
        return external
    return pebble_factory()
