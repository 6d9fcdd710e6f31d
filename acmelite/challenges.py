"""What a challenge solver plugin is (RFC 8555 §8): the interface, with no implementation.

A solver publishes the answers to a batch of challenges (``perform``) and removes them
again (``cleanup``). It is batch-shaped on purpose: a DNS solver publishes every record of
an order, waits for propagation once, and returns; the client then answers every
challenge at once. The client always calls ``cleanup`` in a ``finally``, with the same
tasks, even when ``perform`` failed half-way — so ``cleanup`` must cope with answers that
were never published.

A solver that the command line and ``renewal.json`` can build also declares its
``options`` (:class:`SolverOption`) and a ``from_options`` class method
(:class:`ConfigurableSolver`); :mod:`acmelite.solvers.registry` finds such classes under the
entry-point group ``acmelite.solvers`` and builds them. This module is a leaf: the client,
the DNS machinery and every solver import it, and it imports only the models.

Optional hooks, for solvers that must act before the order exists:

* :class:`PreparedSolver` — ``prepare()`` before the first request, ``release()`` at the
  end: the standalone HTTP-01 and the TLS-ALPN-01 servers bind their ports there, so a busy
  port fails before an account or order exists;
* :class:`PreflightSolver` — ``preflight(plan)`` once the account is known, just before
  newOrder, with the :class:`OrderPlan` (the names, the account URL, the CA's issuer domain
  names): the dns-persist-01 solver checks the persistent records there, so a wrong record
  fails before any order;
* :class:`AdvisingSolver` — ``advise(plan)`` returns warnings a person must act on before
  a later issuance fails (a persistent record about to expire); ``renew`` asks on every run.

Which record a DNS challenge goes to depends on the challenge type, so a dns-01 solver that
publishes ``task.dns_value`` at ``task.dns_record`` answers dns-account-01 (the record name
carries the account's label) and can publish dns-persist-01 records as well.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar, Protocol, runtime_checkable

from .models import Challenge, Identifier

__all__ = [
    "PERSIST_LABEL",
    "AdvisingSolver",
    "ChallengeTask",
    "ConfigurableSolver",
    "OrderPlan",
    "PreflightSolver",
    "PreparedSolver",
    "Solver",
    "SolverOption",
    "ValidationWatcher",
    "account_label",
]

#: The label of the persistent record (draft-ietf-acme-dns-persist §2).
PERSIST_LABEL = "_validation-persist"


def account_label(account_url: str) -> str:
    """The dns-account-01 label of an account (draft-ietf-acme-dns-account-label §3.1):
    ``_`` + the lowercase base32 of the first 10 bytes of SHA-256 of the account URL."""
    if not account_url:
        raise ValueError("the dns-account-01 label needs the account URL")
    digest = hashlib.sha256(account_url.encode("utf-8")).digest()[:10]
    return "_" + base64.b32encode(digest).decode("ascii").lower()


@dataclass(frozen=True, slots=True, kw_only=True)
class SolverOption:
    """One option a solver plugin takes (always a string; the solver parses it).

    ``secret`` options (passwords, API tokens, TSIG secrets) are never stored in
    ``renewal.json`` nor accepted inline on the command line: they come from a file
    (``@PATH``, read at every run) or from the environment. ``env`` names further
    environment variables that supply the value (after ``ACMELITE_<TYPE>_<NAME>``).
    A ``path`` option names a file or directory: it is stored made absolute.
    """

    name: str
    help: str
    required: bool = False
    secret: bool = False
    default: str | None = None
    env: tuple[str, ...] = ()
    path: bool = False

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "help": self.help,
            "required": self.required,
            "secret": self.secret,
            "default": self.default,
            "path": self.path,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class ChallengeTask:
    """One challenge to answer: which name, which challenge, and its key authorization.

    ``account_url`` is the account's URL (the client sets it; dns-account-01 derives its
    record name from it). ``txt_value`` is a TXT value that does not come from the key
    authorization: the persistent record of a dns-persist-01 task.
    """

    identifier: Identifier
    challenge: Challenge
    key_authorization: str
    wildcard: bool = False
    account_url: str = ""
    txt_value: str = ""

    @property
    def token(self) -> str:
        return self.challenge.token

    @property
    def name(self) -> str:
        """The name as requested (``*.example.com`` for a wildcard)."""
        return f"*.{self.identifier.value}" if self.wildcard else self.identifier.value

    @property
    def key_authorization_digest(self) -> bytes:
        """SHA-256 of the key authorization: the dns-01 value's bytes (RFC 8555 §8.4) and
        the acmeIdentifier extension's content (RFC 8737 §3)."""
        return hashlib.sha256(self.key_authorization.encode("ascii")).digest()

    @property
    def dns_record(self) -> str:
        """Where the TXT value goes, fully qualified, ``*.`` removed:
        ``_acme-challenge.<name>.`` (dns-01, RFC 8555 §8.4),
        ``_<account label>._acme-challenge.<name>.`` (dns-account-01) or
        ``_validation-persist.<name>.`` (dns-persist-01)."""
        base = self.identifier.value.removeprefix("*.").rstrip(".")
        kind = self.challenge.type
        if kind == "dns-account-01":
            return f"{account_label(self.account_url)}._acme-challenge.{base}."
        if kind == "dns-persist-01":
            return f"{PERSIST_LABEL}.{base}."
        return f"_acme-challenge.{base}."

    @property
    def dns_value(self) -> str:
        """The TXT value: base64url(SHA-256(key authorization)), unpadded (dns-01 and
        dns-account-01), or :attr:`txt_value` when set (a dns-persist-01 record)."""
        if self.txt_value:
            return self.txt_value
        return base64.urlsafe_b64encode(self.key_authorization_digest).rstrip(b"=").decode()

    @property
    def dns01_value(self) -> str:
        """The name plugins written for dns-01 use: the same as :attr:`dns_value`."""
        return self.dns_value

    @property
    def dns01_record(self) -> str:
        """The name plugins written for dns-01 use: the same as :attr:`dns_record`, so such
        a plugin answers dns-account-01 too."""
        return self.dns_record


@runtime_checkable
class Solver(Protocol):
    """A challenge solver plugin. ``challenge_type`` is ``"http-01"``, ``"dns-01"``,
    ``"tls-alpn-01"`` or ``"dns-persist-01"``; a dns-01 solver answers dns-account-01 too."""

    challenge_type: ClassVar[str]

    def perform(self, tasks: Sequence[ChallengeTask]) -> None:
        """Publish every answer; return when the CA may validate them all."""

    def cleanup(self, tasks: Sequence[ChallengeTask]) -> None:
        """Remove what ``perform`` published; tolerate a half-done ``perform``."""


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderPlan:
    """What is known before an order is created: its identifiers, the account's URL, the
    directory's URL and the issuer domain names the CA lists (its ``caaIdentities``,
    RFC 8555 §9.7.6, which dns-persist-01 records name)."""

    identifiers: tuple[Identifier, ...]
    account_url: str
    directory_url: str = ""
    issuer_domain_names: tuple[str, ...] = ()

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(i.value for i in self.identifiers)


@runtime_checkable
class PreflightSolver(Protocol):
    """A solver that checks, once the account is known and before the order is created,
    that its challenges can succeed (see the module docstring).

    ``preflight`` raises :class:`~acmelite.errors.AcmeliteError` (a wrong persistent record)
    to stop the run before an order exists; it may run again for a retried order.
    """

    def preflight(self, plan: OrderPlan) -> None:
        """Check that the challenges of ``plan``'s order can be answered, or raise."""


@runtime_checkable
class AdvisingSolver(Protocol):
    """A solver that can tell, without an order, what will make a later issuance fail."""

    def advise(self, plan: OrderPlan) -> list[str]:
        """Warnings for a person (one line each); none when all is well. Never raises for
        a network failure: that is a warning too."""


@runtime_checkable
class ValidationWatcher(Protocol):
    """A solver that sees the CA fetch its answers, as an HTTP-01 server does.

    RFC 8555 §7.5.1: a client that can tell when the server has validated a challenge
    SHOULD NOT begin polling until it has seen the validation request. The client polls
    the order once every answer was fetched, and again after each later fetch (a CA that
    validates from several vantage points fetches each answer several times), besides
    its backoff schedule.
    """

    def wait_fetched(self, tasks: Sequence[ChallengeTask], seen: int, timeout: float) -> int:
        """How often the CA has fetched the answers of ``tasks``, once that is more than
        ``seen`` and every answer was fetched at least once; ``seen`` after ``timeout`` s."""


@runtime_checkable
class PreparedSolver(Protocol):
    """A solver that takes what it needs before the first request, and gives it back.

    ``prepare()`` runs before the account or the order exists — the standalone HTTP-01
    server binds its port there, so a busy or privileged port fails before the CA is asked
    for anything — and raises :class:`~acmelite.errors.InvalidInput` (or
    :class:`~acmelite.errors.SolverError`) when it cannot. ``release()`` runs at the end
    whatever happened, after the last ``cleanup``; both may be called more than once.
    """

    def prepare(self) -> None:
        """Acquire the listener, check the directory, ...; before any request."""

    def release(self) -> None:
        """Give back what :meth:`prepare` acquired (if nothing is in flight)."""


@runtime_checkable
class ConfigurableSolver(Solver, Protocol):
    """A solver the registry can build from string options (a plugin usable from the CLI)."""

    options: ClassVar[Sequence[SolverOption]]

    @classmethod
    def from_options(cls, options: Mapping[str, str]) -> Solver:
        """Build the solver; ``options`` holds resolved values of declared options only.

        Raises :class:`~acmelite.errors.InvalidInput` for a value it cannot use.
        """
        ...
