"""Hostile input, property-tested: every server object and every name either parses or raises
an ``AcmeliteError`` — never a ``KeyError``, ``TypeError``, ``RecursionError`` or traceback.

Two kinds of input per parser: arbitrary JSON, and "nearly valid" objects — a real answer of
the kind Pebble sends with any field dropped, or replaced by arbitrary JSON, or by a
plausible but wrong value (timestamps with odd digits, offsets and dates). Identifiers get
arbitrary text and near-miss names and addresses. Counts go to the reliability ledger.
"""

from __future__ import annotations

import json
import os
import string
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from acmelite.errors import AcmeliteError, InvalidInput, Problem, ProtocolError
from acmelite.models import (
    Account,
    Authorization,
    Challenge,
    Directory,
    Identifier,
    Order,
    RenewalInfo,
)
from acmelite.names import parse_identifiers
from acmelite.transport import Response
from tests.reliability import Ledger

#: Examples per property; ACMELITE_FUZZ_EXAMPLES=5000 for a long hunt.
EXAMPLES = int(os.environ.get("ACMELITE_FUZZ_EXAMPLES", "100"))
#: Inputs tried and refused, by kind of input, for the reliability ledger.
TRIED: dict[str, tuple[int, int]] = {}

# -- strategies ------------------------------------------------------------------------------

SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30)
JSON = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)
TIMESTAMPS = st.one_of(
    st.from_regex(
        r"\A[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}"
        r"(\.[0-9]{0,15})?([Zz]|[+-][0-9]{2}:?[0-9]{2})?\Z"
    ),
    st.datetimes().map(lambda d: d.isoformat() + "Z"),
    st.text(alphabet="0123456789-:.TZz+ ٣", max_size=40),
)
URL = "https://ca.example/acme/x"
PROBLEM = {
    "type": "urn:ietf:params:acme:error:malformed",
    "detail": "no",
    "status": 400,
    "identifier": {"type": "dns", "value": "a.example"},
    "subproblems": [{"type": "urn:ietf:params:acme:error:caa", "detail": "caa"}],
}
CHALLENGE = {
    "type": "http-01",
    "url": URL,
    "status": "pending",
    "token": "tok_-",
    "validated": "2025-01-01T00:00:00Z",
    "error": PROBLEM,
}
TEMPLATES: Mapping[str, dict[str, object]] = {
    "directory": {
        "newNonce": URL,
        "newAccount": URL,
        "newOrder": URL,
        "revokeCert": URL,
        "keyChange": URL,
        "renewalInfo": URL,
        "meta": {
            "termsOfService": URL,
            "website": URL,
            "caaIdentities": ["ca"],
            "externalAccountRequired": True,
            "profiles": {"default": "90 d"},
        },
    },
    "account": {"status": "valid", "contact": ["mailto:a@example.org"], "orders": URL},
    "order": {
        "status": "pending",
        "expires": "2025-01-01T00:00:00.123456789Z",
        "identifiers": [{"type": "dns", "value": "a.example"}],
        "authorizations": [URL],
        "finalize": URL,
        "certificate": URL,
        "error": PROBLEM,
        "profile": "default",
        "replaces": "aki.serial",
    },
    "authorization": {
        "identifier": {"type": "dns", "value": "a.example"},
        "status": "pending",
        "expires": "2025-01-01T00:00:00Z",
        "challenges": [CHALLENGE],
        "wildcard": False,
    },
    "challenge": CHALLENGE,
    "problem": PROBLEM,
    "renewalInfo": {
        "suggestedWindow": {"start": "2025-01-01T00:00:00Z", "end": "2025-01-02T00:00:00Z"},
        "explanationURL": URL,
    },
    "identifier": {"type": "dns", "value": "a.example"},
}
PARSERS: Mapping[str, Callable[[object], object]] = {
    "directory": Directory.from_json,
    "account": lambda data: Account.from_json(data, url=URL),
    "order": lambda data: Order.from_json(data, url=URL),
    "authorization": lambda data: Authorization.from_json(data, url=URL),
    "challenge": Challenge.from_json,
    "problem": Problem.from_json,
    "renewalInfo": RenewalInfo.from_json,
    "identifier": Identifier.from_json,
}
MODELS: Mapping[str, type] = {
    "directory": Directory,
    "account": Account,
    "order": Order,
    "authorization": Authorization,
    "challenge": Challenge,
    "problem": Problem,
    "renewalInfo": RenewalInfo,
    "identifier": Identifier,
}


def _wrong_values(value: object) -> st.SearchStrategy[Any]:
    """The valid value, arbitrary JSON, or a plausible near miss of the same shape."""
    options: list[st.SearchStrategy[Any]] = [st.just(value), JSON]
    if isinstance(value, str):
        options.append(TIMESTAMPS)
    if isinstance(value, dict):
        options.append(_nearly(value))
    if isinstance(value, list) and value:
        options.append(st.lists(_wrong_values(value[0]), max_size=3))
    return st.one_of(options)


def _nearly(template: Mapping[str, object]) -> st.SearchStrategy[dict[str, Any]]:
    """``template`` with any field missing, wrong, or nearly right, and extra fields."""
    fields = {key: st.deferred(lambda v=value: _wrong_values(v)) for key, value in template.items()}
    extra = st.dictionaries(st.text(max_size=8), JSON, max_size=2)
    return st.builds(
        lambda base, more: {**more, **base}, st.fixed_dictionaries({}, optional=fields), extra
    )


def _inputs(kind: str) -> st.SearchStrategy[Any]:
    return st.one_of(JSON, _nearly(TEMPLATES[kind]))


def _count(what: str, *, refused: bool = False) -> None:
    """One input tried; ``refused``: answered with an AcmeliteError (else it parsed)."""
    tried, no = TRIED.get(what, (0, 0))
    TRIED[what] = (tried + 1, no + int(refused))


@pytest.fixture(scope="module", autouse=True)
def ledger() -> Iterator[None]:
    TRIED.clear()
    yield
    book = Ledger("parsing", "Hostile server objects and names (test_parsing_properties.py)")
    for what, (tried, refused) in sorted(TRIED.items()):
        book.record(what, bad_inputs=tried, recovered=tried - refused, failed_cleanly=refused)
    book.save()


# -- server objects --------------------------------------------------------------------------


def _parses_or_refuses(kind: str, data: object) -> None:
    try:
        result = PARSERS[kind](data)
    except AcmeliteError as exc:
        error: AcmeliteError | None = exc
    else:
        error = None
        assert isinstance(result, MODELS[kind])
    _count(f"{kind} objects from arbitrary and nearly valid JSON", refused=error is not None)
    if error is not None:
        assert isinstance(error, ProtocolError), repr(error)
        assert str(error) and "\n" not in str(error)


@pytest.mark.parametrize("kind", sorted(set(PARSERS) - {"problem"}))
def test_every_server_object_parses_or_raises_protocol_error(kind: str) -> None:
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(_inputs(kind))
    def check(data: object) -> None:
        _parses_or_refuses(kind, data)

    check()


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_inputs("problem"), st.none() | st.integers(100, 599))
def test_problem_documents_always_parse(data: object, status: int | None) -> None:
    """A problem document is tolerated whatever it holds: its detail must reach the user."""
    _count("problem documents from arbitrary and nearly valid JSON")
    problem = Problem.from_json(data, status=status)
    assert isinstance(problem.describe(), str)
    assert problem.status is None or type(problem.status) is int
    assert all(isinstance(v, str) for v in (problem.type, problem.detail, problem.title))


def test_deeply_nested_subproblems_do_not_exhaust_the_stack() -> None:
    text = '{"type": "urn:ietf:params:acme:error:malformed", "detail": "inner"}'
    for _ in range(400):
        text = '{"type": "urn:ietf:params:acme:error:malformed", "subproblems": [' + text + "]}"
    _count("problem documents from arbitrary and nearly valid JSON")
    problem = Problem.from_json(json.loads(text))
    assert len(problem.describe()) < 10_000


@settings(max_examples=EXAMPLES, deadline=None)
@given(st.binary(max_size=200) | JSON.map(lambda v: json.dumps(v).encode()))
def test_any_response_body_is_json_object_or_protocol_error(body: bytes) -> None:
    resp = Response(url=URL, status=200, headers={"Content-Type": "application/json"}, content=body)
    try:
        data: object = resp.json()
    except ProtocolError as exc:
        data = str(exc)
    _count("response bodies (bytes) read as JSON", refused=isinstance(data, str))
    assert isinstance(data, dict) or (isinstance(data, str) and URL in data)


@pytest.mark.parametrize("depth", [10_000, 100_000])
def test_absurdly_nested_json_is_a_protocol_error(depth: int) -> None:
    _count("response bodies (bytes) read as JSON", refused=True)
    resp = Response(url=URL, status=200, headers={}, content=b"[" * depth + b"]" * depth)
    with pytest.raises(ProtocolError, match="not JSON"):
        resp.json()


@settings(max_examples=EXAMPLES, deadline=None)
@given(st.one_of(st.text(max_size=40), TIMESTAMPS))
def test_retry_after_is_a_number_or_none(value: str) -> None:
    from acmelite.transport import parse_retry_after

    seconds = parse_retry_after(value)
    _count("Retry-After header values", refused=seconds is None)
    assert seconds is None or seconds >= 0


# -- identifiers -----------------------------------------------------------------------------

NEAR_NAMES = st.one_of(
    st.text(max_size=80),
    st.lists(
        st.text(string.ascii_letters + string.digits + "-_*.:[]%", max_size=70),
        min_size=1,
        max_size=6,
    ).map(".".join),
    st.from_regex(r"\A\[?[0-9a-fA-F:.%]{0,50}\]?\Z"),
    st.ip_addresses().map(str),
    st.text(alphabet="xn-.abcß0123456789*", max_size=30),
)


@settings(max_examples=EXAMPLES * 2, deadline=None)
@given(st.lists(NEAR_NAMES, min_size=0, max_size=4))
def test_identifiers_validate_or_raise_invalid_input(names: list[str]) -> None:
    what = "identifier lists (arbitrary text, near-miss names and addresses)"
    try:
        identifiers = parse_identifiers(names)
    except InvalidInput as exc:
        _count(what, refused=True)
        message = str(exc)
        assert message and "\n" not in message
        return
    _count(what)
    assert 1 <= len(identifiers) <= len(names)
    for ident in identifiers:
        assert ident.type in ("dns", "ip")
        assert ident.value.isascii() and ident.value == ident.value.strip()
        assert parse_identifiers([ident.value]) == [ident], "validation is idempotent"
