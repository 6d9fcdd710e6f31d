"""Name validation, IDNA conversion and RFC 9525 matching (acmelite.names)."""

from __future__ import annotations

import string

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from acmelite.errors import InvalidInput
from acmelite.models import Identifier
from acmelite.names import (
    MAX_IDENTIFIERS,
    covering_sans,
    explain_miss,
    is_ip,
    is_wildcard,
    matches,
    normalize_name,
    parse_identifiers,
    was_converted,
)

CLUSTER = "api-2-0-4.team-ns.svc.clusterset.local"
# example.com in fullwidth forms (U+FF45 ...), built here to keep the source plain ASCII.
FULLWIDTH = "".join(chr(ord(c) + 0xFEE0) for c in "example.com")

# --- normalize_name -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given_name", "expected"),
    [
        ("example.com", "example.com"),
        ("  WWW.Example.COM  ", "www.example.com"),
        ("example.com.", "example.com"),
        ("*.Example.com", "*.example.com"),
        ("a-b.c-d.example", "a-b.c-d.example"),
        ("123.example", "123.example"),
        ("bücher.example", "xn--bcher-kva.example"),
        ("Bücher.Example.", "xn--bcher-kva.example"),
        ("xn--bcher-kva.example", "xn--bcher-kva.example"),
        ("XN--BCHER-KVA.example", "xn--bcher-kva.example"),
        ("*.bücher.example", "*.xn--bcher-kva.example"),
        # Non-transitional: ß stays ß (IDNA2003 would give strasse.de, another domain).
        ("straße.de", "xn--strae-oqa.de"),
        (FULLWIDTH, "example.com"),
        ("例え.テスト", "xn--r8jz45g.xn--zckzah"),
        ("u\u0308ber.example", "xn--ber-goa.example"),  # NFC composes u + diaeresis
        (CLUSTER, CLUSTER),
    ],
)
def test_normalize_valid(given_name: str, expected: str) -> None:
    assert normalize_name(given_name) == expected


@pytest.mark.parametrize(
    ("bad", "rule"),
    [
        ("", "the name is empty"),
        ("   ", "the name is empty"),
        ("a..example", "empty label"),
        (".example.com", "empty label"),
        ("example.com..", "empty label"),
        (".", "empty label"),
        ("a" * 64 + ".example", "64 octets long, more than 63"),
        (".".join(["a" * 60] * 5), "octets long, more than 253"),
        ("-abc.example", "starts or ends with a hyphen"),
        ("abc-.example", "starts or ends with a hyphen"),
        ("a_b.example", "other than letters, digits and '-': '_'"),
        ("a b.example", "other than letters, digits and '-'"),
        ("exa!mple.com", "'!'"),
        ("f*.example.com", "only as the whole leftmost label"),
        ("www.*.example.com", "only as the whole leftmost label"),
        ("*.*.example.com", "only as the whole leftmost label"),
        ("example.*", "only as the whole leftmost label"),
        ("*", "needs a domain"),
        ("*.", "needs a domain"),
        ("ab--cd.example", "reserved for 'xn--'"),
        ("xn--.example", "starts or ends with a hyphen"),
        ("xn--bcher-kva-.example", "starts or ends with a hyphen"),
        ("xn--zz.example", "not a valid Punycode A-label"),
        ("xn--a.example", "not a valid Punycode A-label"),
        ("xn--abc.example", "not a valid Punycode A-label"),  # decodes to ASCII
        ("1.2.3.400", "last label is all digits"),
        ("a\u2603b.example", "U+2603"),  # snowman: a symbol, not a letter
        ("\u0301a.example", "starts with a combining mark"),
    ],
)
def test_normalize_invalid(bad: str, rule: str) -> None:
    with pytest.raises(InvalidInput) as info:
        normalize_name(bad)
    message = str(info.value)
    assert rule in message
    assert message.startswith("invalid name ")
    assert "\n" not in message


def test_error_names_the_name() -> None:
    with pytest.raises(InvalidInput, match=r"'bad_name\.example'"):
        normalize_name(" bad_name.example ")


def test_length_limits_are_inclusive() -> None:
    label63 = "a" * 63
    assert normalize_name(f"{label63}.example") == f"{label63}.example"
    name253 = ".".join(["a" * 63] * 3 + ["b" * 61])
    assert len(name253) == 253
    assert normalize_name(name253 + ".") == name253
    with pytest.raises(InvalidInput, match="254 octets"):
        normalize_name(name253 + "b")


def test_idn_label_length_counts_the_a_label() -> None:
    # 60 'ü' is short as text but its A-label is far over 63 octets.
    with pytest.raises(InvalidInput, match="more than 63"):
        normalize_name("ü" * 60 + ".example")


def test_invalid_input_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="empty label"):
        normalize_name("a..b")


# --- parse_identifiers --------------------------------------------------------------------


def test_parse_identifiers_kinds_and_order() -> None:
    got = parse_identifiers(
        ["www.example.com", "192.0.2.1", "2001:DB8:0:0::1", "[::1]", "Bücher.example"]
    )
    assert got == [
        Identifier(type="dns", value="www.example.com"),
        Identifier(type="ip", value="192.0.2.1"),
        Identifier(type="ip", value="2001:db8::1"),
        Identifier(type="ip", value="::1"),
        Identifier(type="dns", value="xn--bcher-kva.example"),
    ]


def test_parse_identifiers_merges_duplicates_keeping_first_order() -> None:
    got = parse_identifiers(
        [
            "b.example",
            "a.example",
            "B.EXAMPLE.",
            "bücher.example",
            "xn--bcher-kva.example",
            "2001:db8::1",
            "2001:0db8:0000::0001",
            "a.example",
        ]
    )
    assert [i.value for i in got] == [
        "b.example",
        "a.example",
        "xn--bcher-kva.example",
        "2001:db8::1",
    ]


def test_parse_identifiers_wildcard_and_base_are_distinct() -> None:
    got = parse_identifiers(["example.com", "*.example.com"])
    assert [i.value for i in got] == ["example.com", "*.example.com"]


def test_parse_identifiers_empty() -> None:
    with pytest.raises(InvalidInput, match="no names given"):
        parse_identifiers([])


def test_parse_identifiers_limit() -> None:
    names = [f"n{i}.example" for i in range(MAX_IDENTIFIERS)]
    assert len(parse_identifiers(names)) == MAX_IDENTIFIERS
    # Duplicates do not count against the limit.
    assert len(parse_identifiers([*names, "N0.example"])) == MAX_IDENTIFIERS
    with pytest.raises(InvalidInput, match=r"101 distinct names .* at most 100"):
        parse_identifiers([*names, "one-more.example"])


def test_parse_identifiers_bad_name_fails_whole_list() -> None:
    with pytest.raises(InvalidInput, match=r"'bad\.\.name'"):
        parse_identifiers(["ok.example", "bad..name"])


def test_parse_identifiers_refuses_zone_index() -> None:
    with pytest.raises(InvalidInput, match="zone index"):
        parse_identifiers(["fe80::1%eth0"])


def test_is_ip() -> None:
    assert is_ip("10.0.0.1")
    assert is_ip("[2001:db8::1]")
    assert not is_ip("10.0.0.256")
    assert not is_ip("example.com")


def test_is_wildcard() -> None:
    assert is_wildcard("*.example.com")
    assert is_wildcard(" *.example.com")
    assert not is_wildcard("example.com")
    assert not is_wildcard("f*.example.com")


def test_was_converted() -> None:
    assert was_converted("bücher.example", "xn--bcher-kva.example")
    assert was_converted(FULLWIDTH, "example.com")
    assert not was_converted("Example.COM.", "example.com")
    assert not was_converted(" example.com ", "example.com")


# --- matches ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("hostname", "san", "expected"),
    [
        (CLUSTER, "*.svc.clusterset.local", False),
        (CLUSTER, "*.team-ns.svc.clusterset.local", True),
        (CLUSTER, CLUSTER, True),
        (CLUSTER, "*.dev.aws.cloud.us.local", False),
        ("www.example.com", "www.example.com", True),
        ("WWW.Example.com", "www.EXAMPLE.com.", True),
        ("www.example.com", "*.example.com", True),
        ("WWW.EXAMPLE.COM", "*.Example.Com", True),
        ("example.com", "*.example.com", False),  # zero labels
        ("a.b.example.com", "*.example.com", False),  # two labels
        ("foo.example.com", "f*.example.com", False),  # partial label
        ("foo.example.com", "*o.example.com", False),
        ("foo.example.com", "foo.*.com", False),
        ("foo.example.com", "*", False),
        ("www.example.com", "example.com", False),
        ("example.com", "www.example.com", False),
        ("www.example.com", "www.example.org", False),
        ("xexample.com", "*.example.com", False),
        ("bücher.example", "xn--bcher-kva.example", True),
        ("xn--bcher-kva.example", "bücher.example", True),
        ("shop.bücher.example", "*.xn--bcher-kva.example", True),
        ("xn--bcher-kva.example", "*.example", True),
        ("*.example.com", "*.example.com", True),
        ("*.example.com", "www.example.com", False),
        ("*.a.example.com", "*.example.com", False),
        ("192.0.2.1", "192.0.2.1", True),
        ("2001:db8::1", "2001:0DB8:0::1", True),
        ("[2001:db8::1]", "2001:db8::1", True),
        ("192.0.2.1", "192.0.2.2", False),
        ("192.0.2.1", "*.0.2.1", False),  # a wildcard never matches an IP
        ("192.0.2.1", "*.2.1", False),
        ("a_b.example", "a_b.example", True),  # odd ASCII names match only themselves
        ("a_b.example", "*.example", True),
        ("a_b.example", "*.other", False),
        ("bad..name", "bad..name", False),
        ("", "", False),
    ],
)
def test_matches(hostname: str, san: str, expected: bool) -> None:
    assert matches(hostname, san) is expected


def test_covering_sans() -> None:
    assert covering_sans(CLUSTER) == (CLUSTER, "*.team-ns.svc.clusterset.local")
    assert covering_sans("WWW.Example.com.") == ("www.example.com", "*.example.com")
    assert covering_sans("bücher.shop.example") == (
        "xn--bcher-kva.shop.example",
        "*.shop.example",
    )
    assert covering_sans("example.com") == ("example.com", None)
    assert covering_sans("localhost") == ("localhost", None)
    assert covering_sans("192.0.2.1") == ("192.0.2.1", None)
    assert covering_sans("[2001:db8::0:1]") == ("2001:db8::1", None)
    assert covering_sans("*.example.com") == ("*.example.com", None)
    with pytest.raises(InvalidInput):
        covering_sans("bad..name")


def test_covering_sans_both_match() -> None:
    for host in (CLUSTER, "a.b.c.d.example", "bücher.shop.example"):
        for san in covering_sans(host):
            assert san is not None
            assert matches(host, san)


@pytest.mark.parametrize(
    ("hostname", "san", "explanation"),
    [
        (
            CLUSTER,
            "*.svc.clusterset.local",
            "*.svc.clusterset.local covers one label before svc.clusterset.local; "
            "this name has two (api-2-0-4.team-ns)",
        ),
        (
            "a.b.c.example.com",
            "*.example.com",
            "*.example.com covers one label before example.com; this name has three (a.b.c)",
        ),
        (
            "example.com",
            "*.example.com",
            "*.example.com covers one label before example.com, not example.com itself",
        ),
        (
            "foo.example.com",
            "f*.example.com",
            "f*.example.com is a partial-label wildcard; clients accept '*' only as the whole "
            "leftmost label (RFC 9525 §6.3)",
        ),
        (
            "192.0.2.1",
            "*.0.2.1",
            "*.0.2.1 is a wildcard, and a wildcard never matches an IP address",
        ),
        (
            "www.example.com",
            "example.com",
            "example.com covers only itself, not names under it such as www.example.com",
        ),
        (
            "example.com",
            "www.example.com",
            "www.example.com is a name under example.com, not example.com itself",
        ),
        (
            "example.com",
            "*.a.example.com",
            "*.a.example.com covers names under a.example.com; example.com is above it",
        ),
        (
            "*.example.com",
            "www.example.com",
            "www.example.com covers only itself; the wildcard *.example.com needs the SAN "
            "*.example.com",
        ),
        (
            "*.a.example.com",
            "*.example.com",
            "*.example.com is a different wildcard than *.a.example.com",
        ),
    ],
)
def test_explain_miss(hostname: str, san: str, explanation: str) -> None:
    assert explain_miss(hostname, san) == explanation


@pytest.mark.parametrize(
    ("hostname", "san"),
    [
        (CLUSTER, "*.team-ns.svc.clusterset.local"),  # it matches: nothing to explain
        (CLUSTER, CLUSTER),
        (CLUSTER, "*.dev.aws.cloud.us.local"),  # unrelated, no near miss
        ("www.example.com", "www.example.org"),
        ("192.0.2.1", "192.0.2.2"),
        ("bad..name", "*.name"),
    ],
)
def test_explain_miss_none(hostname: str, san: str) -> None:
    assert explain_miss(hostname, san) is None


# --- properties ---------------------------------------------------------------------------

_LDH_LABEL = st.text(string.ascii_letters + string.digits + "-", min_size=1, max_size=20)


@settings(max_examples=500, deadline=None)
@given(st.text())
def test_any_text_normalizes_or_raises_invalid_input(text: str) -> None:
    try:
        result = normalize_name(text)
    except InvalidInput as exc:
        message = str(exc)
    else:
        _assert_valid(result)
        assert normalize_name(result) == result
        return
    assert message.startswith("invalid name ")


@settings(max_examples=300, deadline=None)
@given(st.lists(_LDH_LABEL, min_size=1, max_size=6), st.booleans())
def test_ldh_names_normalize_or_raise(labels: list[str], wildcard: bool) -> None:
    name = ".".join((["*"] if wildcard else []) + labels)
    try:
        result = normalize_name(name)
    except InvalidInput:
        return
    _assert_valid(result)
    assert result == name.lower()


@settings(max_examples=300, deadline=None)
@given(st.text(), st.text())
def test_matching_never_raises(hostname: str, san: str) -> None:
    assert isinstance(matches(hostname, san), bool)
    explanation = explain_miss(hostname, san)
    assert explanation is None or isinstance(explanation, str)


@settings(max_examples=300, deadline=None)
@given(st.lists(_LDH_LABEL.map(str.lower), min_size=3, max_size=6))
def test_covering_sans_cover_and_parent_wildcard_does_not(labels: list[str]) -> None:
    name = ".".join(labels)
    assume(not is_ip(name))  # 0.0.0.0 is an address: no wildcard covers it
    try:
        exact, wildcard = covering_sans(name)
    except InvalidInput:
        return
    assert matches(name, exact)
    assert wildcard is not None
    assert matches(name, wildcard)
    grandparent = "*." + ".".join(labels[2:])
    assert not matches(name, grandparent)
    assert explain_miss(name, grandparent) is not None


def _assert_valid(result: str) -> None:
    assert result == result.lower()
    assert result.isascii()
    assert 0 < len(result) <= 253
    labels = result.split(".")
    if labels[0] == "*":
        labels = labels[1:]
    assert labels
    for label in labels:
        assert 0 < len(label) <= 63
        assert set(label) <= set(string.ascii_lowercase + string.digits + "-")
        assert not label.startswith("-")
        assert not label.endswith("-")
