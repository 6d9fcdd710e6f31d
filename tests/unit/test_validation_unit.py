"""Failure detection and the interop rules, without a network: acmelite.validation, the
messages of the new errors, identifier limits, EAB checks, tolerant authorizations."""

from __future__ import annotations

import secrets

import pytest

from acmelite.accounts import ExternalAccountBinding
from acmelite.challenges import ChallengeTask
from acmelite.client import _identifier_limit
from acmelite.errors import (
    AuthorizationFailed,
    IdentifierLimitExceeded,
    InvalidInput,
    Problem,
    ProblemError,
    ProtocolError,
    UnsupportedOperation,
    is_not_implemented,
)
from acmelite.models import Authorization, Challenge, Identifier, Order
from acmelite.validation import Validation

CONN = {"type": "urn:ietf:params:acme:error:connection", "detail": "no route"}
HS256_KEY = "x" * 43  # 32 bytes of base64url


def task(name: str) -> ChallengeTask:
    token = secrets.token_urlsafe(16)
    return ChallengeTask(
        identifier=Identifier(type="dns", value=name),
        challenge=Challenge(type="http-01", url=f"https://ca/chal/{name}", status="pending"),
        key_authorization=f"{token}.thumb",
    )


def chal(name: str, status: str, error: dict[str, str] | None = None) -> Challenge:
    data: dict[str, object] = {
        "type": "http-01",
        "url": f"https://ca/chal/{name}",
        "status": status,
    }
    if error:
        data["error"] = error
    return Challenge.from_json(data)


def authz(name: str, status: str, challenges: list[dict[str, object]]) -> Authorization:
    return Authorization.from_json(
        {"identifier": {"type": "dns", "value": name}, "status": status, "challenges": challenges},
        url=f"https://ca/authz/{name}",
    )


def validation(*names: str, retries: int = 2) -> tuple[Validation, list[ChallengeTask]]:
    tasks = [task(n) for n in names]
    return Validation(tasks, [f"https://ca/authz/{n}" for n in names], retries=retries), tasks


ORDER = Order(
    url="https://ca/order/1",
    status="pending",
    identifiers=(Identifier(type="dns", value="a.test"),),
    authorizations=("https://ca/authz/a.test",),
    finalize="https://ca/finalize/1",
)


def test_an_invalid_answer_fails_its_identifier_at_once() -> None:
    v, (a, b) = validation("a.test", "b.test")
    v.answered(a, chal("a.test", "invalid", CONN))
    v.answered(b, chal("b.test", "processing"))
    (problem,) = v.failures()
    assert (problem.identifier, problem.short_type, problem.detail) == (
        "a.test",
        "connection",
        "no route",
    )
    assert v.unsettled() == ["https://ca/authz/b.test"]
    with pytest.raises(AuthorizationFailed, match=r"^validation failed for a\.test: a\.test:"):
        v.check()


def test_an_invalid_answer_without_error_still_has_a_reason() -> None:
    v, (a,) = validation("a.test")
    v.answered(a, chal("a.test", "invalid"))
    assert v.failures()[0].detail == "the challenge is invalid and the CA gave no reason"


def test_pending_with_error_is_retried_then_fails() -> None:
    v, (a,) = validation("a.test", retries=2)
    for attempt in (1, 2):
        v.answered(a, chal("a.test", "pending", CONN))
        assert v.to_retry() == [a], attempt
        assert v.failures() == []
    v.answered(a, chal("a.test", "pending", CONN))
    assert v.to_retry() == []
    assert v.failures()[0].detail == "no route (still failing after 3 attempts)"


def test_a_refused_second_post_counts_as_an_attempt() -> None:
    v, (a,) = validation("a.test", retries=1)
    v.answered(a, chal("a.test", "pending", CONN))
    v.answered(a, None)  # the CA refused the POST; the authorization tells the state
    v.authorization(
        authz("a.test", "pending", [dict(type="http-01", url=a.challenge.url, status="pending")])
    )
    assert v.failures()[0].detail == "no route (still failing after 2 attempts)"


def test_retry_then_valid_settles() -> None:
    v, (a,) = validation("a.test")
    v.answered(a, chal("a.test", "pending", CONN))
    v.answered(a, chal("a.test", "valid"))
    assert v.to_retry() == [] and v.unsettled() == [] and v.failures() == []


def test_processing_with_error_is_waited_for_and_reported_at_the_deadline() -> None:
    """RFC 8555 §8.2: the CA retries by itself; no second POST from the client."""
    v, (a,) = validation("a.test", retries=0)
    v.answered(a, chal("a.test", "processing", CONN))
    assert v.to_retry() == [] and v.failures() == []
    assert str(v.at_deadline(ORDER)) == (
        "order https://ca/order/1 still pending at the deadline: a.test: challenge processing,"
        " authorization pending; the CA's last error: connection: no route"
    )


def test_deadline_lists_every_unsettled_identifier_one_line_each() -> None:
    v, (a, b, c) = validation("a.test", "b.test", "c.test")
    v.answered(a, chal("a.test", "processing"))
    v.answered(b, chal("b.test", "processing", CONN))
    v.answered(c, chal("c.test", "valid"))
    assert str(v.at_deadline(ORDER)).splitlines() == [
        "order https://ca/order/1 still pending at the deadline:",
        "  a.test: challenge processing, authorization pending; the CA has not finished"
        " validating and gave no error",
        "  b.test: challenge processing, authorization pending; the CA's last error:"
        " connection: no route",
    ]


@pytest.mark.parametrize("status", ["invalid", "deactivated", "expired", "revoked"])
def test_a_failed_authorization_fails_its_identifier(status: str) -> None:
    v, (a,) = validation("a.test")
    v.answered(a, chal("a.test", "processing"))
    v.authorization(
        authz(
            "a.test",
            status,
            [{"type": "http-01", "url": a.challenge.url, "status": "invalid", "error": CONN}],
        )
    )
    (problem,) = v.failures()
    note = "" if status == "invalid" else f" (authorization {status})"
    assert problem.detail == f"no route{note}"


def test_an_expired_authorization_without_errors_says_so() -> None:
    v, _ = validation("a.test")
    v.authorization(authz("a.test", "expired", []))
    assert v.failures()[0].detail == "authorization is expired and no challenge reported an error"


def test_an_authorization_invalid_only_on_its_challenge() -> None:
    """The deviation step-ca shows: the challenge invalid, the authorization pending."""
    v, (a,) = validation("a.test")
    v.answered(a, chal("a.test", "processing"))
    v.authorization(
        authz(
            "a.test",
            "pending",
            [{"type": "http-01", "url": a.challenge.url, "status": "invalid", "error": CONN}],
        )
    )
    assert v.failures()[0].identifier == "a.test"


def test_valid_authorization_settles() -> None:
    v, _ = validation("a.test")
    v.authorization(authz("a.test", "valid", []))
    assert v.unsettled() == []


def test_one_line_for_one_failure_and_one_line_each_for_several() -> None:
    one = AuthorizationFailed([Problem(type="x:connection", detail="d", identifier="a")])
    assert str(one) == "validation failed for a: a: x:connection: d"
    two = AuthorizationFailed(
        [Problem(detail="d1", identifier="a"), Problem(detail="d2", identifier="b")]
    )
    assert str(two).splitlines() == [
        "validation failed for a, b:",
        "  a: about:blank: d1",
        "  b: about:blank: d2",
    ]


def test_server_text_stays_on_one_line() -> None:
    problem = Problem(detail="bad\nline\x1b[31m", identifier="a")
    assert problem.describe() == "a: about:blank: bad\\x0aline\\x1b[31m"


def test_not_implemented_is_named_by_status_not_type() -> None:
    """step-ca answers keyChange with 501 typed ``rejectedIdentifier``."""
    stepca = Problem(type="urn:ietf:params:acme:error:rejectedIdentifier", status=501)
    assert is_not_implemented(stepca)
    assert is_not_implemented(Problem(type="urn:ietf:params:acme:error:notImplemented"))
    assert not is_not_implemented(Problem(type="urn:ietf:params:acme:error:rejectedIdentifier"))
    err = UnsupportedOperation(stepca, operation="key change")
    assert str(err) == (
        "the CA does not implement key change (HTTP 501: rejectedIdentifier: no detail given)"
    )
    assert isinstance(err, ProblemError) and err.operation == "key change"


LIMIT = "urn:ietf:params:acme:error:rejectedIdentifier"


@pytest.mark.parametrize(
    ("detail", "requested", "limit"),
    [
        ("Order cannot contain more than 100 DNS names", 101, 100),
        ("identifier limit exceeded (max 50 names)", 60, 50),
        ("Too many identifiers in the order", 300, None),
        ("The maximum of 10 domains per certificate was exceeded", 11, 10),
    ],
)
def test_identifier_limit_is_recognised(detail: str, requested: int, limit: int | None) -> None:
    exc = ProblemError(Problem(type=LIMIT, detail=detail), url="https://ca/new-order")
    found = _identifier_limit(exc, requested)
    assert isinstance(found, IdentifierLimitExceeded)
    assert (found.limit, found.requested) == (limit, requested)
    assert str(found).endswith(f"(the CA said: rejectedIdentifier: {detail})")


@pytest.mark.parametrize(
    ("short", "detail", "requested"),
    [
        ("rejectedIdentifier", "Domain name label exceeds maximum length of 63", 3),
        ("rejectedIdentifier", "Order cannot contain more than 100 DNS names", 1),
        ("rejectedIdentifier", "Cannot issue for these names: policy forbids it", 3),
        ("rateLimited", "too many certificates for these names", 3),
        ("rejectedIdentifier", "more than 100 names", 50),  # the limit is above the count
    ],
)
def test_other_refusals_are_left_alone(short: str, detail: str, requested: int) -> None:
    problem = Problem(type=f"urn:ietf:params:acme:error:{short}", detail=detail)
    assert _identifier_limit(ProblemError(problem), requested) is None


@pytest.mark.parametrize(
    ("kid", "key", "alg", "message"),
    [
        ("", HS256_KEY, "HS256", "key id is empty"),
        ("kid with space", HS256_KEY, "HS256", "spaces or control characters"),
        ("kid\n", HS256_KEY, "HS256", "spaces or control characters"),
        ("kíd", HS256_KEY, "HS256", "spaces or control characters"),
        ("k" * 300, HS256_KEY, "HS256", "300 characters long"),
        (HS256_KEY, HS256_KEY, "HS256", "the same text"),
        ("kid-1", "not base64!", "HS256", "not valid base64url"),
        ("kid-1", HS256_KEY, "HS512", "HS512 needs at least 64"),
        ("kid-1", HS256_KEY, "RS256", "unknown EAB MAC algorithm"),
    ],
)
def test_eab_is_checked_when_made(kid: str, key: str, alg: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message) as info:
        ExternalAccountBinding(kid=kid, hmac_key=key, alg=alg)
    if key != kid:
        assert key not in str(info.value)


def test_good_eab_is_accepted_and_its_key_hidden() -> None:
    eab = ExternalAccountBinding(kid="kid-1", hmac_key="y" * 86, alg="HS512")
    assert "y" * 10 not in repr(eab)


def test_valid_authorization_with_odd_challenges_parses() -> None:
    """Sectigo pre-validates: a valid authorization may list challenges of its own kind."""
    parsed = authz("a.test", "valid", [{"type": "sectigo-email-01"}, "junk"])
    assert parsed.status == "valid" and parsed.challenges == ()
    missing = Authorization.from_json(
        {"identifier": {"type": "dns", "value": "a.test"}, "status": "valid", "challenges": None},
        url="u",
    )
    assert missing.challenges == ()
    with pytest.raises(ProtocolError, match="challenge"):
        authz("a.test", "pending", [{"type": "sectigo-email-01"}])
