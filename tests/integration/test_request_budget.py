"""Request minimality as a tested property (issue 7; budget in docs/performance.md).

A new account plus one issuance, counted at a TLS proxy in front of Pebble, with Pebble's
nonce rejection and validation sleeps off and no ``Retry-After`` (so only acmelite's own
choices decide the count). The fixed part must match exactly — one directory fetch, one
newNonce (every later nonce comes from the previous response), newAccount, newOrder, one
fetch per authorization, one POST per challenge, finalize, certificate — and each of the
two polling phases may take one or two order fetches (the CA's timing decides which), never
an authorization poll. Any extra request fails the test.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from acmelite import AccountKey, AcmeClient
from acmelite.solvers.http01 import StandaloneSolver
from acmelite.testing import PebbleServer
from acmelite.testing.proxy import FaultProxy
from tests.conftest import PebbleFactory
from tests.support import issue_argv, run_cli


def _argv(
    proxy: FaultProxy, pebble: PebbleServer, tmp: Path, *names: str, out: str = "out"
) -> list[str]:
    """``issue`` through the counting proxy, so every request is seen."""
    return issue_argv(
        pebble, tmp, *names, out=out, directory_url=proxy.directory_url, ca_bundle=proxy.ca_bundle
    )


#: Order fetches allowed in each polling phase (after the challenges, after finalize).
MAX_POLLS = 2


@pytest.fixture(scope="module")
def quiet_pebble(pebble_factory: PebbleFactory) -> PebbleServer:
    return pebble_factory(nonce_reject=0, va_nosleep=True, retry_after_order=0, retry_after_authz=0)


@pytest.fixture(scope="module")
def proxy(quiet_pebble: PebbleServer) -> Iterator[FaultProxy]:
    with FaultProxy(
        quiet_pebble.directory_url, upstream_ca_bundle=quiet_pebble.ca_bundle
    ) as counting:
        yield counting


def _kinds(proxy: FaultProxy, expected: int | None = None) -> list[str]:
    """Every request as ``"METHOD kind"``, in order; all must have succeeded.

    The proxy records a request once its answer is sent, so the client can be done a moment
    before the last record: wait for ``expected`` records, or until no new one comes.
    """
    deadline = time.monotonic() + 5
    seen = -1
    while time.monotonic() < deadline:
        now = len(proxy.requests)
        if now == expected or (expected is None and now == seen):
            break
        seen = now
        time.sleep(0.05)
    failed = [e for e in proxy.requests if not 200 <= e.status < 300]
    assert not failed, f"requests that did not succeed: {failed}"
    return [f"{e.method} {proxy.kind_of(e.path)}" for e in proxy.requests]


def assert_budget(kinds: list[str], names: int) -> None:
    counts = Counter(kinds)
    fixed = {
        "GET directory": 1,
        "HEAD newNonce": 1,
        "POST newAccount": 1,
        "POST newOrder": 1,
        "POST authz": names,
        "POST challenge": names,
        "POST finalize": 1,
        "POST certificate": 1,
    }
    polls = counts.pop("POST order", 0)
    assert dict(counts) == fixed, f"request budget broken: {kinds}"
    finalize_at = kinds.index("POST finalize")
    before = kinds[:finalize_at].count("POST order")
    after = kinds[finalize_at:].count("POST order")
    assert 1 <= before <= MAX_POLLS, f"{before} order polls before finalize: {kinds}"
    assert 1 <= after <= MAX_POLLS, f"{after} order polls after finalize: {kinds}"
    assert before + after == polls
    # The story in order: account, order, authorizations, challenges, polls, finalize, cert.
    assert kinds[:4] == ["GET directory", "HEAD newNonce", "POST newAccount", "POST newOrder"]
    assert kinds[4 : 4 + names] == ["POST authz"] * names
    assert kinds[4 + names : 4 + 2 * names] == ["POST challenge"] * names
    assert kinds[-1] == "POST certificate"


@pytest.mark.parametrize("count", [1, 10])
def test_library_new_account_and_issuance(
    proxy: FaultProxy, quiet_pebble: PebbleServer, count: int
) -> None:
    names = [f"budget{i}.lib{count}.acmelite.test" for i in range(count)]
    proxy.reset_counts()
    with AcmeClient(
        proxy.directory_url, AccountKey.generate(), ca_bundle=proxy.ca_bundle
    ) as client:
        client.register(agree_tos=True)
        client.issue(
            names, solver=StandaloneSolver(port=quiet_pebble.http_port, address="127.0.0.1")
        )
        sent = client.transport.request_count
    kinds = _kinds(proxy, expected=sent)
    assert_budget(kinds, count)
    assert sent == len(kinds), "Transport.request_count disagrees with the proxy"


@pytest.mark.parametrize("count", [1, 10])
def test_cli_new_account_and_issuance(
    proxy: FaultProxy,
    quiet_pebble: PebbleServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    count: int,
) -> None:
    names = [f"budget{i}.cli{count}.acmelite.test" for i in range(count)]
    argv = [*_argv(proxy, quiet_pebble, tmp_path, *names), "-q"]
    proxy.reset_counts()
    result = run_cli(argv, capsys)
    assert result.code == 0, result.err
    assert_budget(_kinds(proxy), count)


def test_known_account_costs_no_account_request(
    proxy: FaultProxy,
    quiet_pebble: PebbleServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A second CLI run with the same key: the stored account URL replaces newAccount."""
    first = _argv(proxy, quiet_pebble, tmp_path, "again.acmelite.test", out="one")
    assert run_cli([*first, "-q"], capsys).code == 0
    proxy.reset_counts()
    second = _argv(proxy, quiet_pebble, tmp_path, "again.acmelite.test", out="two")
    result = run_cli([*second, "-q"], capsys)
    assert result.code == 0, result.err
    kinds = _kinds(proxy)
    assert "POST newAccount" not in kinds
    assert_budget(["GET directory", "HEAD newNonce", "POST newAccount", *kinds[2:]], 1)


GOOD = [
    "GET directory",
    "HEAD newNonce",
    "POST newAccount",
    "POST newOrder",
    "POST authz",
    "POST challenge",
    "POST order",
    "POST finalize",
    "POST order",
    "POST certificate",
]


@pytest.mark.parametrize(
    "broken",
    [
        [*GOOD[:2], "HEAD newNonce", *GOOD[2:]],  # a nonce not taken from a response
        ["GET directory", *GOOD],  # a second directory fetch
        [*GOOD[:6], "POST authz", *GOOD[6:]],  # polling the authorization
        [*GOOD[:7], "POST order", "POST order", *GOOD[7:]],  # three polls before finalize
        [*GOOD[:6], *GOOD[7:]],  # finalize without looking first
    ],
)
def test_the_budget_check_catches_an_extra_request(broken: list[str]) -> None:
    assert_budget(GOOD, 1)
    with pytest.raises(AssertionError):
        assert_budget(broken, 1)
