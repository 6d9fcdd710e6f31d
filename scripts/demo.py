"""Issue a real certificate with the acmelite CLI from a throwaway local Pebble.

    make demo            (or: python scripts/demo.py [--out DIR])

Starts Pebble with acmelite.testing.PebbleServer, then runs `acmelite issue` exactly as a user
would, with the standalone http-01 server on the port Pebble validates against. Prints what was
written and what the certificate says. Nothing leaves this machine: every name resolves to
127.0.0.1 through Pebble's DNS.
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

from cryptography import x509

from acmelite.testing import PebbleError, PebbleServer

PROJECT_DIR = Path(__file__).resolve().parent.parent
DEFAULT_OUT = PROJECT_DIR / "demo-output"
NAMES = ("demo.acmelite.test", "www.demo.acmelite.test")


def acmelite_command() -> list[str]:
    """The `acmelite` console script of this interpreter, else `python -m acmelite`."""
    beside = Path(sys.executable).parent / "acmelite"
    if beside.is_file():
        return [str(beside)]
    on_path = shutil.which("acmelite")
    return [on_path] if on_path else [sys.executable, "-m", "acmelite"]


def show_files(out: Path) -> list[Path]:
    files = sorted(p for p in out.rglob("*") if p.is_file())
    print(f"\nFiles written under {out}:")
    for path in files:
        info = path.stat()
        mode = stat.filemode(info.st_mode)
        print(f"  {mode}  {info.st_size:6d}  {path.relative_to(out)}")
    return files


def leaf_certificate(files: list[Path]) -> tuple[Path, list[x509.Certificate]] | None:
    """The file holding the issued chain, preferring names like fullchain.pem or cert.pem."""
    with_certs = [p for p in files if b"-----BEGIN CERTIFICATE-----" in p.read_bytes()]
    with_certs.sort(
        key=lambda p: (len(p.parts), "fullchain" not in p.name, "cert" not in p.name, p.name)
    )
    if not with_certs:
        return None
    return with_certs[0], x509.load_pem_x509_certificates(with_certs[0].read_bytes())


def describe(pebble: PebbleServer, path: Path, chain: list[x509.Certificate]) -> None:
    leaf = chain[0]
    names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    print(f"\nCertificate in {path}:")
    print(f"  names:   {', '.join(names.get_values_for_type(x509.DNSName))}")
    print(f"  serial:  {leaf.serial_number:x}")
    print(f"  issuer:  {leaf.issuer.rfc4514_string()}")
    print(f"  expires: {leaf.not_valid_after_utc:%Y-%m-%d %H:%M:%S} UTC")
    print(f"  chain:   {len(chain)} certificate(s) in the file")
    try:
        status = pebble.cert_status(leaf.serial_number).get("Status")
    except PebbleError as exc:
        status = f"unknown ({exc})"
    print(f"  Pebble's record of it: {status}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"default {DEFAULT_OUT}")
    args = parser.parse_args(argv)
    out: Path = args.out.resolve()
    if out == DEFAULT_OUT and out.exists():
        shutil.rmtree(out)  # our own scratch output from an earlier run

    print("Starting Pebble ...", flush=True)
    with PebbleServer() as pebble, tempfile.TemporaryDirectory(prefix="acmelite-demo-") as tmp:
        print(f"Pebble {pebble.version} at {pebble.directory_url}")
        command = [*acmelite_command(), "issue"]
        for name in NAMES:
            command += ["-d", name]
        command += [
            "--server", pebble.directory_url,
            "--ca-bundle", pebble.ca_bundle,
            "--agree-tos",
            "--account-key", str(Path(tmp) / "account.key"),
            "--http-port", str(pebble.http_port),
            "--http-address", "127.0.0.1",
            "--out", str(out),
        ]  # fmt: skip
        print(f"\n$ {shlex.join(command)}", flush=True)
        result = subprocess.run(command, check=False)
        if result.returncode != 0:
            print(
                f"\nacmelite issue exited with {result.returncode}. Pebble's log:", file=sys.stderr
            )
            print(pebble.log_tail(20), file=sys.stderr)
            return result.returncode
        files = show_files(out) if out.is_dir() else []
        found = leaf_certificate(files)
        if found is None:
            print(f"\nNo certificate found under {out}", file=sys.stderr)
            return 1
        describe(pebble, *found)
    print(f"\nDone. The files are in {out} (issued by a Pebble that no longer exists).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
