"""The ``acmelite`` pytest plugin: test your own ACME-using code against a real Pebble.

Installed with acmelite (entry point group ``pytest11``, name ``acmelite``), so every pytest run
in an environment that has acmelite has these fixtures; ``-p no:acmelite`` turns them off.
Loading the plugin imports only the standard library and pytest: requests, cryptography and
dnspython are imported when a test first asks for one of the fixtures.

Fixtures (docs/testing.md has a complete example file):

``acme_pebble`` (session)
    A running Pebble with a pebble-challtestsrv as its DNS server, on free loopback ports, with
    Pebble's default 5% of good nonces rejected. ``.directory_url``, ``.ca_bundle`` (PEM that
    verifies Pebble's HTTPS), ``.http_port`` (where the validator connects for http-01),
    ``.management_url``, ``.roots()``, and ``.challtestsrv`` to add DNS records or make a name's
    validation fail (:class:`~acmelite.testing.ChallTestSrv`). With ``--acme-pebble-url`` (or
    ``ACMELITE_TEST_PEBBLE_URL``) it is that external Pebble instead, e.g. one started with
    ``pebble-compose.yml``.
``acme_pebble_factory`` (session)
    ``acme_pebble_factory(**options)`` starts a local :class:`~acmelite.testing.PebbleServer`
    with other settings — ``nonce_reject=``, ``va_sleeptime=``, ``eab_required=`` and
    ``eab_mac_keys=``, ``profiles=``, ``retry_after_order=``, ``dns_server=`` ... — once per
    distinct set of options; all of them stop at the end of the session.
``acme_client`` (function)
    An :class:`~acmelite.AcmeClient` at ``acme_pebble`` with a fresh account key, registered.
``acme_bind`` (session)
    A real BIND 9 (:class:`~acmelite.testing.BindServer`) authoritative for ``example.test``,
    ``acme-dns.test`` and ``svc.clusterset.local`` that takes TSIG-signed dynamic updates
    (``.address``, ``.key_name``, ``.key_secret``, ``.key_algorithm``), for dns-01 tests with
    ``acme_pebble_factory(dns_server=acme_bind.address)``.

A missing Pebble (or BIND) skips the test, and the reason says how to install it
(``python -m acmelite.testing install-pebble``); with ``--acme-require-pebble`` (or
``--acme-require-bind``), or when ``CI=true``, it fails the test instead.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Literal, NoReturn

import pytest

if TYPE_CHECKING:
    from acmelite.client import AcmeClient
    from acmelite.testing.bind import BindServer
    from acmelite.testing.pebble import Pebble, PebbleServer

__all__ = [
    "PebbleFactory",
    "acme_bind",
    "acme_client",
    "acme_pebble",
    "acme_pebble_factory",
    "in_ci",
    "server_missing",
    "skip_or_fail",
]

PebbleFactory = Callable[..., "PebbleServer"]
Server = Literal["pebble", "bind"]


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("acmelite", "acmelite: ACME tests against Pebble and BIND")
    group.addoption(
        "--acme-pebble-url",
        metavar="URL",
        default=None,
        help="use the Pebble at this directory URL (e.g. https://localhost:14000/dir from "
        "pebble-compose.yml) instead of starting one; default $ACMELITE_TEST_PEBBLE_URL",
    )
    group.addoption(
        "--acme-pebble-ca",
        metavar="PEM",
        default=None,
        help="CA bundle that verifies that Pebble's HTTPS; default $ACMELITE_TEST_PEBBLE_CA",
    )
    group.addoption(
        "--acme-require-pebble",
        action="store_true",
        help="fail, instead of skip, a test that needs Pebble when it is missing "
        "(also when CI=true)",
    )
    group.addoption(
        "--acme-require-bind",
        action="store_true",
        help="fail, instead of skip, a test that needs BIND when it is missing (also when CI=true)",
    )


def in_ci() -> bool:
    """Whether ``CI`` says this is a CI run (``true``, ``1`` or ``yes``)."""
    return os.environ.get("CI", "").lower() in ("true", "1", "yes")


def skip_or_fail(message: str, *, required_by: str | None = None) -> NoReturn:
    """Skip the current test for a missing server; fail it on CI or when ``required_by``
    (the option that asked for the server) is given."""
    if in_ci():
        pytest.fail(f"{message} (CI=true, so this is a failure, not a skip)", pytrace=False)
    if required_by:
        pytest.fail(f"{message} ({required_by}, so this is a failure, not a skip)", pytrace=False)
    pytest.skip(message)


def server_missing(config: pytest.Config, server: Server, message: str) -> NoReturn:
    """Skip the current test because ``server`` is missing, or fail it when it is required."""
    option = f"--acme-require-{server}"
    skip_or_fail(message, required_by=option if config.getoption(option) else None)


@pytest.fixture(scope="session")
def acme_pebble_factory(request: pytest.FixtureRequest) -> Iterator[PebbleFactory]:
    """``factory(**PebbleServer options) -> started PebbleServer``, one per option set."""
    from acmelite.testing.binaries import PebbleNotFound
    from acmelite.testing.pebble import PebbleServer

    started: dict[str, PebbleServer] = {}

    def factory(**options: Any) -> PebbleServer:
        key = json.dumps(options, sort_keys=True, default=repr)
        if key not in started:
            try:
                started[key] = PebbleServer(**options).start()
            except PebbleNotFound as exc:
                server_missing(request.config, "pebble", str(exc))
        return started[key]

    try:
        yield factory
    finally:
        for server in started.values():
            server.stop()


@pytest.fixture(scope="session")
def acme_pebble(
    request: pytest.FixtureRequest, acme_pebble_factory: PebbleFactory
) -> Iterator[Pebble]:
    """The session's Pebble: started here, or the external one named by the options."""
    from acmelite.testing.binaries import PebbleError
    from acmelite.testing.pebble import ExternalPebble

    env = dict(os.environ)
    for option, variable in (
        ("--acme-pebble-url", "ACMELITE_TEST_PEBBLE_URL"),
        ("--acme-pebble-ca", "ACMELITE_TEST_PEBBLE_CA"),
    ):
        value = request.config.getoption(option)
        if value:
            env[variable] = str(value)
    try:
        external = ExternalPebble.from_env(env)
        if external is not None:
            external.start()
    except PebbleError as exc:
        pytest.fail(str(exc), pytrace=False)
    if external is None:
        yield acme_pebble_factory()
        return
    try:
        yield external
    finally:
        external.stop()


@pytest.fixture
def acme_client(acme_pebble: Pebble) -> Iterator[AcmeClient]:
    """An ``AcmeClient`` at ``acme_pebble`` with a new account (ES256 key), terms agreed."""
    from acmelite.client import AcmeClient
    from acmelite.keys import AccountKey

    with AcmeClient(
        acme_pebble.directory_url, AccountKey.generate(), ca_bundle=acme_pebble.ca_bundle
    ) as client:
        client.register(agree_tos=True)
        yield client


@pytest.fixture(scope="session")
def acme_bind(request: pytest.FixtureRequest) -> Iterator[BindServer]:
    """A BIND 9 for the session that takes TSIG-signed updates for the default zones."""
    from acmelite.testing.bind import BindNotFound, BindServer

    server = BindServer(recursion=True)
    try:
        server.start()
    except BindNotFound as exc:
        server_missing(request.config, "bind", str(exc))
    try:
        yield server
    finally:
        server.stop()
