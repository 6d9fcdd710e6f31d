"""The ``acmelite`` pytest plugin, as another project's pytest sees it.

Each test runs pytest in a subprocess (``pytester``) in a scratch directory, with the plugin
loaded through its ``pytest11`` entry point like in any project that installed acmelite. The
full example of docs/testing.md runs in ``test_packaging.py``, against the built wheel.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from acmelite.testing import INSTALL_COMMAND, Pebble, free_port
from tests.conftest import PebbleFactory

NO_PEBBLE_TEST = """
def test_needs_pebble(acme_pebble):
    raise AssertionError("must not run without Pebble")
"""


@pytest.fixture
def no_pebble(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """An environment without any Pebble: nothing set, an empty cache, a PATH without it."""
    for name in ("ACMELITE_PEBBLE_BIN", "ACMELITE_TEST_PEBBLE_URL", "CI"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("PATH", os.pathsep.join(("/usr/local/bin", "/usr/bin", "/bin")))


def test_the_plugin_is_loaded_from_its_entry_point(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess("--help")

    result.stdout.fnmatch_lines(["*acmelite: ACME tests against Pebble and BIND*"])
    result.stdout.fnmatch_lines(["*--acme-pebble-url=URL*"])
    result.stdout.fnmatch_lines(["*--acme-require-pebble*"])
    assert pytester.runpytest_subprocess("-p", "no:acmelite", "--help").ret == 0


def test_loading_imports_nothing_heavy_until_a_fixture_is_used(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        """
        import sys

        HEAVY = ("requests", "urllib3", "cryptography", "josepy", "dns")

        def pytest_collection_finish(session):
            loaded = sorted({m.split(".")[0] for m in sys.modules} & set(HEAVY))
            print("HEAVY AFTER COLLECTION:", ",".join(loaded) or "none")
        """
    )
    pytester.makepyfile("def test_plain():\n    assert True\n")

    result = pytester.runpytest_subprocess("-s", "-p", "acmelite")

    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["HEAVY AFTER COLLECTION: none"])


@pytest.mark.usefixtures("no_pebble")
def test_missing_pebble_skips_with_the_install_command(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(NO_PEBBLE_TEST)

    result = pytester.runpytest_subprocess("-rs")

    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines([f"*Pebble not found*`{INSTALL_COMMAND}`*"])


@pytest.mark.usefixtures("no_pebble")
@pytest.mark.parametrize(
    ("option", "env", "why"),
    [
        ("--acme-require-pebble", None, "--acme-require-pebble, so this is a failure"),
        (None, "true", "CI=true, so this is a failure"),
    ],
)
def test_missing_pebble_fails_when_required(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    option: str | None,
    env: str | None,
    why: str,
) -> None:
    if env:
        monkeypatch.setenv("CI", env)
    pytester.makepyfile(NO_PEBBLE_TEST)

    result = pytester.runpytest_subprocess(*([option] if option else []))

    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([f"*{INSTALL_COMMAND}*{why}*"])
    result.stdout.no_fnmatch_line("*must not run*")


EXTERNAL_TEST = """
from acmelite.testing import ExternalPebble

def test_external(acme_pebble, acme_client):
    assert isinstance(acme_pebble, ExternalPebble)
    assert acme_pebble.directory_url == "{url}"
    assert acme_client.directory_url == "{url}"
    assert acme_client.account_url.startswith("{base}/my-account/")
    assert "BEGIN CERTIFICATE" in acme_pebble.roots()
    acme_pebble.challtestsrv.add_a("external.example.test", "127.0.0.9")
    acme_pebble.challtestsrv.reset()
"""


def test_external_pebble_from_the_command_line(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, pebble_factory: PebbleFactory
) -> None:
    local = pebble_factory(nonce_reject=0)
    url = local.directory_url
    monkeypatch.delenv("ACMELITE_TEST_PEBBLE_URL", raising=False)
    monkeypatch.setenv("ACMELITE_PEBBLE_BIN", "/nonexistent/pebble")  # must not be needed
    monkeypatch.setenv("ACMELITE_TEST_PEBBLE_MANAGEMENT_URL", str(local.management_url))
    monkeypatch.setenv("ACMELITE_TEST_CHALLTESTSRV_URL", str(local.challtestsrv_url))
    pytester.makepyfile(EXTERNAL_TEST.format(url=url, base=url.removesuffix("/dir")))

    result = pytester.runpytest_subprocess(
        "--acme-pebble-url", url, "--acme-pebble-ca", local.ca_bundle
    )

    result.assert_outcomes(passed=1)


def test_external_pebble_that_does_not_answer_fails_naming_it(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, pebble: Pebble
) -> None:
    url = f"https://127.0.0.1:{free_port()}/dir"  # nothing listens there
    monkeypatch.setenv("ACMELITE_TEST_PEBBLE_URL", url)
    monkeypatch.setenv("ACMELITE_TEST_PEBBLE_CA", pebble.ca_bundle)
    pytester.makepyfile(NO_PEBBLE_TEST)

    result = pytester.runpytest_subprocess()

    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([f"*the external Pebble at {url} does not answer*"])


def test_external_pebble_without_its_ca_is_an_error(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ACMELITE_TEST_PEBBLE_URL", "https://localhost:14000/dir")
    monkeypatch.delenv("ACMELITE_TEST_PEBBLE_CA", raising=False)
    pytester.makepyfile(NO_PEBBLE_TEST)

    result = pytester.runpytest_subprocess()

    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*ACMELITE_TEST_PEBBLE_CA*pebble-compose.yml*"])


def test_factory_and_client_fixtures_with_a_local_pebble(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest
        from acmelite.testing import PebbleServer

        def test_factory_shares_one_server_per_setting(acme_pebble_factory):
            strict = acme_pebble_factory(nonce_reject=100)
            assert acme_pebble_factory(nonce_reject=100) is strict
            assert acme_pebble_factory(nonce_reject=0) is not strict
            assert isinstance(strict, PebbleServer) and strict.running

        def test_client_is_registered_at_the_session_pebble(acme_client, acme_pebble):
            assert acme_client.directory_url == acme_pebble.directory_url
            account = acme_client.get_account()
            assert account.status == "valid" and account.url == acme_client.account_url

        ACCOUNTS = []

        def test_one_account(acme_client):
            ACCOUNTS.append(acme_client.account_url)

        def test_each_test_gets_a_new_account(acme_client):
            ACCOUNTS.append(acme_client.account_url)
            assert len(set(ACCOUNTS)) == 2
        """
    )

    result = pytester.runpytest_subprocess("--acme-require-pebble")

    result.assert_outcomes(passed=4)
