"""``--verify HOST[:PORT]`` for ``issue`` and ``renew``: is the new certificate being served?

After the files are written and the deploy hook has run, connect to each endpoint once per
name of the certificate (the name as SNI) and check that the served leaf is the new
certificate, that its chain verifies against ``--verify-ca-bundle`` and that it covers the
name (:func:`acmelite.verify.verify_deployment`). One line per name goes to stderr.

Exit status: :data:`EXIT_NOT_SERVED` (4) when any name at any endpoint fails: the endpoint
still serves another certificate (no reload), cannot be reached, or serves the new
certificate with a chain that does not verify or without the name. The certificate is
issued and installed all the same; only the deployment is in doubt.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ..constants import serial_hex
from ..text import printable

if TYPE_CHECKING:
    from cryptography import x509

    from ..client import CertificateBundle
    from ..verify import VerifyReport

__all__ = [
    "DEFAULT_VERIFY_TIMEOUT",
    "EXIT_NOT_SERVED",
    "add_verify_arguments",
    "render_line",
    "render_lines",
    "run_verify",
    "verify_certificate",
    "verify_installed",
]

log = logging.getLogger("acmelite.cli")

EXIT_NOT_SERVED = 4
DEFAULT_VERIFY_TIMEOUT = 30.0


def add_verify_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group(
        "verify",
        "After the files are in place and the deploy hook has run, check that the live"
        f" endpoint serves the new certificate; exit {EXIT_NOT_SERVED} if it does not.",
    )
    g.add_argument(
        "--verify",
        action="append",
        default=[],
        type=_target,
        metavar="HOST[:PORT]",
        help="connect here (port 443 by default) with every name as SNI and check that the"
        " served certificate is the new one, that its chain verifies and covers the name;"
        " repeat for more endpoints",
    )
    g.add_argument(
        "--verify-timeout",
        type=_seconds,
        default=DEFAULT_VERIFY_TIMEOUT,
        metavar="SECONDS",
        help="how long to wait for the server to pick up the new certificate (default 30)",
    )
    g.add_argument(
        "--verify-ca-bundle",
        type=_ca_bundle,
        metavar="PATH",
        help="trust anchors the served chain must verify against (default: the system"
        " bundle; for a private or test CA, its root, e.g. Pebble's)",
    )


def _target(text: str) -> tuple[str, int]:
    from ..errors import InvalidInput
    from ..names import is_ip, normalize_name
    from ..tlsprobe import split_host_port

    try:
        host, port = split_host_port(text)
        return (host if is_ip(host) else normalize_name(host)), port
    except InvalidInput as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be 0 or more seconds: {text!r}")
    return value


def _ca_bundle(text: str) -> str:
    """Checked when parsing, so a bad bundle stops the run before anything is ordered."""
    from ..errors import InvalidInput
    from ..trust import load_ca_bundle

    try:
        load_ca_bundle(text)
    except InvalidInput as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def run_verify(args: argparse.Namespace, bundle: CertificateBundle) -> int:
    """``--verify`` after ``issue``: 0 when every endpoint serves ``bundle`` (or no --verify)."""
    return verify_certificate(args, bundle.certificate, bundle.names)


def verify_installed(args: argparse.Namespace, out: Path, names: Sequence[str]) -> int:
    """``--verify`` after a renewal: the certificate is ``out/cert.pem``."""
    from cryptography import x509

    from ..errors import InvalidInput

    if not getattr(args, "verify", None):
        return 0
    try:
        cert = x509.load_pem_x509_certificate((out / "cert.pem").read_bytes())
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"cannot read {out / 'cert.pem'} to verify it: {exc}") from exc
    return verify_certificate(args, cert, names)


def verify_certificate(
    args: argparse.Namespace, certificate: x509.Certificate, names: Sequence[str]
) -> int:
    """Verify every ``--verify`` endpoint; print one line per name; the exit code."""
    from ..verify import verify_deployment

    targets: list[tuple[str, int]] = getattr(args, "verify", None) or []
    code = 0
    for host, port in targets:
        serial = serial_hex(certificate.serial_number)
        log.info(
            "verifying that %s serves serial %s for %d name(s), waiting up to %g s",
            f"[{host}]:{port}" if ":" in host else f"{host}:{port}",
            "0" * (len(serial) % 2) + serial,
            len(names),
            args.verify_timeout,
        )
        report = verify_deployment(
            certificate,
            names,
            host,
            port,
            ca_bundle=args.verify_ca_bundle,
            timeout=args.verify_timeout,
        )
        for line in render_lines(report):
            print(printable(line), file=sys.stderr)
        if not report.ok:
            code = EXIT_NOT_SERVED
    return code


def render_lines(report: VerifyReport) -> list[str]:
    return [render_line(report, index) for index in range(len(report.results))]


def render_line(report: VerifyReport, index: int) -> str:
    """``verify HOST:PORT NAME: ok|FAIL [after N attempts in S s]: detail``."""
    result = report.results[index]
    name = result.name
    if result.sni is not None and result.sni != name:
        name += f" (SNI {result.sni})"
    verdict = "ok" if result.ok else "FAIL"
    if result.attempts > 1:
        verdict += f" after {result.attempts} attempts in {result.seconds:.1f} s"
    return f"verify {report.where} {name}: {verdict}: {result.detail}"
