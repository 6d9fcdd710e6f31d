"""The DNS answers Pebble sees: a client for pebble-challtestsrv's management API.

``PebbleServer`` runs a ``pebble-challtestsrv`` as Pebble's only DNS server; by default it
answers every ``A`` query with 127.0.0.1, so an http-01 responder on 127.0.0.1 proves any name.
:class:`ChallTestSrv` changes those answers for a test::

    dns = pebble.challtestsrv
    dns.fail("broken.example.test")          # SERVFAIL: Pebble's validation fails ("dns")
    dns.add_a("moved.example.test", "127.0.0.2")
    dns.set_txt("_acme-challenge.example.test", value)   # dns-01 without a real DNS server
    dns.reset()                              # undo everything done through this object

Names are absolute (a final dot is added). The server is shared by every test of a session:
change only names your test owns, and call :meth:`ChallTestSrv.reset` when done.
The API is plain HTTP on loopback, used with the standard library only.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable

from acmelite.testing.binaries import PebbleError

__all__ = ["ChallTestSrv"]

_TIMEOUT = 10.0


class ChallTestSrv:
    """pebble-challtestsrv's management API at ``url`` (``http://127.0.0.1:<port>``)."""

    def __init__(self, url: str, *, default_ipv4: str = "127.0.0.1") -> None:
        self.url = url.rstrip("/")
        self.default_ipv4 = default_ipv4
        self._undo: list[Callable[[], object]] = []
        # No proxy: the management API is on this machine, whatever *_proxy says.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def __repr__(self) -> str:
        return f"<ChallTestSrv {self.url}>"

    def add_a(self, host: str, *addresses: str) -> None:
        """Answer ``A`` queries for ``host`` with ``addresses`` instead of the default."""
        self._change("add-a", "clear-a", host, addresses=list(addresses))

    def add_aaaa(self, host: str, *addresses: str) -> None:
        """Answer ``AAAA`` queries for ``host`` with ``addresses``."""
        self._change("add-aaaa", "clear-aaaa", host, addresses=list(addresses))

    def set_cname(self, host: str, target: str) -> None:
        """Make ``host`` a CNAME for ``target``."""
        self._change("set-cname", "clear-cname", host, target=_fqdn(target))

    def set_txt(self, host: str, value: str) -> None:
        """Add ``value`` to the TXT answers of ``host`` (RFC 8555 §8.4 records, say)."""
        self._change("set-txt", "clear-txt", host, value=value)

    def add_caa(self, host: str, *policies: tuple[str, str]) -> None:
        """CAA records for ``host`` as (tag, value) pairs, e.g. ``("issue", "other-ca.test")``."""
        body = [{"tag": tag, "value": value} for tag, value in policies]
        self._change("add-caa", "clear-caa", host, policies=body)

    def fail(self, host: str) -> None:
        """Answer every query for ``host`` with SERVFAIL, so that validating it fails."""
        self._change("set-servfail", "clear-servfail", host)

    def set_default_ipv4(self, address: str) -> None:
        """The ``A`` answer for every name without its own (``""``: none)."""
        previous = self.default_ipv4
        self._set_default_ipv4(address)
        self._undo.append(lambda: self._set_default_ipv4(previous))

    def _set_default_ipv4(self, address: str) -> None:
        self.post("set-default-ipv4", {"ip": address})
        self.default_ipv4 = address

    def dns_queries(self, host: str) -> list[dict[str, object]]:
        """The DNS questions received for ``host`` so far (Pebble's lookups, for example)."""
        history = self.post("dns-request-history", {"host": host.rstrip(".")})
        return list(history) if isinstance(history, list) else []

    def reset(self) -> None:
        """Undo every change made through this object, newest first."""
        while self._undo:
            self._undo.pop()()

    def _change(self, endpoint: str, clear: str, host: str, **fields: object) -> None:
        name = _fqdn(host)
        self.post(endpoint, {"host": name, **fields})
        self._undo.append(lambda: self.post(clear, {"host": name}))

    def post(self, endpoint: str, body: dict[str, object]) -> object:
        """POST ``body`` as JSON to ``/<endpoint>``; the decoded answer, or None if empty."""
        if not self.url.startswith(("http://", "https://")):
            raise ValueError(f"pebble-challtestsrv URL must be http(s), not {self.url!r}")
        request = urllib.request.Request(  # noqa: S310 - http(s) checked above
            f"{self.url}/{endpoint}",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with self._opener.open(request, timeout=_TIMEOUT) as response:
                text = response.read().decode("utf-8", "replace")
        except (urllib.error.URLError, OSError) as exc:
            raise PebbleError(f"pebble-challtestsrv {self.url}/{endpoint} failed: {exc}") from exc
        if not text.strip():
            return None
        try:
            return json.loads(text)
        except ValueError:
            return text


def _fqdn(name: str) -> str:
    return name.rstrip(".") + "."
