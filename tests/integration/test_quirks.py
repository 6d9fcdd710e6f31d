"""The known quirks of real ACME servers, each reproduced by FaultProxy rewriting Pebble.

Every quirk comes from a CA in the field (docs/interop.md says which): a failure reported
only on the challenge, a step-ca challenge left pending with an error, authorizations valid
before the order, an order ready or valid at creation, HEAD newNonce refused, a badNonce
without a fresh nonce, an order processing for minutes, a single-use EAB key, long chains,
a directory without profiles, HTTP 501 for a missing operation, an identifier limit. Each
test checks what acmelite does about it, including the message.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from cryptography import x509

from acmelite import AccountKey, AcmeClient, AuthorizationFailed, DeadlineExceeded, InvalidInput
from acmelite.accounts import ExternalAccountBinding
from acmelite.challenges import ChallengeTask
from acmelite.errors import BadNonceError, ProtocolError, UnsupportedOperation
from acmelite.keys import generate_private_key
from acmelite.solvers.http01 import StandaloneSolver
from acmelite.testing.pebble import PebbleServer
from acmelite.testing.proxy import Fault, FaultProxy, On
from tests.conftest import PebbleFactory
from tests.integration.test_accounts import EAB_KEYS, HS256_KEY
from tests.support import CliResult, issue_argv, run_cli, verify_chain

#: Far below --timeout: tells "failed as soon as the CA said so" from "waited it out".
FAIL_FAST = 45.0
ERROR = {"type": "urn:ietf:params:acme:error:connection", "detail": "injected: no route"}


@pytest.fixture(scope="module")
def quiet(pebble_factory: PebbleFactory) -> PebbleServer:
    """No random badNonce and no Retry-After: request counts depend on acmelite alone."""
    return pebble_factory(nonce_reject=0, va_nosleep=True, retry_after_order=0, retry_after_authz=0)


@pytest.fixture(scope="module")
def reuse(pebble_factory: PebbleFactory) -> PebbleServer:
    """Pebble that reuses valid authorizations (as Let's Encrypt does for 30 days)."""
    return pebble_factory(nonce_reject=0, va_nosleep=True, authz_reuse=100)


@pytest.fixture
def proxy(request: pytest.FixtureRequest) -> Iterator[FaultProxy]:
    """A FaultProxy in front of the Pebble named by the test's ``upstream`` parameter
    (default ``quiet``)."""
    name = getattr(request, "param", "quiet")
    upstream: PebbleServer = request.getfixturevalue(name)
    with FaultProxy(upstream.directory_url, upstream_ca_bundle=upstream.ca_bundle) as running:
        running.upstream_pebble = upstream  # type: ignore[attr-defined]
        yield running


def pebble_of(proxy: FaultProxy) -> PebbleServer:
    upstream: PebbleServer = proxy.upstream_pebble  # type: ignore[attr-defined]
    return upstream


class Recorder(StandaloneSolver):
    """The standalone solver, remembering which names each ``perform`` got."""

    def __init__(self, port: int) -> None:
        super().__init__(port=port, address="127.0.0.1")
        self.performed: list[list[str]] = []

    def perform(self, tasks: Sequence[ChallengeTask]) -> None:
        self.performed.append([t.name for t in tasks])
        super().perform(tasks)


def client(
    proxy: FaultProxy, *, validation_time: float | None = None, **options: object
) -> AcmeClient:
    c = AcmeClient(
        proxy.directory_url,
        AccountKey.generate(),
        ca_bundle=proxy.ca_bundle,
        **options,  # type: ignore[arg-type]
    )
    if validation_time is not None:
        c.validation_time = validation_time
    c.register(agree_tos=True)
    return c


def solver(proxy: FaultProxy) -> Recorder:
    return Recorder(pebble_of(proxy).http_port)


def kinds(proxy: FaultProxy) -> list[str]:
    return [f"{e.method} {proxy.kind_of(e.path)}" for e in proxy.requests]


def cli(
    proxy: FaultProxy, tmp: Path, capsys: pytest.CaptureFixture[str], name: str, *extra: str
) -> CliResult:
    """``acmelite issue -d NAME EXTRA...`` through the proxy."""
    argv = issue_argv(
        pebble_of(proxy), tmp, name, directory_url=proxy.directory_url, ca_bundle=proxy.ca_bundle
    )
    return run_cli([*argv, *extra], capsys)


def last_line(result: CliResult) -> str:
    return result.err.strip().splitlines()[-1]


# -- failure detection ------------------------------------------------------------------------


def test_challenge_answered_invalid_fails_at_once(proxy: FaultProxy) -> None:
    """The challenge POST says ``invalid`` (the order would stay pending at such a CA)."""
    proxy.inject(
        Fault.patch_json(
            set_fields={"status": "invalid", "error": ERROR}, on=On(kind="challenge", times=None)
        )
    )
    with client(proxy) as c, pytest.raises(AuthorizationFailed) as info:
        c.issue(["invalid-chal.acmelite.test"], solver=solver(proxy), timeout=300)
    (problem,) = info.value.problems
    assert (problem.identifier, problem.short_type) == ("invalid-chal.acmelite.test", "connection")
    assert str(info.value) == (
        "validation failed for invalid-chal.acmelite.test: invalid-chal.acmelite.test:"
        " connection: injected: no route"
    )
    assert "POST order" not in kinds(proxy)  # known from the answer: no poll needed


@pytest.mark.parametrize("status", ["invalid", "deactivated", "expired", "revoked"])
def test_failed_authorization_of_an_order_that_never_fails(proxy: FaultProxy, status: str) -> None:
    """The order stays ``pending`` for ever; its authorization says what happened. After
    2 x validation_time without a change acmelite looks at the authorizations."""
    proxy.inject(
        Fault.patch_json(
            set_fields={"status": "pending"},
            remove_fields=("error",),
            where={"status": ("ready", "invalid")},
            on=On(kind="order", times=None),
        )
    )
    chal = {"type": "http-01", "url": "https://ca/chal", "status": "invalid", "error": ERROR}
    proxy.inject(
        Fault.patch_json(
            set_fields={"status": status, "challenges": [chal]},
            on=On(kind="authz", nth=2, times=None),
        )
    )
    start = time.monotonic()
    with client(proxy, validation_time=0.5) as c, pytest.raises(AuthorizationFailed) as info:
        c.issue(["stalled.acmelite.test"], solver=solver(proxy), timeout=300)
    assert time.monotonic() - start < FAIL_FAST
    (problem,) = info.value.problems
    assert problem.identifier == "stalled.acmelite.test"
    note = "" if status == "invalid" else f" (authorization {status})"
    assert problem.detail == f"injected: no route{note}"
    seen = kinds(proxy)
    assert seen.count("POST authz") == 2  # before answering, and once the order stalled
    assert seen.index("POST order") < len(seen) - 1 - seen[::-1].index("POST authz")


def test_step_ca_pending_with_error_is_retried_twice_then_fails(proxy: FaultProxy) -> None:
    """step-ca leaves an unreachable challenge ``pending`` with an error and validates again
    only when POSTed again: two more POSTs, then the error, within seconds. (The proxy
    plays step-ca: Pebble never sees the challenge POSTs, so its order stays pending.)"""
    chal = {"type": "http-01", "url": "https://ca/chal", "status": "pending", "error": ERROR}
    proxy.inject(Fault.respond(chal, on=On(kind="challenge", times=None)))
    start = time.monotonic()
    with client(proxy) as c, pytest.raises(AuthorizationFailed) as info:
        c.issue(["step.acmelite.test"], solver=solver(proxy), timeout=300)
    assert time.monotonic() - start < FAIL_FAST
    assert str(info.value) == (
        "validation failed for step.acmelite.test: step.acmelite.test: connection:"
        " injected: no route (still failing after 3 attempts)"
    )
    assert kinds(proxy).count("POST challenge") == 3


def test_processing_with_error_is_reported_at_the_deadline(proxy: FaultProxy) -> None:
    """RFC 8555 §8.2: a CA retrying by itself keeps the challenge ``processing`` with an
    error. acmelite waits for it until the deadline, then says what the CA last said."""
    chal = {"type": "http-01", "url": "https://ca/chal", "status": "processing", "error": ERROR}
    proxy.inject(Fault.respond(chal, on=On(kind="challenge", times=None)))
    proxy.inject(
        Fault.patch_json(
            set_fields={"status": "pending", "challenges": [chal]},
            on=On(kind="authz", nth=2, times=None),
        )
    )
    with client(proxy, validation_time=0.5) as c, pytest.raises(DeadlineExceeded) as info:
        c.issue(["retrying.acmelite.test"], solver=solver(proxy), timeout=4)
    text = str(info.value)
    assert text.startswith("order https://127.0.0.1:") and "still pending at the deadline:" in text
    assert text.endswith(
        "retrying.acmelite.test: challenge processing, authorization pending;"
        " the CA's last error: connection: injected: no route"
    )


def test_cli_names_every_failed_identifier_one_line_each(
    proxy: FaultProxy, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    proxy.inject(
        Fault.patch_json(
            set_fields={"status": "invalid", "error": ERROR}, on=On(kind="challenge", times=None)
        )
    )
    names = ["one.lines.test", "two.lines.test", "three.lines.test"]
    argv = issue_argv(
        pebble_of(proxy),
        tmp_path,
        *names,
        directory_url=proxy.directory_url,
        ca_bundle=proxy.ca_bundle,
    )
    result = run_cli(argv, capsys)
    assert result.code == 1
    tail = result.err.strip().splitlines()[-4:]
    head = "acmelite: error: validation failed for "
    assert tail[0].startswith(head) and tail[0].endswith(":")
    assert sorted(tail[0][len(head) : -1].split(", ")) == sorted(names)  # in the CA's order
    assert sorted(tail[1:]) == sorted(f"  {n}: connection: injected: no route" for n in names)


# -- authorizations and orders that need nothing ----------------------------------------------


@pytest.mark.parametrize("proxy", ["reuse"], indirect=True)
def test_valid_authorizations_are_skipped(proxy: FaultProxy) -> None:
    """Pre-validated authorizations (Sectigo; any CA reusing them) get no challenge and no
    solver call, even when their challenges are odd: no URL, a type of the CA's own."""
    with client(proxy) as c:
        c.issue(["first.reuse.test"], solver=solver(proxy))
        proxy.reset_counts()
        proxy.inject(
            Fault.patch_json(
                set_fields={"challenges": [{"type": "sectigo-email-01", "status": "valid"}]},
                where={"status": "valid"},
                on=On(kind="authz", times=None),
            )
        )
        recorder = solver(proxy)
        c.issue(["first.reuse.test", "second.reuse.test"], solver=recorder)
    assert recorder.performed == [["second.reuse.test"]]
    assert kinds(proxy).count("POST authz") == 2
    assert kinds(proxy).count("POST challenge") == 1


@pytest.mark.parametrize("proxy", ["reuse"], indirect=True)
def test_order_ready_at_creation(proxy: FaultProxy) -> None:
    with client(proxy) as c:
        c.issue(["ready.reuse.test"], solver=solver(proxy))
        proxy.reset_counts()
        recorder = solver(proxy)
        bundle = c.issue(["ready.reuse.test"], solver=recorder)
    assert recorder.performed == []
    seen = kinds(proxy)
    assert "POST authz" not in seen and "POST challenge" not in seen
    assert seen[:2] == ["POST newOrder", "POST finalize"]
    assert bundle.names == ("ready.reuse.test",)


def test_order_valid_at_creation(proxy: FaultProxy) -> None:
    """A CA answering newOrder with an order it finished before: its certificate is used
    when it is for this key, and refused, saying why, when it is not."""
    key = generate_private_key("ec256")
    with client(proxy) as c:
        first = c.issue(["again.acmelite.test"], solver=solver(proxy), private_key=key)
        proxy.inject(
            Fault.patch_json(
                set_fields={"status": "valid", "certificate": first.certificate_url},
                on=On(kind="newOrder", times=None),
            )
        )
        proxy.reset_counts()
        recorder = solver(proxy)
        again = c.issue(["again.acmelite.test"], solver=recorder, private_key=key)
        assert again.cert_pem == first.cert_pem
        assert recorder.performed == []
        assert kinds(proxy) == ["POST newOrder", "POST certificate"]
        with pytest.raises(ProtocolError, match="whose certificate is for another key"):
            c.issue(["again.acmelite.test"], solver=recorder)


# -- nonces -----------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [404, 405])
def test_head_new_nonce_refused_then_get(proxy: FaultProxy, status: int) -> None:
    proxy.inject(Fault.error(status, problem_type="", on=On(method="HEAD", times=None)))
    with client(proxy) as c:  # registering needs the first nonce
        c.issue(["get-nonce.acmelite.test"], solver=solver(proxy))
        assert c.transport.new_nonce_method == "GET"
    counts = proxy.counts()
    assert counts[("HEAD", "newNonce")] == 1  # asked once, then never again
    assert counts[("GET", "newNonce")] >= 1


def test_bad_nonce_without_a_fresh_one_fetches_one(proxy: FaultProxy) -> None:
    """A badNonce without Replay-Nonce: the pool is emptied and a new nonce fetched."""
    with client(proxy) as c:
        c.transport.nonces.put("stale-nonce-from-before")
        proxy.reset_counts()
        injected = proxy.inject(Fault.bad_nonce(fresh_nonce=False, on=On(kind="newOrder")))
        c.issue(["fresh-nonce.acmelite.test"], solver=solver(proxy))
    assert injected.hits == 1
    assert kinds(proxy)[:3] == ["POST newOrder", "HEAD newNonce", "POST newOrder"]


def test_bad_nonce_storm_is_bounded(proxy: FaultProxy) -> None:
    proxy.inject(Fault.bad_nonce(on=On(kind="newOrder", times=None)))
    with client(proxy) as c:
        c.transport.max_bad_nonce = 5
        proxy.reset_counts()
        with pytest.raises(BadNonceError):
            c.issue(["storm.acmelite.test"], solver=solver(proxy))
    assert proxy.counts()[("POST", "newOrder")] == 6


# -- an order processing for minutes ----------------------------------------------------------

STUCK = On(method="POST", path="^/(my-order|finalize-order)/", times=None)


@pytest.mark.parametrize("retry_after", [None, 1])
def test_processing_is_bounded_by_the_timeout(
    proxy: FaultProxy, tmp_path: Path, capsys: pytest.CaptureFixture[str], retry_after: int | None
) -> None:
    headers = {} if retry_after is None else {"Retry-After": str(retry_after)}
    proxy.inject(
        Fault.patch_json(
            set_fields={"status": "processing"},
            remove_fields=("certificate",),
            where={"status": "valid"},
            headers=headers,
            on=STUCK,
        )
    )
    start = time.monotonic()
    result = cli(proxy, tmp_path, capsys, "slow.acmelite.test", "--timeout", "4")
    assert time.monotonic() - start < FAIL_FAST
    assert result.code == 1
    line = last_line(result)
    assert line.startswith(f"acmelite: error: the CA is still processing order {proxy.url}/")
    asked = "; it asked to be polled again in 1 s" if retry_after else ""
    assert line.endswith(
        f" (slow.acmelite.test) at the deadline{asked}; it may still issue the certificate later"
    )


class FakeTime:
    """A clock that jumps forward by each sleep, so minutes of polling take no time."""

    def __init__(self) -> None:
        self.offset = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return time.monotonic() + self.offset

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.offset += seconds


@pytest.mark.parametrize(("retry_after", "polls"), [(30, 3), (None, 20)])
def test_processing_for_minutes_is_waited_out(
    proxy: FaultProxy, retry_after: int | None, polls: int
) -> None:
    """ZeroSSL keeps orders ``processing`` for minutes: no limit but the deadline."""
    headers = {} if retry_after is None else {"Retry-After": str(retry_after)}
    proxy.inject(
        Fault.patch_json(
            set_fields={"status": "processing"},
            remove_fields=("certificate",),
            where={"status": "valid"},
            headers=headers,
            on=On(method="POST", path="^/(my-order|finalize-order)/", times=polls),
        )
    )
    fake = FakeTime()
    with client(proxy, clock=fake.clock, sleep=fake.sleep) as c:
        bundle = c.issue(["minutes.acmelite.test"], solver=solver(proxy), timeout=600)
    assert bundle.names == ("minutes.acmelite.test",)
    assert sum(fake.sleeps) > 60
    if retry_after:
        assert fake.sleeps[-polls:] == [30.0] * polls


# -- external account binding -----------------------------------------------------------------


@pytest.fixture(scope="module")
def eab_upstream(pebble_factory: PebbleFactory) -> PebbleServer:
    return pebble_factory(eab_required=True, eab_mac_keys=EAB_KEYS, nonce_reject=0)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--eab-kid", "kid hs256", "--eab-hmac-key", HS256_KEY], "spaces or control"),
        (["--eab-kid", "kid-hs256\n", "--eab-hmac-key", HS256_KEY], "spaces or control"),
        (["--eab-kid", HS256_KEY, "--eab-hmac-key", HS256_KEY], "are the same text"),
        (["--eab-kid", "kid-hs256", "--eab-hmac-key", "c2hvcnQ"], "needs at least 32"),
        (
            ["--eab-kid", "kid-hs256", "--eab-hmac-key", HS256_KEY, "--eab-hmac-alg", "HS512"],
            "HS512 needs at least 64",
        ),
        (
            ["--eab-kid", "kid-hs256", "--eab-hmac-key", HS256_KEY, "--email", "a@x.test,b@x"],
            "is not one e-mail address",
        ),
    ],
)
@pytest.mark.parametrize("proxy", ["eab_upstream"], indirect=True)
def test_eab_mistakes_never_reach_the_ca(
    proxy: FaultProxy,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    flags: list[str],
    message: str,
) -> None:
    """Google Trust Services' EAB keys are single-use: a refused newAccount may burn one."""
    argv = [
        "account",
        "register",
        "--server",
        proxy.directory_url,
        "--ca-bundle",
        proxy.ca_bundle,
        "--account-key",
        str(tmp_path / "account.key"),
        "--agree-tos",
        *flags,
    ]
    result = run_cli(argv, capsys)
    assert result.code == 1
    assert message in last_line(result), last_line(result)
    assert HS256_KEY not in result.err or flags[1] == HS256_KEY
    # The CLI looks the key's account up first (onlyReturnExisting, no EAB): that spends
    # nothing. The EAB credentials are checked when parsed, the contacts before newAccount.
    lookups = 1 if "--email" in flags else 0
    assert proxy.counts()[("POST", "newAccount")] == lookups


@pytest.mark.parametrize("proxy", ["eab_upstream"], indirect=True)
def test_eab_without_agreeing_to_the_terms_is_refused_before_sending(proxy: FaultProxy) -> None:
    eab = ExternalAccountBinding(kid="kid-hs256", hmac_key=HS256_KEY)
    with AcmeClient(proxy.directory_url, AccountKey.generate(), ca_bundle=proxy.ca_bundle) as c:
        with pytest.raises(InvalidInput, match=r"terms of service .* a new account must agree"):
            c.register(eab=eab)
        assert ("POST", "newAccount") not in proxy.counts()
        assert c.register(eab=eab, agree_tos=True).status == "valid"


# -- chains -----------------------------------------------------------------------------------


@pytest.mark.parametrize("length", [2, 3, 4])
def test_long_chains_are_kept_whole_and_in_order(
    pebble_factory: PebbleFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str], length: int
) -> None:
    """Let's Encrypt has served 3- and 4-certificate chains (cross-signs)."""
    pebble = pebble_factory(chain_length=length)
    result = run_cli(issue_argv(pebble, tmp_path, "long.chain.test"), capsys)
    assert result.code == 0, result.err
    out = tmp_path / "out"
    full = x509.load_pem_x509_certificates((out / "fullchain.pem").read_bytes())
    chain = x509.load_pem_x509_certificates((out / "chain.pem").read_bytes())
    assert len(full) == length + 1
    assert chain == full[1:]
    assert (out / "fullchain.pem").read_bytes() == (out / "cert.pem").read_bytes() + (
        out / "chain.pem"
    ).read_bytes()
    for child, parent in itertools.pairwise(full):
        assert child.issuer == parent.subject
    verify_chain((out / "fullchain.pem").read_bytes(), pebble.roots(), "long.chain.test")


def _issuer_names(out: Path) -> list[str]:
    certs = x509.load_pem_x509_certificates((out / "fullchain.pem").read_bytes())
    return [c.issuer.rfc4514_string().removeprefix("CN=") for c in certs]


def test_preferred_chain_matches_any_issuer_in_the_chain(
    pebble_factory: PebbleFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pebble = pebble_factory(chain_length=4, alternate_roots=1)
    roots = [
        x509.load_pem_x509_certificate(pebble.roots(i).encode()).subject.rfc4514_string()
        for i in (0, 1)
    ]
    top = roots[1].removeprefix("CN=")
    first = run_cli(
        [*issue_argv(pebble, tmp_path, "top.chain.test"), "--preferred-chain", top], capsys
    )
    assert first.code == 0, first.err
    alternate = _issuer_names(tmp_path / "out")
    assert alternate[-1] == top
    middle = alternate[2]  # an intermediate's issuer only the alternate chain has
    argv = issue_argv(pebble, tmp_path, "middle.chain.test", out="middle")
    second = run_cli([*argv, "--preferred-chain", middle], capsys)
    assert second.code == 0, second.err
    assert _issuer_names(tmp_path / "middle")[-1] == top
    verify_chain(
        (tmp_path / "middle" / "fullchain.pem").read_bytes(), pebble.roots(1), "middle.chain.test"
    )


# -- profiles, 501, identifier limits ---------------------------------------------------------


def test_profile_at_a_ca_without_profiles_is_refused_before_the_order(
    proxy: FaultProxy, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    proxy.inject(Fault.patch_json(set_fields={"meta": {}}, on=On(kind="directory", times=None)))
    result = cli(proxy, tmp_path, capsys, "no-profiles.acmelite.test", "--profile", "default")
    assert result.code == 1
    assert last_line(result) == (
        f"acmelite: error: profile 'default': this CA offers no profiles ({proxy.directory_url}"
        " lists none in meta.profiles); leave the profile out"
    )
    assert ("POST", "newOrder") not in proxy.counts()


def test_order_without_its_profile_is_reported(
    proxy: FaultProxy, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    proxy.inject(Fault.patch_json(remove_fields=("profile",), on=On(kind="newOrder")))
    result = cli(proxy, tmp_path, capsys, "silent.acmelite.test", "--profile", "shortlived")
    assert result.code == 0, result.err
    assert "does not say which profile it has (asked for 'shortlived')" in result.err


def test_order_with_another_profile_is_refused(
    proxy: FaultProxy, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    proxy.inject(Fault.patch_json(set_fields={"profile": "default"}, on=On(kind="newOrder")))
    result = cli(proxy, tmp_path, capsys, "changed.acmelite.test", "--profile", "shortlived")
    assert result.code == 1
    line = last_line(result)
    assert line.startswith("acmelite: error: asked for profile 'shortlived', the CA made order")
    assert line.endswith("with profile 'default'")
    assert not (tmp_path / "out").exists()


def test_key_change_answered_501(
    proxy: FaultProxy, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """step-ca's 501 carries the type ``rejectedIdentifier``: the status decides."""
    base = [
        "--server",
        proxy.directory_url,
        "--ca-bundle",
        proxy.ca_bundle,
        "--account-key",
        str(tmp_path / "account.key"),
    ]
    assert run_cli(["account", "register", "--agree-tos", *base], capsys).code == 0
    proxy.inject(
        Fault.error(
            501,
            problem_type="urn:ietf:params:acme:error:rejectedIdentifier",
            detail="The requested operation is not implemented",
            on=On(kind="keyChange"),
        )
    )
    result = run_cli(["account", "rollover", *base], capsys)
    assert result.code == 1
    assert last_line(result) == (
        "acmelite: error: the CA does not implement key change (account key rollover, RFC 8555"
        " §7.3.5) (HTTP 501: rejectedIdentifier: The requested operation is not implemented)"
    )


def test_revocation_answered_501(proxy: FaultProxy) -> None:
    with client(proxy) as c:
        bundle = c.issue(["no-revoke.acmelite.test"], solver=solver(proxy))
        notimpl = "urn:ietf:params:acme:error:notImplemented"
        proxy.inject(Fault.error(501, problem_type=notimpl, on=On(kind="revokeCert")))
        with pytest.raises(UnsupportedOperation) as info:
            c.revoke_certificate(bundle.certificate)
    assert info.value.operation == "revocation"
    assert str(info.value).startswith("the CA does not implement revocation (HTTP 501:")


@pytest.mark.parametrize(
    ("detail", "expected"),
    [
        (
            "Order cannot contain more than 2 DNS names",
            "the CA accepts at most 2 identifiers per order, this order has 3",
        ),
        (
            "too many identifiers in this order",
            "the CA refused the order as having too many identifiers, this order has 3",
        ),
    ],
)
def test_identifier_limit(
    proxy: FaultProxy,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    detail: str,
    expected: str,
) -> None:
    proxy.inject(
        Fault.error(
            400,
            problem_type="urn:ietf:params:acme:error:rejectedIdentifier",
            detail=detail,
            on=On(kind="newOrder"),
        )
    )
    argv = issue_argv(
        pebble_of(proxy),
        tmp_path,
        "a.limit.test",
        "b.limit.test",
        "c.limit.test",
        directory_url=proxy.directory_url,
        ca_bundle=proxy.ca_bundle,
    )
    result = run_cli(argv, capsys)
    assert result.code == 1
    assert last_line(result) == (
        f"acmelite: error: {expected}: split the names over several certificates"
        f" (the CA said: rejectedIdentifier: {detail})"
    )
