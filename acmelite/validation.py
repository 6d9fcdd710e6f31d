"""What the CA said about each answered challenge, until every identifier is settled.

Pure state, no I/O: :class:`AcmeClient.authorize` feeds in every challenge and
authorization the CA returns, and asks what is known (RFC 8555 §7.5.1, §8.2).

Theory of operation — CAs report a failed validation in different places:

* Pebble and Boulder fail the authorization and the order (``invalid``): polling the order
  tells, and the authorizations are fetched once to name the cause.
* Some CAs answer the challenge POST itself with ``invalid`` and leave the authorization
  and the order ``pending`` for ever (a deviation from RFC 8555 §7.1.6): an ``invalid``
  challenge, wherever it is seen, fails its identifier at once, with its error.
* step-ca (also inside Caddy) validates during the challenge POST and, when it could not
  reach the answer, leaves the challenge ``pending`` with an ``error``: it validates again
  only when the client POSTs the challenge again. Such a challenge is POSTed again
  :data:`CHALLENGE_RETRIES` times, 1 s then 2 s apart; still ``pending`` with an error
  after that, the identifier fails with that error (about 3 s after the first answer).
* RFC 8555 §8.2 lets a CA retry by itself, keeping the challenge ``processing`` with an
  ``error`` meanwhile: that error is kept and reported if the deadline comes first.
* An authorization ``invalid``, ``deactivated``, ``expired`` or ``revoked`` fails its
  identifier with its challenge's error (or its status, when no challenge has one).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .challenges import ChallengeTask
from .errors import AuthorizationFailed, DeadlineExceeded, Problem, one_line_each
from .models import Authorization, Challenge, Order
from .text import printable

__all__ = ["CHALLENGE_RETRIES", "FAILED_AUTHZ", "Validation"]

#: How often a challenge left ``pending`` with an error (step-ca) is POSTed again.
CHALLENGE_RETRIES = 2
#: Authorization states that end an identifier's chances (RFC 8555 §7.1.6).
FAILED_AUTHZ = frozenset({"invalid", "deactivated", "expired", "revoked"})


@dataclass(slots=True)
class _Entry:
    task: ChallengeTask
    authz_url: str
    status: str
    authz_status: str = "pending"
    error: Problem | None = None
    posts: int = 0
    failure: Problem | None = None

    @property
    def settled(self) -> bool:
        return self.failure is not None or self.status == "valid" or self.authz_status == "valid"


class Validation:
    """The answered challenges of one order, by identifier."""

    def __init__(
        self,
        tasks: Sequence[ChallengeTask],
        authz_urls: Sequence[str],
        *,
        retries: int = CHALLENGE_RETRIES,
    ) -> None:
        if len(tasks) != len(authz_urls):
            raise ValueError("one authorization URL per task")
        self.retries = max(0, retries)
        self._entries = [
            _Entry(task=t, authz_url=u, status=t.challenge.status)
            for t, u in zip(tasks, authz_urls, strict=True)
        ]
        self._by_challenge = {e.task.challenge.url: e for e in self._entries}

    # -- what the CA said ---------------------------------------------------------------

    def answered(self, task: ChallengeTask, challenge: Challenge | None) -> None:
        """The CA's answer to a POST of ``task``'s challenge (the first or a retry); None
        when the CA refused the POST (look at the authorization then)."""
        entry = self._by_challenge[task.challenge.url]
        entry.posts += 1
        if challenge is not None:
            self._challenge(entry, challenge)

    def authz_url(self, task: ChallengeTask) -> str:
        return self._by_challenge[task.challenge.url].authz_url

    def authorization(self, authz: Authorization) -> None:
        """A fetched authorization: its status, and its challenge of our type."""
        entry = next((e for e in self._entries if e.authz_url == authz.url), None)
        if entry is None or entry.failure is not None:
            return
        entry.authz_status = authz.status
        if authz.status in FAILED_AUTHZ:
            reason = authz.failure()
            # "invalid" goes without saying; "expired" or "revoked" is news beside the error.
            told = authz.status == "invalid" or not any(c.error for c in authz.challenges)
            note = "" if told else f"authorization {authz.status}"
            entry.failure = _failure(reason, entry.task.name, note)
            return
        chal = next((c for c in authz.challenges if c.url == entry.task.challenge.url), None)
        if chal is None:
            chal = authz.challenge(entry.task.challenge.type)
        if chal is not None:
            self._challenge(entry, chal)

    def _challenge(self, entry: _Entry, chal: Challenge) -> None:
        if entry.failure is not None:
            return
        entry.status = chal.status
        if chal.status == "valid":
            entry.error = None
            return
        if chal.error is not None:
            entry.error = chal.error
        if chal.status == "invalid":
            reason = entry.error or Problem(
                type="urn:ietf:params:acme:error:unauthorized",
                detail="the challenge is invalid and the CA gave no reason",
            )
            entry.failure = _failure(reason, entry.task.name, "")
        elif chal.status == "pending" and entry.error is not None and entry.posts > self.retries:
            entry.failure = _failure(
                entry.error, entry.task.name, f"still failing after {entry.posts} attempts"
            )

    # -- what to do next ----------------------------------------------------------------

    def to_retry(self) -> list[ChallengeTask]:
        """Challenges step-ca left ``pending`` with an error, to be POSTed again."""
        return [
            e.task
            for e in self._entries
            if not e.settled and e.status == "pending" and e.error is not None
        ]

    def unsettled(self) -> list[str]:
        """Authorization URLs of identifiers not known to be valid or failed yet."""
        return [e.authz_url for e in self._entries if not e.settled]

    def failures(self) -> list[Problem]:
        """One problem per failed identifier (``identifier`` set), in order of the tasks."""
        return [e.failure for e in self._entries if e.failure is not None]

    def check(self) -> None:
        """Raise :class:`AuthorizationFailed` naming every failed identifier, if any."""
        failed = self.failures()
        if failed:
            raise AuthorizationFailed(failed)

    def at_deadline(self, order: Order) -> DeadlineExceeded:
        """The error for a deadline that came first: each unsettled identifier, and why."""
        lines = [_waiting(e) for e in self._entries if not e.settled]
        if not lines:
            lines = ["every authorization is valid, but the CA has not marked the order ready"]
        return DeadlineExceeded(
            one_line_each(f"order {order.url} still {order.status} at the deadline", lines)
        )


def _failure(reason: Problem, name: str, note: str) -> Problem:
    detail = reason.detail or reason.title
    if note:
        detail = f"{detail} ({note})" if detail else note
    return Problem(
        type=reason.type,
        detail=detail,
        status=reason.status,
        title=reason.title,
        instance=reason.instance,
        identifier=name,
        subproblems=reason.subproblems,
    )


def _waiting(entry: _Entry) -> str:
    state = f"challenge {printable(entry.status)}, authorization {printable(entry.authz_status)}"
    if entry.error is not None:
        return f"{entry.task.name}: {state}; the CA's last error: {entry.error.describe()}"
    return f"{entry.task.name}: {state}; the CA has not finished validating and gave no error"
