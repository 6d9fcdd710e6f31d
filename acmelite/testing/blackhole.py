"""A server that accepts every connection and never says a word.

The worst way for a CA, a DNS provider's API or a probed host to fail: the TCP connection
is made, so nothing is refused, and then each request (or TLS handshake) waits out its
whole timeout. Tests use it to show that such a peer costs one bounded wait, not a hang::

    with Blackhole() as hole:
        ...  # point a client at hole.url (https://127.0.0.1:PORT/dir) or hole.port
        assert hole.connections == 3

The accepted sockets are held open (never read from, never written to) until
:meth:`close`.
"""

from __future__ import annotations

import socket
import threading

__all__ = ["Blackhole"]


class Blackhole:
    """A loopback port that accepts connections, counts them, and never answers."""

    def __init__(self, *, path: str = "/dir", scheme: str = "https") -> None:
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self._listener.settimeout(0.1)
        self._path, self._scheme = path, scheme
        self._held: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="blackhole", daemon=True)
        self._thread.start()

    def __enter__(self) -> Blackhole:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def port(self) -> int:
        return int(self._listener.getsockname()[1])

    @property
    def url(self) -> str:
        """``https://127.0.0.1:PORT/dir`` (``scheme`` and ``path`` as given)."""
        return f"{self._scheme}://127.0.0.1:{self.port}{self._path}"

    @property
    def connections(self) -> int:
        """How many connections it has accepted."""
        return len(self._held)

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                self._held.append(self._listener.accept()[0])
            except TimeoutError:
                continue
            except OSError:
                return

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        for conn in self._held:
            conn.close()
        self._listener.close()
