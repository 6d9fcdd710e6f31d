"""The solver plugin interface (RFC 8555 §8) and the registry of solvers.

A solver publishes the answers to a batch of challenges (``perform``) and removes them
again (``cleanup``). It is batch-shaped on purpose: a DNS solver publishes every record of
an order, waits for propagation once, and returns; the client then answers every
challenge at once. The client always calls ``cleanup`` in a ``finally``, with the same
tasks, even when ``perform`` failed half-way — so ``cleanup`` must cope with answers that
were never published.

Third-party solvers register a class (or factory) under the entry-point group
``acmelite.solvers``; :func:`load_solver_class` finds built-in and third-party ones alike.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import ClassVar, Protocol, runtime_checkable

from ..errors import InvalidInput
from ..models import Challenge, Identifier

__all__ = [
    "ENTRY_POINT_GROUP",
    "ChallengeTask",
    "Solver",
    "ValidationWatcher",
    "available_solvers",
    "load_solver_class",
]

ENTRY_POINT_GROUP = "acmelite.solvers"


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


def available_solvers() -> dict[str, str]:
    """Solver names registered under ``acmelite.solvers``, mapped to their targets."""
    return {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}


def load_solver_class(name: str) -> type[Solver]:
    """The solver class registered as ``name`` (built-in or third-party)."""
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name == name:
            loaded: type[Solver] = ep.load()
            return loaded
    known = ", ".join(sorted(available_solvers())) or "none"
    raise InvalidInput(f"unknown solver {name!r}; installed solvers: {known}")
