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
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar, Protocol, runtime_checkable

from .models import Challenge, Identifier

__all__ = [
    "ChallengeTask",
    "ConfigurableSolver",
    "PreparedSolver",
    "Solver",
    "SolverOption",
    "ValidationWatcher",
]


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
    """One challenge to answer: which name, which challenge, and its key authorization."""

    identifier: Identifier
    challenge: Challenge
    key_authorization: str
    wildcard: bool = False

    @property
    def token(self) -> str:
        return self.challenge.token

    @property
    def name(self) -> str:
        """The name as requested (``*.example.com`` for a wildcard)."""
        return f"*.{self.identifier.value}" if self.wildcard else self.identifier.value

    @property
    def dns01_value(self) -> str:
        """RFC 8555 §8.4: base64url(SHA-256(key authorization)), unpadded."""
        digest = hashlib.sha256(self.key_authorization.encode("ascii")).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")

    @property
    def dns01_record(self) -> str:
        """RFC 8555 §8.4: ``_acme-challenge.<name>.``, fully qualified, ``*.`` removed."""
        return f"_acme-challenge.{self.identifier.value.removeprefix('*.').rstrip('.')}."


@runtime_checkable
class Solver(Protocol):
    """A challenge solver plugin. ``challenge_type`` is ``"http-01"`` or ``"dns-01"``."""

    challenge_type: ClassVar[str]

    def perform(self, tasks: Sequence[ChallengeTask]) -> None:
        """Publish every answer; return when the CA may validate them all."""

    def cleanup(self, tasks: Sequence[ChallengeTask]) -> None:
        """Remove what ``perform`` published; tolerate a half-done ``perform``."""


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
