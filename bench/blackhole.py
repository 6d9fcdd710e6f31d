"""A fleet run while one CA account is blackholed: wall time and connection attempts.

    python bench/blackhole.py                          # 100 blackholed + 3 at Pebble, c=4, 2 s
    python bench/blackhole.py --blackholed 10 --concurrency 1 --timeout 2 --phase order

A loopback TCP server that accepts every connection and never says a word stands in for a
CA that went dark (the worst case: each request waits its whole timeout). ``--blackholed``
certificate directories name it as their CA, three name a local Pebble and are due (Pebble's
ARI window moved into the past). One ``acmelite renew --all-under TREE --json`` runs as a
fresh process; the script prints its wall time, how many connections the blackhole
accepted, and the run's results by status.

``--phase plan``: the blackholed directories hold a certificate whose stored ARI answer is
stale, so the run's first step asks the blackhole for each window (they are not due by the
lifetime rule). ``--phase order``: their stored answer is fresh and the run is ``--force``d,
so each one is ordered from the blackhole.

Wall time on a shared machine is noisy: compare runs of one session, not across machines.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import requests
from cryptography import x509

from acmelite.config import CertificateConfig, save_config
from acmelite.csr import certificate_id
from acmelite.managed import ManagedCertificate, save_state
from acmelite.renewal import RenewalState, ari_unsupported
from acmelite.solvers.registry import ChallengeConfig
from acmelite.testing import Blackhole, PebbleServer


def move_window_to_the_past(pebble: PebbleServer, out: Path) -> None:
    now = dt.datetime.now(dt.timezone.utc)
    window = {
        "start": (now - dt.timedelta(hours=2)).isoformat(),
        "end": (now - dt.timedelta(hours=1)).isoformat(),
    }
    body = {
        "Certificate": (out / "cert.pem").read_text(),
        "ARIResponse": json.dumps({"suggestedWindow": window}),
    }
    with requests.Session() as session:
        session.trust_env = False
        resp = session.post(f"{pebble.management_url}/set-renewal-info/", data=json.dumps(body),
                            verify=pebble.ca_bundle, timeout=30)  # fmt: skip
        resp.raise_for_status()


def build(pebble: PebbleServer, hole: Blackhole, root: Path, args: argparse.Namespace) -> None:
    challenge = ChallengeConfig(
        solver="standalone", options={"port": str(pebble.http_port), "address": "127.0.0.1"}
    )
    good = []
    for i in range(3):
        config = CertificateConfig(
            names=(f"ok{i}.blackhole.bench.test",), server=pebble.directory_url,
            ca_bundle=pebble.ca_bundle, account_key=str(root / "pebble.key"),
            challenge=challenge, profile="default",
        )  # fmt: skip
        cert = ManagedCertificate.create(root / "certs" / f"ok-{i}", config, agree_tos=True)
        good.append(cert.path)
    for path in good:
        move_window_to_the_past(pebble, path)
    template = (good[0] / "cert.pem").read_bytes()
    for i in range(args.blackholed):
        out = root / "certs" / f"dark-{i:04d}"
        out.mkdir(parents=True, mode=0o700)
        (out / "cert.pem").write_bytes(template)
        config = CertificateConfig(
            names=("ok0.blackhole.bench.test",), server=hole.url, ca_bundle=pebble.ca_bundle,
            account_key=str(root / "dark.key"), challenge=challenge, profile="default",
            timeout=args.timeout,
        )  # fmt: skip
        save_config(out, config)
        if args.phase == "order":
            cert = x509.load_pem_x509_certificate(template)
            now = dt.datetime.now(dt.timezone.utc)
            save_state(out, RenewalState(ari=ari_unsupported(certificate_id(cert), now=now)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--blackholed", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--timeout", type=float, default=2.0)
    parser.add_argument("--phase", choices=("plan", "order"), default="plan")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="acmelite-blackhole-"))
    hole = Blackhole()
    try:
        with PebbleServer() as pebble:
            build(pebble, hole, root, args)
            argv = [sys.executable, "-m", "acmelite", "renew", "-q", "--json", "--all-under",
                    str(root / "certs"), "--concurrency", str(args.concurrency),
                    "--timeout", str(args.timeout)]  # fmt: skip
            if args.phase == "order":
                argv.append("--force")
            started = time.monotonic()
            proc = subprocess.run(argv, capture_output=True, text=True, check=False)
            took = time.monotonic() - started
        results = json.loads(proc.stdout)["certificates"]
        dark = Counter(r["status"] for r in results if "/dark-" in r["dir"])
        ok = Counter(r["status"] for r in results if "/ok-" in r["dir"])
        failures = sum(int(r["failures"]) for r in results if "/dark-" in r["dir"])
        print(
            f"{args.blackholed} blackholed + 3 at Pebble, --concurrency {args.concurrency},"
            f" --timeout {args.timeout:g}, phase {args.phase}: {took:.1f} s wall,"
            f" exit {proc.returncode}, {hole.connections} connection(s) to the blackhole"
        )
        print(f"  blackholed: {dict(dark)} (failures counted: {failures});  Pebble: {dict(ok)}")
    finally:
        hole.close()
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
