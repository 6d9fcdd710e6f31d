"""``acmelite issue``: order, solve, finalize, download and install a certificate."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from .common import add_account_arguments, add_output_arguments
from .verify_options import add_verify_arguments, run_verify

if TYPE_CHECKING:
    from ..client import AcmeClient, CertificateBundle
    from ..solvers.base import Solver

__all__ = ["add_parser", "run"]

log = logging.getLogger("acmelite.cli")

KEY_TYPES = ("ec256", "ec384", "rsa2048", "rsa3072", "rsa4096")


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "issue",
        help="get a certificate",
        description="Get a certificate for the given names and write key, cert, chain and"
        " fullchain to --out.",
    )
    p.add_argument(
        "-d",
        "--domain",
        dest="names",
        action="append",
        default=[],
        metavar="NAME",
        help="a DNS name, *.wildcard (dns-01) or IP address; repeat for more",
    )
    add_account_arguments(p)
    g = p.add_argument_group("certificate")
    g.add_argument(
        "--key-type",
        default="ec256",
        choices=KEY_TYPES,
        help="certificate key type (default ec256)",
    )
    g.add_argument("--csr", type=Path, metavar="PATH", help="use this CSR (PEM or DER)")
    g.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        help="write privkey.pem (0600), cert.pem, chain.pem, fullchain.pem here",
    )
    g.add_argument("--profile", metavar="NAME", help="certificate profile offered by the CA")
    g.add_argument(
        "--preferred-chain",
        metavar="ISSUER_CN",
        help="pick the alternate chain whose top issuer has this common name",
    )
    _add_deploy_arguments(p)
    c = p.add_argument_group("challenges")
    c.add_argument("--challenge", default="http-01", choices=("http-01", "dns-01"))
    c.add_argument(
        "--http-port",
        type=int,
        default=80,
        metavar="PORT",
        help="port of the standalone HTTP-01 server (default 80)",
    )
    c.add_argument(
        "--http-address",
        default="",
        metavar="ADDR",
        help="address of the standalone HTTP-01 server (default: all)",
    )
    c.add_argument(
        "--webroot",
        type=Path,
        metavar="DIR",
        help="serve HTTP-01 by writing files under DIR instead of running a server",
    )
    _add_dns_arguments(p)
    add_verify_arguments(p)
    p.add_argument("--json", action="store_true", help="print a JSON summary on stdout")
    add_output_arguments(p)
    p.set_defaults(func=run)


def _add_deploy_arguments(parser: argparse.ArgumentParser) -> None:
    from .renew import secret_ref

    g = parser.add_argument_group(
        "deployment",
        "Run after the files are in place; remembered in --out/renewal.json"
        " so that 'acmelite renew' does the same.",
    )
    g.add_argument(
        "--deploy-hook",
        metavar="CMD",
        help="shell command to run after the files are in place, with ACMELITE_CERT_DIR and"
        " ACMELITE_NAMES (space-separated) in its environment",
    )
    g.add_argument(
        "--k8s-secret",
        type=secret_ref,
        metavar="NAME[/NAMESPACE]",
        help="also write --out/secret.yaml, a kubernetes.io/tls Secret for kubectl apply -f",
    )


def _add_dns_arguments(parser: argparse.ArgumentParser) -> None:
    try:
        from .dns_options import add_dns_arguments
    except ImportError:  # pragma: no cover - the dns-01 options land with the DNS solvers
        return
    add_dns_arguments(parser)


def _solver(args: argparse.Namespace) -> Solver:
    from ..errors import InvalidInput
    from ..solvers.http01 import StandaloneSolver, WebrootSolver

    if args.challenge == "dns-01":
        try:
            from .dns_options import build_dns_solver
        except ImportError:  # pragma: no cover
            raise InvalidInput("dns-01 support is not installed") from None
        return build_dns_solver(args)
    if args.webroot is not None:
        return WebrootSolver(args.webroot)
    return StandaloneSolver(port=args.http_port, address=args.http_address)


def _validate(args: argparse.Namespace) -> tuple[list[str], object | None]:
    """Every check that needs no network: names, CSR, options."""
    from ..csr import csr_identifiers, load_csr
    from ..errors import InvalidInput
    from ..names import parse_identifiers

    csr = None
    names = list(args.names)
    if args.csr is not None:
        try:
            data = args.csr.read_bytes()
        except OSError as exc:
            raise InvalidInput(f"cannot read --csr {args.csr}: {exc.strerror}") from None
        csr = load_csr(data, source=f"--csr {args.csr}")
        csr_names = [i.value for i in parse_identifiers(csr_identifiers(csr))]
        if names:
            wanted = [i.value for i in parse_identifiers(names)]
            if sorted(set(wanted)) != sorted(set(csr_names)):
                raise InvalidInput(
                    f"the CSR's names ({', '.join(csr_names)}) differ from -d ({', '.join(wanted)})"
                )
        names = csr_names
    if not names:
        raise InvalidInput("no names: give at least one -d NAME")
    identifiers = parse_identifiers(names)
    for original, ident in zip(dict.fromkeys(names), identifiers, strict=False):
        if original.strip().rstrip(".").lower() != ident.value and ident.type == "dns":
            log.info("note: %s is written %s in certificates (IDNA A-label)", original, ident.value)
    wild = [i.value for i in identifiers if i.value.startswith("*.")]
    if wild and args.challenge != "dns-01":
        raise InvalidInput(
            f"{wild[0]} is a wildcard: wildcards can only be validated by dns-01;"
            " add --challenge dns-01 and a --dns solver"
        )
    if args.out is None and csr is None:
        raise InvalidInput("--out DIR is required (the private key must be written somewhere)")
    if args.webroot is not None and not args.webroot.is_dir():
        raise InvalidInput(f"--webroot {args.webroot} is not a directory")
    return [i.value for i in identifiers], csr


def run(args: argparse.Namespace) -> int:
    from ..errors import ProblemError
    from ..storage import OutputLock
    from .common import forget_stale_account, open_client

    names, csr = _validate(args)
    _validate_deploy(args, csr)
    solver = _solver(args)
    lock = OutputLock(args.out) if args.out is not None else None
    if lock is not None:
        lock.__enter__()
    try:
        client = open_client(args)
        try:
            bundle = _issue(client, args, names, solver, csr)
        except ProblemError as exc:
            if exc.problem.short_type != "accountDoesNotExist":
                raise
            log.info("the CA no longer knows the stored account; registering again")
            forget_stale_account(args, client)
            client = open_client(args)
            bundle = _issue(client, args, names, solver, csr)
        written = bundle.write(args.out) if args.out is not None else None
        hook_error = _after_install(args, bundle) if args.out is not None else None
    finally:
        if lock is not None:
            lock.__exit__(None, None, None)
    _report(args, bundle, written)
    if hook_error is not None:
        raise hook_error
    return run_verify(args, bundle)


def _validate_deploy(args: argparse.Namespace, csr: object | None) -> None:
    from ..errors import InvalidInput

    if args.out is None and (args.deploy_hook or args.k8s_secret):
        raise InvalidInput("--deploy-hook and --k8s-secret need --out DIR")
    if args.k8s_secret and csr is not None:
        raise InvalidInput("--k8s-secret needs the private key, which acmelite has not with --csr")


def _after_install(args: argparse.Namespace, bundle: CertificateBundle) -> Exception | None:
    """Secret, renewal.json, a fresh renewal state, then the deploy hook (its error returned)."""
    from ..deploy import DeployHookError
    from ..renewal import RenewalState, save_config, save_state
    from .renew import renewal_config, run_hook, write_k8s_secret

    if args.k8s_secret:
        write_k8s_secret(args.out, args.k8s_secret, bundle)
    save_config(args.out, renewal_config(args, list(bundle.names)))
    save_state(args.out, RenewalState())
    if not args.deploy_hook:
        return None
    try:
        run_hook(args.deploy_hook, args.out, bundle.names)
    except DeployHookError as exc:
        return exc
    return None


def _issue(
    client: AcmeClient,
    args: argparse.Namespace,
    names: list[str],
    solver: Solver,
    csr: object | None,
) -> CertificateBundle:
    from cryptography import x509

    return client.issue(
        names,
        solver=solver,
        key_type=args.key_type,
        csr=csr if isinstance(csr, x509.CertificateSigningRequest) else None,
        profile=args.profile,
        preferred_chain=args.preferred_chain,
        timeout=args.timeout,
    )


def _report(args: argparse.Namespace, bundle: CertificateBundle, written: Path | None) -> None:
    cert = bundle.certificate
    files = {}
    if args.out is not None:
        files = {name: str(Path(args.out) / name) for name in bundle.files()}
    summary = {
        "names": list(bundle.names),
        "files": files,
        "serial": format(cert.serial_number, "x"),
        "not_before": cert.not_valid_before_utc.isoformat(),
        "not_after": cert.not_valid_after_utc.isoformat(),
        "issuer": cert.issuer.rfc4514_string(),
        "certificate_url": bundle.certificate_url,
    }
    if args.json:
        print(json.dumps(summary, indent=2))
    elif args.out is None:
        sys.stdout.write(bundle.fullchain_pem.decode("ascii"))
    if not args.quiet:
        where = f" in {args.out}" if args.out is not None else ""
        log.info(
            "certificate for %s%s, serial %s, valid until %s",
            ", ".join(bundle.names),
            where,
            summary["serial"],
            summary["not_after"],
        )
    if written is not None:
        log.debug("version directory %s", os.fspath(written))
