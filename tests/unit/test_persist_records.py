"""dns-persist-01 records without a network: the RFC 8659 issue-value grammar (property
tests), building, and every verdict of :func:`acmelite.persist.evaluate`."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from acmelite.errors import InvalidInput
from acmelite.persist import (
    PersistRecord,
    RecordSyntaxError,
    Requirement,
    build_records,
    choose_issuer,
    evaluate,
    parse_issue_value,
    parse_record,
    persist_tasks,
    record_name,
)

NOW = dt.datetime(2026, 6, 1, tzinfo=dt.timezone.utc)
ACCOUNT = "https://ca.example/acct/123"
ISSUER = "authority.example"

_label = st.from_regex(r"[A-Za-z0-9](?:-{0,2}[A-Za-z0-9]){0,6}", fullmatch=True)
issuers = st.lists(_label, min_size=1, max_size=4).map(".".join)
values = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters=";"),
                 max_size=40)  # fmt: skip
uris = st.from_regex(r"https://[a-z0-9.]{1,20}/acct/[A-Za-z0-9_-]{1,20}", fullmatch=True)
wsp = st.text(" \t", max_size=3)


def _records() -> st.SearchStrategy[PersistRecord]:
    return st.builds(
        PersistRecord,
        issuer=issuers,
        account_uri=uris,
        policy=st.sampled_from(["", "wildcard", "WildCard", "other"]),
        persist_until=st.one_of(st.none(), st.integers(min_value=0, max_value=2**40)),
        extra=st.lists(
            st.tuples(_label.filter(lambda t: t.lower() not in {"accounturi", "policy",
                                                                "persistuntil"}), values),
            max_size=3, unique_by=lambda p: p[0].lower(),
        ).map(lambda pairs: tuple((t.lower(), v) for t, v in pairs)),
    )  # fmt: skip


@settings(max_examples=120, deadline=None)
@given(_records())
def test_a_record_reads_back_as_itself(record: PersistRecord) -> None:
    text = record.to_text()
    assert parse_record(text) == record
    assert "".join(record.strings()) == text
    assert all(len(s.encode()) <= 255 for s in record.strings())


@settings(max_examples=120, deadline=None)
@given(_records(), st.data())
def test_white_space_and_tag_case_do_not_matter(record: PersistRecord, data: st.DataObject) -> None:
    parts = record.to_text().split("; ")
    pieces = [data.draw(wsp) + parts[0] + data.draw(wsp)]
    for part in parts[1:]:
        tag, _, value = part.partition("=")
        tag = "".join(c.upper() if data.draw(st.booleans()) else c for c in tag)
        pieces.append(f"{data.draw(wsp)}{tag}{data.draw(wsp)}={data.draw(wsp)}{value}")
    text = ";".join(pieces) + data.draw(wsp)
    assert parse_record(text) == record


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=80))
def test_any_text_parses_or_is_a_syntax_error(text: str) -> None:
    try:
        issuer, pairs = parse_issue_value(text)
    except RecordSyntaxError:
        return
    assert issuer == issuer.lower()
    assert len({tag for tag, _ in pairs}) == len(pairs)


@pytest.mark.parametrize(
    ("text", "issuer", "pairs"),
    [
        ("ca.example", "ca.example", ()),
        ("ca.example;", "ca.example", ()),
        (";", "", ()),
        ("  CA.Example ; accounturi = https://x/1 ", "ca.example", (("accounturi", "https://x/1"),)),
        ("ca.example; a=; b=2", "ca.example", (("a", ""), ("b", "2"))),
    ],
)  # fmt: skip
def test_issue_value_examples(text: str, issuer: str, pairs: tuple[tuple[str, str], ...]) -> None:
    assert parse_issue_value(text) == (issuer, pairs)


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("ca.example; accounturi=https://x/1;", "not an RFC 8659 issue-value"),  # trailing ;
        ("ca..example", "not an RFC 8659 issue-value"),
        ("-ca.example", "not an RFC 8659 issue-value"),
        ("ca.example accounturi=x", "not an RFC 8659 issue-value"),
        ("ca.example; accounturi=a b", "not an RFC 8659 issue-value"),
        ("ca.example; AccountURI=x; accounturi=y", "given twice"),
        ("ca.example; policy=wildcard", "no accounturi"),
        ("; accounturi=https://x/1", "no issuer"),
        ("ca.example; accounturi=https://x/1; persistUntil=-1", "not a UNIX time"),
        ("ca.example; accounturi=https://x/1; persistUntil=soon", "not a UNIX time"),
    ],
)
def test_what_is_no_record(text: str, why: str) -> None:
    with pytest.raises(RecordSyntaxError, match=why):
        parse_record(text)


def test_unknown_parameters_are_kept_and_ignored() -> None:
    record = parse_record(f"{ISSUER}; accounturi={ACCOUNT}; future-thing=1")
    assert record.extra == (("future-thing", "1"),)
    verdict = evaluate([record.to_text()], Requirement(name="x.test", account_uri=ACCOUNT), now=NOW)
    assert verdict.valid == record


def test_the_drafts_examples_parse() -> None:
    # draft-ietf-acme-dns-persist §4 and §4.1: the strings of the TXT record joined.
    basic = parse_record("authority.example; accounturi=https://ca.example/acct/123")
    assert (basic.issuer, basic.account_uri, basic.wildcard) == (
        "authority.example", "https://ca.example/acct/123", False
    )  # fmt: skip
    two = parse_record(
        "ca2.example; accounturi=https://ca2.example/acme/acct/67890; persistUntil=1767225600"
    )
    assert two.expires == dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)


def test_building_merges_a_name_and_its_wildcard() -> None:
    until = dt.datetime(2027, 1, 1, tzinfo=dt.timezone.utc)
    records = build_records(["www.x.test", "*.x.test", "x.test"], account_url=ACCOUNT,
                            issuer=ISSUER, until=until)  # fmt: skip
    assert list(records) == ["www.x.test", "x.test"]
    assert records["x.test"].to_text() == (
        f"{ISSUER}; accounturi={ACCOUNT}; policy=wildcard; persistUntil={int(until.timestamp())}"
    )
    assert not records["www.x.test"].wildcard
    assert record_name("*.X.test") == "_validation-persist.x.test."
    (task,) = persist_tasks({"x.test": records["x.test"]})
    assert task.dns_record == "_validation-persist.x.test."
    assert task.dns_value == records["x.test"].to_text()


def test_a_long_record_is_split_for_the_zone_file() -> None:
    record = PersistRecord(issuer=ISSUER, account_uri="https://ca.example/acct/" + "a" * 300)
    assert [len(s) for s in record.strings()] == [255, len(record.to_text()) - 255]
    line = record.zone_line("x.test")
    assert line.startswith('_validation-persist.x.test. IN TXT "authority.example; ')
    assert line.count('" "') == 1


def test_choosing_the_issuer() -> None:
    assert choose_issuer(["a.example", "b.example"]) == "a.example"
    assert choose_issuer(["a.example", "b.example"], "B.example.") == "b.example"
    assert choose_issuer([], "own.example") == "own.example"
    with pytest.raises(InvalidInput, match=r"issuer c.example is not one the CA accepts"):
        choose_issuer(["a.example"], "c.example")
    with pytest.raises(InvalidInput, match="names no issuer domain name"):
        choose_issuer([])


# -- evaluate: each wrong record, and the right one among others ------------------------


def need(name: str = "x.test", *, account: str = ACCOUNT) -> Requirement:
    return Requirement(name=name, account_uri=account, issuers=(ISSUER,))


def good(**fields: object) -> str:
    return PersistRecord(issuer=ISSUER, account_uri=ACCOUNT, **fields).to_text()  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("found", "requirement", "problem"),
    [
        ([], need(), "no record"),
        ([good().replace(ACCOUNT, "https://ca.example/acct/9")], need(),
         f"accounturi is https://ca.example/acct/9, this run is account {ACCOUNT}"),
        ([good().replace(ISSUER, "ca.example")], need(),
         f"issuer ca.example is not one the CA accepts ({ISSUER})"),
        ([good()], need("*.x.test"),
         "a wildcard was requested but the record lacks policy=wildcard"),
        ([good(policy="other")], need("*.x.test"),
         "a wildcard was requested but the record lacks policy=wildcard"),
        ([good(persist_until=int(NOW.timestamp()) - 86400)], need(),
         "persistUntil passed on 2026-05-31 00:00 UTC"),
        ([f"{ISSUER}; accounturi={ACCOUNT}; persistUntil=tomorrow"], need(),
         f"malformed record for issuer {ISSUER}: persistUntil 'tomorrow' is not a UNIX time"),
    ],
)  # fmt: skip
def test_each_wrong_record_says_what_is_wrong(
    found: list[str], requirement: Requirement, problem: str
) -> None:
    verdict = evaluate(found, requirement, now=NOW)
    assert verdict.valid is None
    assert verdict.problems == (problem,)


def test_the_right_record_among_others_counts() -> None:
    found = [
        good().replace(ISSUER, "other-ca.example"),
        good().replace(ACCOUNT, "https://ca.example/acct/9"),
        good(policy="WILDCARD"),
    ]
    verdict = evaluate(found, need("*.x.test"), now=NOW)
    assert verdict.valid is not None and verdict.valid.wildcard
    assert verdict.problems == ()


def test_of_two_valid_records_the_longer_lasting_counts() -> None:
    soon = int((NOW + dt.timedelta(days=5)).timestamp())
    later = int((NOW + dt.timedelta(days=400)).timestamp())
    found = [good(persist_until=soon), good(persist_until=later)]
    verdict = evaluate(found, need(), now=NOW)
    assert verdict.valid is not None and verdict.valid.persist_until == later
    assert verdict.warnings == ()
    forever = evaluate([good(persist_until=later), good()], need(), now=NOW)
    assert forever.valid is not None and forever.valid.persist_until is None


def test_a_record_that_expires_soon_is_valid_with_a_warning() -> None:
    soon = int((NOW + dt.timedelta(days=12)).timestamp())
    verdict = evaluate([good(persist_until=soon)], need(), now=NOW)
    assert verdict.valid is not None
    (warning,) = verdict.warnings
    assert "expires on 2026-06-13 00:00 UTC (persistUntil, in 12 days)" in warning
    later = int((NOW + dt.timedelta(days=31)).timestamp())
    assert evaluate([good(persist_until=later)], need(), now=NOW).warnings == ()


def test_without_issuers_any_issuer_is_accepted() -> None:
    verdict = evaluate([good()], Requirement(name="x.test", account_uri=ACCOUNT), now=NOW)
    assert verdict.valid is not None


def test_a_record_missing_at_two_nameservers_names_both() -> None:
    from acmelite.dns.persist import _merge
    from acmelite.dns.query import Server
    from acmelite.persist import Verdict

    ns1, ns2 = Server("192.0.2.53", 53, "ns1.x.test"), Server("198.51.100.53", 53, "ns2.x.test")
    missing = evaluate([], need(), now=NOW)
    report = _merge("x.test", "_validation-persist.x.test.", "_validation-persist.x.test.",
                    {ns1: missing, ns2: missing})  # fmt: skip
    assert not report.ok
    assert report.line() == (
        "x.test (_validation-persist.x.test.): no record at ns1.x.test (192.0.2.53:53) and"
        " ns2.x.test (198.51.100.53:53)"
    )
    # Served by one nameserver only: not ready, the CA may ask the other.
    one = _merge("x.test", "r.", "r.", {ns1: evaluate([good()], need(), now=NOW), ns2: missing})
    assert one.valid is None
    assert one.problems == ("no record at ns2.x.test (198.51.100.53:53)",)
    both = _merge("x.test", "r.", "r.", {ns1: Verdict(valid=parse_record(good())),
                                         ns2: Verdict(valid=parse_record(good()))})  # fmt: skip
    assert both.ok
