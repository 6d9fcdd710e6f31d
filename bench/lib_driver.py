"""The acmelite library as a benchmark client: one process, one ``AcmeClient``, one account.

Run by ``bench/run.py`` as a child process, so its wall time, CPU time and peak RSS are
measured exactly like the other clients'::

    python bench/lib_driver.py --directory URL --ca-bundle PEM --http-port PORT \\
        --out DIR -d a.example.test -d b.example.test          # one order, every name
    python bench/lib_driver.py ... --certs 50 --workers 16    # 50 one-name orders at once

With ``--certs N`` the names are ``cert-<i>.<first -d>`` and the orders go through
``AcmeClient.issue_many`` with one shared ``StandaloneSolver``. Exit status 0 when every
certificate was issued and written; a failure prints one line per failed order.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--directory", required=True)
    parser.add_argument("--ca-bundle", required=True)
    parser.add_argument("--http-port", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("-d", dest="names", action="append", required=True)
    parser.add_argument("--certs", type=int, default=0, help="N separate one-name orders")
    parser.add_argument("--workers", type=int, default=8, help="concurrent orders (--certs)")
    args = parser.parse_args(argv)

    from acmelite import AccountKey, AcmeClient, AcmeliteError
    from acmelite.solvers.http01 import StandaloneSolver

    solver = StandaloneSolver(port=args.http_port, address="127.0.0.1")
    key = AccountKey.generate()
    with AcmeClient(
        args.directory, key, ca_bundle=args.ca_bundle, max_concurrency=max(1, args.workers)
    ) as client:
        client.register(agree_tos=True)
        if not args.certs:
            bundle = client.issue(args.names, solver=solver)
            bundle.write(args.out)
            return 0
        base = args.names[0]
        requests = [{"names": [f"cert-{i}.{base}"], "solver": solver} for i in range(args.certs)]
        results = client.issue_many(requests, max_workers=args.workers)
    failed = 0
    for i, result in enumerate(results):
        if isinstance(result, AcmeliteError):
            failed += 1
            print(f"cert-{i}: {result}", file=sys.stderr)
        else:
            result.write(args.out / f"cert-{i}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
