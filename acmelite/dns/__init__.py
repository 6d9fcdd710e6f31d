"""DNS-01 machinery shared by the DNS solvers (RFC 8555 §8.4).

* :mod:`.query` — one question to one server, UDP with TCP fallback, and :class:`Lookup`,
  which asks a list of servers in turn;
* :mod:`.zone` — following ``_acme-challenge`` CNAMEs, finding a zone by walking up SOA
  queries, and finding a zone's nameservers;
* :mod:`.propagation` — waiting until every authoritative nameserver serves every value;
* :mod:`.challenge` — the base class that turns tasks into TXT records, remembers what was
  published, and waits once per batch.

Only dnspython is used; nothing here reads the environment or prints.
"""

from __future__ import annotations

from .propagation import PropagationSettings
from .query import Server, parse_server

__all__ = ["PropagationSettings", "Server", "parse_server"]
