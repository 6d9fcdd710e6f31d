"""The exception tree and the Problem value (RFC 7807, RFC 8555 §6.7).

Three sources of failure are kept apart:

* the server said no, in a problem document -> :class:`ProblemError` and subclasses;
* the server broke the protocol (bad JSON, a missing field) -> :class:`ProtocolError`;
* the network failed (connect, TLS, timeout) -> :class:`NetworkError`.

Input that is wrong before anything is sent (a bad name, an unreadable key) raises
:class:`InvalidInput`, which is also a :class:`ValueError`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from .text import printable

__all__ = [
    "AcmeliteError",
    "AuthorizationFailed",
    "BadNonceError",
    "CaUnavailable",
    "CleanupFailed",
    "DeadlineExceeded",
    "DeployHookError",
    "DirectoryLocked",
    "DnsQueryError",
    "IdentifierLimitExceeded",
    "InvalidInput",
    "NetworkError",
    "Problem",
    "ProblemError",
    "ProtocolError",
    "RateLimitedError",
    "SolverError",
    "UnsupportedOperation",
]

ACME_ERROR_PREFIX = "urn:ietf:params:acme:error:"


@dataclass(frozen=True, slots=True, kw_only=True)
class Problem:
    """An RFC 7807 problem document as ACME uses it (RFC 8555 §6.7).

    ``identifier`` is set on subproblems (RFC 8555 §6.7.1) and on problems the client
    attaches to a failed authorization.
    """

    type: str = "about:blank"
    detail: str = ""
    status: int | None = None
    title: str = ""
    instance: str = ""
    identifier: str | None = None
    subproblems: tuple[Problem, ...] = field(default=())

    @property
    def short_type(self) -> str:
        """``badNonce`` for ``urn:ietf:params:acme:error:badNonce``; else the type as is."""
        if self.type.startswith(ACME_ERROR_PREFIX):
            return self.type[len(ACME_ERROR_PREFIX) :]
        return self.type

    @classmethod
    def from_json(cls, data: object, *, status: int | None = None) -> Problem:
        """Parse a problem document; tolerant of missing or mistyped fields.

        Subproblems (RFC 8555 §6.7.1) are read one level deep and theirs are dropped, so a
        hostile document cannot exhaust the stack.
        """
        return cls._parse(data, status, nested=False)

    @classmethod
    def _parse(cls, data: object, status: int | None, *, nested: bool) -> Problem:
        if not isinstance(data, Mapping):
            if isinstance(data, (list, dict)):  # never str() a container: it may nest deep
                return cls(
                    detail=f"a JSON {type(data).__name__} instead of a problem", status=status
                )
            return cls(detail=str(data)[:500], status=status)
        ident = data.get("identifier")
        ident_value: str | None = None
        if isinstance(ident, Mapping):
            value = ident.get("value")
            ident_value = value if isinstance(value, str) else None
        subs = data.get("subproblems")
        sub_list: Sequence[object] = subs if isinstance(subs, list) else []
        raw_status = data.get("status")
        return cls(
            type=_text(data.get("type")) or "about:blank",
            detail=_text(data.get("detail")),
            title=_text(data.get("title")),
            instance=_text(data.get("instance")),
            status=raw_status if type(raw_status) is int else status,
            identifier=ident_value,
            subproblems=() if nested else tuple(cls._parse(s, None, nested=True) for s in sub_list),
        )

    def to_json(self) -> dict[str, object]:
        """The problem as RFC 7807 fields (``identifier`` as its value, subproblems nested)."""
        out: dict[str, object] = {"type": self.type, "detail": self.detail}
        if self.status is not None:
            out["status"] = self.status
        if self.title:
            out["title"] = self.title
        if self.instance:
            out["instance"] = self.instance
        if self.identifier is not None:
            out["identifier"] = self.identifier
        if self.subproblems:
            out["subproblems"] = [p.to_json() for p in self.subproblems]
        return out

    def describe(self) -> str:
        """One line: ``[name] type: detail (subproblem; subproblem)``.

        The server's words are kept, with control characters (a newline, an escape
        sequence, a bidi override) shown as ``\\xNN`` (:func:`acmelite.text.printable`), so
        the line stays one line on a terminal or in a log and cannot forge another.
        """
        head = f"{self.identifier}: " if self.identifier else ""
        text = f"{head}{self.short_type}: {self.detail or self.title or 'no detail given'}"
        if self.subproblems:
            text += " (" + "; ".join(s.describe() for s in self.subproblems) + ")"
        return printable(text)


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


class AcmeliteError(Exception):
    """Base of every error acmelite raises on purpose.

    ``code`` is a stable, machine-readable reason where the class alone does not say it
    (``"tls-verification"``, ``"port-in-use"``, ...): callers branch on it, and the CLI
    keys its hints on it. ``""`` otherwise.
    """

    code: str = ""

    def __init__(self, *args: object, code: str = "") -> None:
        super().__init__(*args)
        if code:
            self.code = code


class InvalidInput(AcmeliteError, ValueError):
    """Input refused before any network call: a bad name, key, CSR or option."""


class NetworkError(AcmeliteError):
    """The network failed: connection refused or reset, TLS verification, timeout."""


class CaUnavailable(NetworkError):
    """A request not sent, because the CA's earlier requests in this run failed at the
    transport (:mod:`acmelite.breaker`): ``server`` the directory URL, ``failures`` how many
    in a row, ``last_error`` the last one's message, ``retry_after`` seconds to wait before
    the next attempt (no failure of the certificate: the CA never saw this request)."""

    def __init__(
        self,
        message: str,
        *,
        server: str,
        failures: int,
        last_error: str,
        retry_after: float,
    ) -> None:
        super().__init__(message, code="ca-unavailable")
        self.server = server
        self.failures = failures
        self.last_error = last_error
        self.retry_after = retry_after


class DnsQueryError(NetworkError):
    """A DNS question got no usable answer; the message names the server and the reason."""


class ProtocolError(AcmeliteError):
    """The server answered something RFC 8555 does not allow (bad JSON, missing field).

    ``status`` is the HTTP status of the answer, when the error is about one (else None).
    """

    def __init__(self, *args: object, status: int | None = None, code: str = "") -> None:
        super().__init__(*args, code=code)
        self.status = status


class DeadlineExceeded(AcmeliteError):
    """An overall deadline or a polling limit ran out."""


class SolverError(AcmeliteError):
    """A challenge solver could not publish or clean up its answer."""

    def __init__(self, message: str, *, identifiers: Sequence[str] = (), code: str = "") -> None:
        super().__init__(message, code=code)
        self.identifiers = tuple(identifiers)


class CleanupFailed(SolverError):
    """A solver could not remove everything it published. ``records`` names what was left
    behind, one string each (``_acme-challenge.example.test. TXT "value"`` for dns-01;
    empty when the solver cannot say). The order itself may have succeeded: an issued
    certificate is returned (and installed) all the same, and the failure reported."""

    def __init__(
        self,
        message: str,
        *,
        records: Sequence[str] = (),
        identifiers: Sequence[str] = (),
        code: str = "cleanup-failed",
    ) -> None:
        super().__init__(message, identifiers=identifiers, code=code)
        self.records = tuple(records)


class DirectoryLocked(AcmeliteError):
    """Another acmelite run holds the lock of certificate directory ``path``."""

    def __init__(self, message: str, *, path: str) -> None:
        super().__init__(message)
        self.path = path


class DeployHookError(AcmeliteError):
    """The deploy hook failed (``status`` its exit status, None if it could not run or
    timed out; ``stderr`` its last words); the new files are in place all the same."""

    def __init__(self, message: str, *, status: int | None, stderr: str) -> None:
        super().__init__(message)
        self.status = status
        self.stderr = stderr


class ProblemError(AcmeliteError):
    """The server answered with a problem document (``problem``), for ``url``."""

    def __init__(
        self, problem: Problem, *, url: str = "", retry_after: float | None = None
    ) -> None:
        self.problem = problem
        self.url = url
        self.retry_after = retry_after
        hint = f"; the CA asks to retry after {_duration(retry_after)}" if retry_after else ""
        super().__init__(problem.describe() + hint)


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


class BadNonceError(ProblemError):
    """``badNonce``: retried with the fresh nonce from the same response (RFC 8555 §6.5)."""


class RateLimitedError(ProblemError):
    """``rateLimited`` (HTTP 429); ``retry_after`` says when the CA allows another try."""


class AuthorizationFailed(AcmeliteError):
    """One or more identifiers of an order failed validation.

    ``problems`` holds one :class:`Problem` per failed identifier, with ``identifier`` set.
    The message names each one with the CA's reason, one line per identifier.
    """

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = tuple(problems)
        names = printable(", ".join(p.identifier or "?" for p in self.problems))
        super().__init__(
            one_line_each(f"validation failed for {names}", [p.describe() for p in self.problems])
        )


def one_line_each(head: str, lines: Sequence[str]) -> str:
    """``head: line`` for one line; for more, ``head:`` and each line indented below it."""
    if len(lines) == 1:
        return f"{head}: {lines[0]}"
    return f"{head}:" + "".join(f"\n  {line}" for line in lines)


class IdentifierLimitExceeded(ProblemError):
    """newOrder refused the order for having more identifiers than the CA allows.

    ``limit`` is how many the CA said it accepts (None when it did not say), ``requested``
    how many the order had.
    """

    def __init__(
        self, problem: Problem, *, url: str = "", limit: int | None, requested: int
    ) -> None:
        super().__init__(problem, url=url)
        self.limit = limit
        self.requested = requested
        accepts = (
            f"the CA accepts at most {limit} identifiers per order"
            if limit is not None
            else "the CA refused the order as having too many identifiers"
        )
        self.args = (
            f"{accepts}, this order has {requested}: split the names over several"
            f" certificates (the CA said: {problem.describe()})",
        )


class UnsupportedOperation(ProblemError):
    """The CA answered HTTP 501 (or ``notImplemented``): it lacks ``operation`` altogether.

    Some CAs label this answer with a misleading type (step-ca sends ``rejectedIdentifier``
    with its 501), so the status decides, and the message says which operation is missing.
    """

    def __init__(self, problem: Problem, *, url: str = "", operation: str) -> None:
        super().__init__(problem, url=url)
        self.operation = operation
        status = f"HTTP {problem.status}" if problem.status else "the CA"
        self.args = (f"the CA does not implement {operation} ({status}: {problem.describe()})",)


def is_not_implemented(problem: Problem) -> bool:
    """HTTP 501, or a problem type that says "not implemented" whatever its status."""
    return problem.status == 501 or problem.short_type in ("notImplemented", "unsupported")


def problem_error(
    problem: Problem, *, url: str = "", retry_after: float | None = None
) -> ProblemError:
    """The most specific :class:`ProblemError` subclass for ``problem``."""
    kind: type[ProblemError] = ProblemError
    if problem.short_type == "badNonce":
        kind = BadNonceError
    elif problem.short_type == "rateLimited" or problem.status == 429:
        kind = RateLimitedError
    return kind(problem, url=url, retry_after=retry_after)
