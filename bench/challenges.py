"""One certificate per challenge type from one local Pebble + BIND: wall time, requests and
DNS changes (the zone's SOA serial before and after), interleaved so a slow moment of a
shared machine falls on every type alike. Not part of the tests::

    python bench/challenges.py [--runs 5]

Prints a Markdown table (median and min-max wall time of the issue() call, requests counted
at a proxy, SOA serial increments), and the time of the dns-persist-01 pre-flight check.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import dns.message
import dns.query
import dns.rdatatype

from acmelite import AccountKey, AcmeClient
from acmelite.challenges import Solver
from acmelite.dns.persist import CheckSettings, check_records
from acmelite.dns.propagation import PropagationSettings
from acmelite.persist import Requirement, build_records, persist_tasks
from acmelite.solvers.http01 import StandaloneSolver
from acmelite.solvers.persist import PersistSolver
from acmelite.solvers.rfc2136 import Rfc2136Solver
from acmelite.solvers.tlsalpn import TlsAlpnSolver
from acmelite.testing import PebbleServer
from acmelite.testing.bind import DEFAULT_ZONES, BindServer
from acmelite.testing.proxy import FaultProxy

ZONE = "example.test"


def serial(bind: BindServer) -> int:
    answer = dns.query.tcp(dns.message.make_query(ZONE, dns.rdatatype.SOA), bind.host,
                           port=bind.port, timeout=5)  # fmt: skip
    return int(answer.answer[0][0].serial)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    runs = parser.parse_args().runs
    with (
        BindServer(DEFAULT_ZONES, recursion=True) as bind,
        PebbleServer(nonce_reject=0, dns_server=bind.address) as pebble,
        FaultProxy(pebble.directory_url, upstream_ca_bundle=pebble.ca_bundle) as proxy,
    ):
        client = AcmeClient(proxy.directory_url, AccountKey.generate(), ca_bundle=proxy.ca_bundle)
        client.register(agree_tos=True)
        dns_settings = PropagationSettings(timeout=10, nameserver_port=bind.port)
        check = CheckSettings(lookup_server=bind.address, nameserver_port=bind.port)

        def rfc2136() -> Rfc2136Solver:
            return Rfc2136Solver(bind.address, bind.key_name, bind.key_secret,
                                 propagation=dns_settings)  # fmt: skip

        kinds: dict[str, tuple[str, Callable[[], Solver]]] = {
            "http-01": ("http-01", lambda: StandaloneSolver(pebble.http_port, "127.0.0.1")),
            "tls-alpn-01": ("tls-alpn-01", lambda: TlsAlpnSolver(pebble.tls_port, "127.0.0.1")),
            "dns-01": ("dns-01", rfc2136),
            "dns-account-01": ("dns-account-01", rfc2136),
            "dns-persist-01": ("dns-persist-01", lambda: PersistSolver(settings=check)),
        }
        names = {kind: [f"{kind}-{i}.{ZONE}" for i in range(runs)] for kind in kinds}
        records = build_records(names["dns-persist-01"], account_url=client.account_url,
                                issuer=pebble_issuer(client))  # fmt: skip
        rfc2136().perform(persist_tasks(records))  # once, before: that is the method
        started = time.perf_counter()
        reports = check_records(
            [Requirement(name=n, account_uri=client.account_url) for n in records], check
        )
        check_time = time.perf_counter() - started
        assert all(r.ok for r in reports), [r.line() for r in reports]
        results: dict[str, list[tuple[float, int, int]]] = {k: [] for k in kinds}
        for i in range(runs):
            for kind, (challenge_type, make) in kinds.items():
                proxy.reset_counts()
                before = serial(bind)
                started = time.perf_counter()
                client.issue([names[kind][i]], solver=make(), challenge_type=challenge_type,
                             timeout=60)  # fmt: skip
                wall = time.perf_counter() - started
                requests = sum(proxy.counts().values())
                results[kind].append((wall, requests, serial(bind) - before))
        client.close()
        for name in records:
            bind.delete_txt(f"_validation-persist.{name}")
    print(f"{runs} runs each, one name, Pebble {pebble.version}, BIND on loopback\n")
    print("| challenge | wall s, median (min-max) | requests | DNS changes (SOA serial) |")
    print("| --- | --- | --- | --- |")
    for kind, rows in results.items():
        walls = [r[0] for r in rows]
        print(f"| {kind} | {statistics.median(walls):.2f} ({min(walls):.2f}-{max(walls):.2f})"
              f" | {statistics.median(r[1] for r in rows):g} |"
              f" {statistics.median(r[2] for r in rows):g} |")  # fmt: skip
    print(f"\ndns-persist-01 pre-flight check of {runs} names: {check_time * 1000:.0f} ms")


def pebble_issuer(client: AcmeClient) -> str:
    return client.directory.caa_identities[0]


if __name__ == "__main__":
    main()
