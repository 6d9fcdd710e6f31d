"""The CA's origin: every URL a CA hands out must stay on its directory's (RFC 8555 §6.1).

A directory fetched over HTTPS may still list ``http://`` resources, or send a ``Location``
or ``Link`` to another host; followed, a signed request would go out in plaintext or to
someone else, and an ``http://`` account URL would be stored for later runs. So every URL
acmelite takes from the CA — directory entries, ``Location``, ``Link``, order,
authorization, challenge and certificate URLs — must share the directory URL's scheme, host
and port. :meth:`Origin.check` is the one test; the transport applies it to every URL before
it is requested and to every ``Location`` as it arrives.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from .errors import InvalidInput, ProtocolError

__all__ = ["Origin"]

_DEFAULT_PORTS = {"https": 443, "http": 80}


@dataclass(frozen=True, slots=True)
class Origin:
    """Scheme, host (lower case) and port of a URL, default ports filled in (RFC 6454 §4)."""

    scheme: str
    host: str
    port: int

    @classmethod
    def of(cls, url: str) -> Origin:
        """The origin of an absolute ``http``/``https`` URL; :class:`InvalidInput` otherwise."""
        found = _parse(url)
        if found is None:
            raise InvalidInput(f"{url!r} is not an absolute http(s) URL")
        return found

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = _DEFAULT_PORTS[self.scheme] == self.port
        return f"{self.scheme}://{host}" + ("" if default else f":{self.port}")

    def contains(self, url: str) -> bool:
        return _parse(url) == self

    def check(self, url: str, *, source: str) -> str:
        """``url`` if it is on this origin; else :class:`ProtocolError` naming it and ``source``."""
        if self.contains(url):
            return url
        raise ProtocolError(
            f"the CA gave {url!r} as {source}, which is not on its origin {self}"
            " (every URL of a CA must share its directory's scheme, host and port): refusing it"
        )


def _parse(url: str) -> Origin | None:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    return Origin(scheme, parts.hostname.lower(), port or _DEFAULT_PORTS[scheme])
