"""``acmelite issue``: order, solve, finalize, download and install a certificate."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ..constants import KEY_TYPES, serial_hex
from .challenge_options import add_challenge_arguments, challenge_config
from .common import add_account_arguments, add_output_arguments, server_url
from .verify_options import add_verify_arguments, run_verify

if TYPE_CHECKING:
    from ..client import CertificateBundle
    from ..config import CertificateConfig

__all__ = ["add_parser", "run"]

log = logging.getLogger("acmelite.cli")

_EXAMPLES = """examples:
  acmelite issue -d example.com -d www.example.com --agree-tos --email ops@example.com \\
      --webroot /var/www/html --out /etc/acmelite/example.com
  acmelite issue -d '*.team-ns.svc.clusterset.local' --challenge dns-01 --dns rfc2136 \\
      --dns-server ns1.internal --tsig-secret-file acme.key --out /etc/acmelite/team-ns
  acmelite issue -d api.example.com --challenge dns-01 --dns NAME --dns-option KEY=VALUE \\
      --out /etc/acmelite/api      # any installed solver: see `acmelite plugins`"""


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "issue",
        help="get a certificate and install it in --out (renewable by `acmelite renew`)",
        description="Get a certificate for the given names and write key, cert, chain and"
        " fullchain to --out, with renewal.json so that `acmelite renew` can renew it.",
        epilog=_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
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
    add_challenge_arguments(p)
    add_verify_arguments(p)
    p.add_argument("--json", action="store_true", help="print a JSON summary on stdout")
    add_output_arguments(p)
    p.set_defaults(func=run, parser=p)


def _secret_ref(text: str) -> str:
    """argparse type for ``--k8s-secret NAME[/NAMESPACE]``: checked, kept as text."""
    from ..deploy import SecretRef
    from ..errors import InvalidInput

    try:
        return str(SecretRef.parse(text))
    except InvalidInput as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _add_deploy_arguments(parser: argparse.ArgumentParser) -> None:
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
        type=_secret_ref,
        metavar="NAME[/NAMESPACE]",
        help="also write --out/secret.yaml, a kubernetes.io/tls Secret for kubectl apply -f",
    )


def _names(args: argparse.Namespace) -> list[str]:
    """The names to issue for: ``-d``, or the CSR's (which must then agree)."""
    from ..csr import csr_identifiers, load_csr
    from ..errors import InvalidInput
    from ..names import parse_identifiers, was_converted
    from .output import UsageError

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
        raise UsageError("no names: give at least one -d NAME")
    for original in dict.fromkeys(names):
        ident = parse_identifiers([original])[0]
        if ident.type == "dns" and was_converted(original, ident.value):
            log.info("note: %s is written %s in certificates (IDNA A-label)", original, ident.value)
    return names


def _config(args: argparse.Namespace) -> tuple[CertificateConfig, dict[str, str]]:
    """Every check that needs no network, and the configuration they describe.

    Wrong options and values are :class:`UsageError` (exit 2); unreadable files named by
    options (a CSR, a key file) are :class:`InvalidInput` (exit 1).
    """
    from ..config import CertificateConfig
    from ..errors import InvalidInput
    from ..solvers.registry import solvers_for
    from .output import UsageError

    challenge, runtime = challenge_config(args, args.parser)
    names = _names(args)
    if args.out is None and args.csr is None:
        raise UsageError("--out DIR is required (the private key must be written somewhere)")
    if args.out is None and (args.deploy_hook or args.k8s_secret):
        raise UsageError("--deploy-hook and --k8s-secret need --out DIR")
    if args.webroot is not None and not os.path.isdir(args.webroot):
        raise UsageError(f"--webroot {args.webroot} is not a directory")
    try:
        solvers_for(challenge, environ={**os.environ, **runtime})  # every option value checked
    except InvalidInput as exc:
        raise UsageError(str(exc)) from exc
    if args.tsig_secret:
        log.info(
            "note: the TSIG secret is not stored; 'acmelite renew' reads it from"
            " $ACMELITE_TSIG_SECRET (or use --tsig-secret-file)"
        )
    try:
        config = CertificateConfig(
            names=tuple(names),
            server=server_url(args.server, insecure=getattr(args, "insecure", False)),
            account_key=str(args.account_key),
            challenge=challenge,
            ca_bundle=args.ca_bundle or None,
            key_type=args.key_type,
            csr=str(args.csr) if args.csr is not None else None,
            profile=args.profile,
            preferred_chain=args.preferred_chain,
            deploy_hook=args.deploy_hook,
            k8s_secret=args.k8s_secret,
            contact=tuple(args.email),
            timeout=args.timeout,
        )
    except InvalidInput as exc:  # names and option values that cannot go together
        raise UsageError(str(exc), code=exc.code) from exc
    return config, runtime


def run(args: argparse.Namespace) -> int:
    """parse -> :class:`CertificateConfig` -> the library -> render."""
    from ..issuance import issue
    from ..managed import CleanupIncomplete, DeployFailed, ManagedCertificate
    from .common import eab_from_args

    config, runtime = _config(args)
    environ = {**os.environ, **runtime}
    eab = eab_from_args(args)
    if args.out is None:
        bundle = issue(config, agree_tos=args.agree_tos, eab=eab, environ=environ,
                       insecure=args.insecure)  # fmt: skip
        if bundle.cleanup_error is not None:  # issued, but records left: exit non-zero
            _report(args, bundle, failed=True)
            raise bundle.cleanup_error
        _report(args, bundle)
        return run_verify(args, bundle)
    try:
        cert = ManagedCertificate.create(args.out, config, agree_tos=args.agree_tos, eab=eab,
                                         environ=environ, insecure=args.insecure)  # fmt: skip
    except (DeployFailed, CleanupIncomplete) as exc:
        if exc.certificate.last_bundle is not None:
            _report(args, exc.certificate.last_bundle, failed=True)
        raise
    installed = cert.last_bundle
    if installed is None:  # create() always sets it; a None would be a bug, not a result
        raise RuntimeError("ManagedCertificate.create returned no certificate")
    _report(args, installed)
    return run_verify(args, installed)


def _report(args: argparse.Namespace, bundle: CertificateBundle, *, failed: bool = False) -> None:
    """The summary (``--json``) or the chain (no ``--out``) on stdout, progress on stderr.
    ``failed``: the certificate exists but the run fails after it (deploy hook, cleanup);
    with ``--json`` the error object is then the one object on stdout."""
    cert = bundle.certificate
    files = {}
    if args.out is not None:
        files = {name: str(Path(args.out) / name) for name in bundle.files()}
    summary = {
        "ok": True,
        "names": list(bundle.names),
        "files": files,
        "serial": serial_hex(cert.serial_number),
        "not_before": cert.not_valid_before_utc.isoformat(),
        "not_after": cert.not_valid_after_utc.isoformat(),
        "issuer": cert.issuer.rfc4514_string(),
        "certificate_url": bundle.certificate_url,
    }
    if args.json:
        if not failed:
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
