"""DNS-01 pieces without a DNS server: parsing, options, canned answers, error messages.

The solvers against a real BIND are in tests/integration/test_dns01.py.
"""

from __future__ import annotations

import argparse
import socket
from collections.abc import Mapping
from pathlib import Path

import dns.message
import dns.rdatatype
import pytest

from acmelite.cli.dns_options import add_dns_arguments, build_dns_solver, read_tsig_key_file
from acmelite.dns.propagation import Expectation, PropagationSettings, wait_for_txt
from acmelite.dns.query import Lookup, QueryError, Server, parse_server
from acmelite.dns.zone import find_zone, follow_cname, nameservers
from acmelite.errors import InvalidInput, SolverError
from acmelite.models import Challenge, Identifier
from acmelite.solvers.base import ChallengeTask
from acmelite.solvers.dns01 import HookSolver, Rfc2136Solver, solver_from_options

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


# -- the factory and the CLI options ---------------------------------------------------------


def test_solver_from_options_names_missing_options() -> None:
    with pytest.raises(InvalidInput) as caught:
        solver_from_options(dns="rfc2136", server="127.0.0.1")
    assert str(caught.value) == (
        "--dns rfc2136 needs --tsig-key-name NAME, --tsig-secret or --tsig-secret-file"
    )
    with pytest.raises(InvalidInput, match="--dns hook needs --dns-hook CMD"):
        solver_from_options(dns="hook")
    with pytest.raises(InvalidInput, match="--dns-server go with --dns rfc2136"):
        solver_from_options(dns="hook", hook="x", server="127.0.0.1")
    with pytest.raises(InvalidInput, match="unknown DNS solver 'route53'"):
        solver_from_options(dns="route53")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="acmelite issue")
    parser.add_argument("--challenge", default="dns-01")
    add_dns_arguments(parser)
    return parser


def test_cli_builds_rfc2136_with_the_secret_from_the_environment() -> None:
    args = _parser().parse_args(
        ["--dns", "rfc2136", "--dns-server", "127.0.0.1:5353", "--tsig-key-name", "k",
         "--dns-zone", "example.test", "--dns-propagation-timeout", "0",
         "--dns-resolver", "127.0.0.1:5353"]
    )  # fmt: skip
    solver = build_dns_solver(args, environ={"ACMELITE_TSIG_SECRET": SECRET})
    assert isinstance(solver, Rfc2136Solver)
    assert solver.server == Server("127.0.0.1", 5353)
    assert solver.zone == "example.test."
    assert solver.propagation == PropagationSettings(timeout=0, resolver="127.0.0.1:5353")
    with pytest.raises(InvalidInput, match="needs --tsig-secret or --tsig-secret-file"):
        build_dns_solver(args, environ={})


def test_cli_reads_a_tsig_keygen_file(tmp_path: Path) -> None:
    key_file = tmp_path / "acme.key"
    key_file.write_text(
        'key "other" {\n\talgorithm hmac-sha256;\n\tsecret "b3RoZXI=";\n};\n'
        f'key "acmelite-example" {{\n\talgorithm hmac-sha512;\n\tsecret "{SECRET}";\n}};\n'
    )
    assert read_tsig_key_file(key_file, "acmelite-example.") == (
        "acmelite-example",
        "hmac-sha512",
        SECRET,
    )
    assert read_tsig_key_file(key_file) == ("other", "hmac-sha256", "b3RoZXI=")
    with pytest.raises(InvalidInput, match="no key 'missing'"):
        read_tsig_key_file(key_file, "missing")
    args = _parser().parse_args(
        ["--dns", "rfc2136", "--dns-server", "ns1.example.test",
         "--tsig-key-name", "acmelite-example", "--tsig-secret-file", str(key_file)]
    )  # fmt: skip
    solver = build_dns_solver(args, environ={})
    assert isinstance(solver, Rfc2136Solver)
    assert (solver.tsig_key_name, solver.tsig_algorithm) == ("acmelite-example.", "hmac-sha512")


def test_cli_reads_a_bare_secret_file_and_reports_unreadable_ones(tmp_path: Path) -> None:
    bare = tmp_path / "secret"
    bare.write_text(SECRET + "\n")
    assert read_tsig_key_file(bare) == ("", "", SECRET)
    with pytest.raises(InvalidInput, match="cannot read the TSIG secret file"):
        read_tsig_key_file(tmp_path / "missing")
    bare.write_text("two words\n")
    with pytest.raises(InvalidInput, match="neither a base64 secret nor a key clause"):
        read_tsig_key_file(bare)


def test_cli_usage_errors_exit_2_without_showing_the_secret(
    capsys: pytest.CaptureFixture[str],
) -> None:
    parser = _parser()
    args = parser.parse_args(["--dns", "rfc2136", "--tsig-secret", SECRET, "--tsig-key-name", "k"])
    with pytest.raises(SystemExit) as caught:
        build_dns_solver(args, environ={}, parser=parser)
    assert caught.value.code == 2
    err = capsys.readouterr().err
    assert "--dns rfc2136 needs --dns-server HOST[:PORT]" in err
    assert SECRET not in err
    with pytest.raises(SystemExit):
        parser.parse_args(["--dns-propagation-timeout", "-1"])
    with pytest.raises(SystemExit):
        parser.parse_args(["--tsig-secret", "a", "--tsig-secret-file", "b"])
    with pytest.raises(InvalidInput, match="needs --dns"):
        build_dns_solver(parser.parse_args([]), environ={})


def test_cli_builds_the_hook_solver() -> None:
    args = _parser().parse_args(["--dns", "hook", "--dns-hook", "/bin/hook --flag"])
    solver = build_dns_solver(args, environ={"ACMELITE_TSIG_SECRET": SECRET})
    assert isinstance(solver, HookSolver)
    assert solver.command == ("/bin/hook", "--flag")


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
    with pytest.raises(QueryError, match=r"CNAME loop: a.test. -> b.test. -> a.test."):
        follow_cname(loop, "a.test.")
    chain = CannedLookup(
        {
            (f"n{i}.test.", "CNAME"): f";ANSWER\nn{i}.test. 60 IN CNAME n{i + 1}.test."
            for i in range(20)
        }
    )
    with pytest.raises(QueryError, match=r"more than 3 CNAMEs from n0\.test\."):
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
    with pytest.raises(QueryError, match=r"no SOA record found at or above a\.test\."):
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
    with pytest.raises(QueryError, match=r"no NS records found for zone nothing\.test\."):
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
