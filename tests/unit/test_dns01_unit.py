"""DNS-01 pieces without a DNS server: parsing, options, canned answers, error messages.

The solvers against a real BIND are in tests/integration/test_dns01.py.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping

import dns.message
import dns.rdatatype
import pytest

from acmelite.challenges import ChallengeTask
from acmelite.dns.propagation import Expectation, PropagationSettings, wait_for_txt
from acmelite.dns.query import Lookup, Server, parse_server
from acmelite.dns.zone import find_zone, follow_cname, nameservers
from acmelite.errors import DnsQueryError, InvalidInput, SolverError
from acmelite.models import Challenge, Identifier
from acmelite.solvers.hook import HookSolver
from acmelite.solvers.rfc2136 import Rfc2136Solver

SECRET = "c3VwZXItc2VjcmV0LXRzaWcta2V5LW1hdGVyaWFsLTEyMzQ="


# -- servers and settings --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "host", "port"),
    [
        ("127.0.0.1", "127.0.0.1", 53),
        ("127.0.0.1:5353", "127.0.0.1", 5353),
        ("ns1.example.test:54", "ns1.example.test", 54),
        ("[::1]:5353", "::1", 5353),
        ("[2001:db8::53]", "2001:db8::53", 53),
        ("2001:db8::53", "2001:db8::53", 53),
        (" ns1.example.test ", "ns1.example.test", 53),
    ],
)
def test_parse_server(text: str, host: str, port: int) -> None:
    assert parse_server(text) == Server(host, port)


@pytest.mark.parametrize("text", ["", ":53", "host:", "host:0", "host:70000", "host:x", "[::1"])
def test_parse_server_rejects(text: str) -> None:
    with pytest.raises(InvalidInput, match="bad DNS server"):
        parse_server(text)


def test_server_text_names_label_and_address() -> None:
    assert str(Server("192.0.2.1", 53, "ns1.example.test")) == "ns1.example.test (192.0.2.1:53)"
    assert str(Server("2001:db8::1", 5353)) == "[2001:db8::1]:5353"


@pytest.mark.parametrize(
    "options",
    [{"timeout": -1}, {"poll_interval": 0}, {"poll_interval": 3}, {"resolver": "x:0"}],
)
def test_propagation_settings_are_checked(options: Mapping[str, object]) -> None:
    with pytest.raises(InvalidInput):
        PropagationSettings(**options)  # type: ignore[arg-type]


def test_timeout_zero_disables_the_check() -> None:
    assert not PropagationSettings(timeout=0).enabled
    assert PropagationSettings().enabled
    assert PropagationSettings(resolver="127.0.0.1:5353").resolver_server == Server(
        "127.0.0.1", 5353
    )


# -- the rfc2136 solver keeps its secret -----------------------------------------------------


def test_rfc2136_repr_and_key_repr_hide_the_secret() -> None:
    solver = Rfc2136Solver("127.0.0.1:5353", "acme-key", SECRET, zone="Example.TEST")
    assert repr(solver) == (
        "Rfc2136Solver(server='127.0.0.1:5353', tsig_key_name='acme-key.', "
        "tsig_algorithm='hmac-sha256', zone='example.test.', ttl=60)"
    )
    assert SECRET not in repr(solver._key)
    assert "redacted" in repr(solver._key)
    assert solver.challenge_type == "dns-01"


def test_rfc2136_bad_secret_is_refused_without_echoing_it() -> None:
    bad = "not base64 but a secret!"
    with pytest.raises(InvalidInput) as caught:
        Rfc2136Solver("127.0.0.1", "acme-key", bad)
    assert str(caught.value) == "the TSIG secret for key 'acme-key' is not valid base64"
    assert bad not in str(caught.value)
    with pytest.raises(InvalidInput, match="is empty"):
        Rfc2136Solver("127.0.0.1", "acme-key", "  ")


def test_rfc2136_rejects_unknown_algorithm_and_bad_ttl() -> None:
    with pytest.raises(InvalidInput, match="unknown TSIG algorithm 'hmac-sha3'"):
        Rfc2136Solver("127.0.0.1", "k", SECRET, tsig_algorithm="hmac-sha3")
    with pytest.raises(InvalidInput, match="bad TTL"):
        Rfc2136Solver("127.0.0.1", "k", SECRET, ttl=-1)
    sha512 = Rfc2136Solver("127.0.0.1", "k", SECRET, tsig_algorithm="HMAC-SHA512.")
    assert sha512.tsig_algorithm == "hmac-sha512"


# -- the hook solver -------------------------------------------------------------------------


def test_hook_command_is_split_like_a_shell_would() -> None:
    solver = HookSolver("/usr/local/bin/dns hook --provider 'my cloud'")
    assert solver.command == ("/usr/local/bin/dns", "hook", "--provider", "my cloud")
    assert HookSolver(["a b", "c"]).command == ("a b", "c")
    bad_commands: list[str | list[str]] = ["", "   ", [], "'unclosed"]
    for bad in bad_commands:
        with pytest.raises(InvalidInput):
            HookSolver(bad)


def _task(name: str, challenge_type: str = "dns-01") -> ChallengeTask:
    return ChallengeTask(
        identifier=Identifier(type="dns", value=name.removeprefix("*.")),
        challenge=Challenge(
            type=challenge_type, url="https://ca.test/c/1", status="pending", token="tok"
        ),
        key_authorization="tok.thumb",
        wildcard=name.startswith("*."),
    )


def test_solver_refuses_other_challenge_types_and_cleans_up_nothing_unpublished() -> None:
    solver = HookSolver(["false"], propagation=PropagationSettings(timeout=0))
    with pytest.raises(InvalidInput, match="answers dns-01, not http-01"):
        solver.perform([_task("example.test", "http-01")])
    solver.cleanup([_task("example.test")])  # perform never published: nothing to run


# -- canned answers: CNAME chains, zone cuts, nameservers ------------------------------------


class CannedLookup(Lookup):
    """Answers from a table of ``(name, type) -> message text``; NXDOMAIN otherwise."""

    def __init__(
        self, answers: Mapping[tuple[str, str], str], *, authoritative: bool = True
    ) -> None:
        super().__init__([Server("192.0.2.1")])
        self.answers = answers
        self.flags = "QR AA" if authoritative else "QR"
        self.asked: list[tuple[str, str]] = []

    def ask(self, name: str, rdtype: dns.rdatatype.RdataType) -> dns.message.Message:
        key = (name, dns.rdatatype.to_text(rdtype))
        self.asked.append(key)
        text = self.answers.get(key, "rcode NXDOMAIN")
        return dns.message.from_text(f"id 1\nflags {self.flags}\n{text}\n")


def test_follow_cname_to_the_end_of_the_chain() -> None:
    lookup = CannedLookup({
        ("_acme-challenge.a.test.", "CNAME"):
            ";ANSWER\n_acme-challenge.a.test. 60 IN CNAME x.b.test.",
        ("x.b.test.", "CNAME"): ";ANSWER\nx.b.test. 60 IN CNAME Y.C.TEST.",
        ("y.c.test.", "CNAME"): "rcode NOERROR",
    })  # fmt: skip
    assert follow_cname(lookup, "_acme-challenge.A.test") == "y.c.test."
    assert follow_cname(CannedLookup({}), "_acme-challenge.a.test.") == "_acme-challenge.a.test."


def test_follow_cname_detects_loops_and_long_chains() -> None:
    loop = CannedLookup({
        ("a.test.", "CNAME"): ";ANSWER\na.test. 60 IN CNAME b.test.",
        ("b.test.", "CNAME"): ";ANSWER\nb.test. 60 IN CNAME a.test.",
    })  # fmt: skip
    with pytest.raises(DnsQueryError, match=r"CNAME loop: a.test. -> b.test. -> a.test."):
        follow_cname(loop, "a.test.")
    chain = CannedLookup(
        {
            (f"n{i}.test.", "CNAME"): f";ANSWER\nn{i}.test. 60 IN CNAME n{i + 1}.test."
            for i in range(20)
        }
    )
    with pytest.raises(DnsQueryError, match=r"more than 3 CNAMEs from n0\.test\."):
        follow_cname(chain, "n0.test.", max_hops=3)


def test_find_zone_from_negative_answers_apex_and_referrals() -> None:
    soa = "60 IN SOA ns.example.test. h.example.test. 1 3600 600 86400 60"
    negative = CannedLookup({
        ("_acme-challenge.www.example.test.", "SOA"): f";AUTHORITY\nexample.test. {soa}",
    })  # fmt: skip
    assert find_zone(negative, "_acme-challenge.www.example.test.") == "example.test."
    walk = CannedLookup({
        ("_acme-challenge.x.example.test.", "SOA"): "rcode NOERROR",
        ("x.example.test.", "SOA"): "rcode NOERROR",
        ("example.test.", "SOA"): f";ANSWER\nexample.test. {soa}",
    })  # fmt: skip
    assert find_zone(walk, "_acme-challenge.x.example.test.") == "example.test."
    assert [name for name, _ in walk.asked] == [
        "_acme-challenge.x.example.test.", "x.example.test.", "example.test."
    ]  # fmt: skip
    referral = CannedLookup(
        {("_acme-challenge.sub.example.test.", "SOA"):
            ";AUTHORITY\nsub.example.test. 60 IN NS ns.other.test."},
        authoritative=False,
    )  # fmt: skip
    assert find_zone(referral, "_acme-challenge.sub.example.test.") == "sub.example.test."
    with pytest.raises(DnsQueryError, match=r"no SOA record found at or above a\.test\."):
        find_zone(CannedLookup({}), "a.test.")


def test_nameservers_use_glue_then_lookups_and_prefer_ipv4() -> None:
    lookup = CannedLookup({
        ("example.test.", "NS"): (
            ";ANSWER\nexample.test. 60 IN NS ns2.example.test.\n"
            "example.test. 60 IN NS ns1.example.test.\n"
            ";ADDITIONAL\nns1.example.test. 60 IN A 192.0.2.1"
        ),
        ("ns2.example.test.", "A"): "rcode NOERROR",
        ("ns2.example.test.", "AAAA"): ";ANSWER\nns2.example.test. 60 IN AAAA 2001:db8::2",
    })  # fmt: skip
    found = nameservers(lookup, "example.test.", port=5353)
    assert [str(s) for s in found] == [
        "ns1.example.test (192.0.2.1:5353)",
        "ns2.example.test ([2001:db8::2]:5353)",
    ]
    with pytest.raises(DnsQueryError, match=r"no NS records found for zone nothing\.test\."):
        nameservers(CannedLookup({}), "nothing.test.")


# -- the propagation wait: deadline and message ----------------------------------------------


@pytest.fixture
def closed_port() -> int:
    """A loopback UDP port where nothing listens: every query times out."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def test_wait_for_txt_times_out_naming_record_values_and_servers(closed_port: int) -> None:
    now = [0.0]
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(round(seconds, 3))
        now[0] += seconds

    expectation = Expectation(
        record="_acme-challenge.example.test.",
        values=frozenset({"bbb", "aaa"}),
        servers=(Server("127.0.0.1", closed_port, "ns1.example.test"),),
        identifiers=("example.test", "*.example.test"),
    )
    settings = PropagationSettings(
        timeout=1.0, poll_interval=0.1, max_poll_interval=0.3, query_timeout=0.02
    )
    with pytest.raises(SolverError) as caught:
        wait_for_txt([expectation], settings, clock=lambda: now[0], sleep=sleep)
    message = str(caught.value)
    assert message.startswith(
        "DNS propagation timed out after 1 s: _acme-challenge.example.test. TXT 'aaa', 'bbb' "
        f"still missing at ns1.example.test (127.0.0.1:{closed_port}) (last query: "
    )
    assert caught.value.identifiers == ("example.test", "*.example.test")
    assert sleeps[:4] == [0.1, 0.15, 0.225, 0.3]
    assert sum(sleeps) == pytest.approx(1.0)


def test_wait_for_txt_with_nothing_to_check_returns_at_once() -> None:
    wait_for_txt([], PropagationSettings(timeout=1), sleep=lambda _: pytest.fail("slept"))
