"""``acmelite revoke``: revoke a certificate (RFC 8555 §7.6).

Signed by the account of ``--account-key`` (the account that ordered the certificate), or,
with ``--key``, by the certificate's own private key: that needs no account at all, which
is the way out when the account key is lost, and the right signer after a key compromise.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

from ..constants import REVOCATION_REASONS, serial_hex
from ..text import printable
from .common import add_account_arguments, add_output_arguments

if TYPE_CHECKING:
    from cryptography import x509

    from ..client import AcmeClient

__all__ = ["REASONS", "add_parser", "run"]

log = logging.getLogger("acmelite.cli")

#: ``--reason`` names: the CRL reasons of RFC 5280 §5.3.1 a subscriber may give.
#: The reasons a subscriber may give: every CRL reason but a CA's own compromise.
REASONS = tuple(r for r in REVOCATION_REASONS if r != "cACompromise")


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "revoke",
        help="revoke a certificate",
        description="Revoke a certificate, signed by the account key or, with --key, by the"
        " certificate's own key (no account needed).",
        epilog="examples:\n"
        "  acmelite revoke --cert /etc/acmelite/example.com/cert.pem --reason superseded\n"
        "  acmelite revoke --cert leaked.pem --key leaked-key.pem --reason keyCompromise",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--cert",
        type=Path,
        required=True,
        metavar="PATH",
        help="the certificate, PEM or DER (of a chain such as fullchain.pem, the first one)",
    )
    p.add_argument("--reason", choices=REASONS, help="CRL reason (RFC 5280); default: none given")
    p.add_argument(
        "--key",
        type=Path,
        metavar="PATH",
        help="sign with the certificate's private key instead of the account key",
    )
    add_account_arguments(p, contact=False, registration=False)
    p.add_argument("--json", action="store_true", help="print a JSON summary on stdout")
    add_output_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..csr import certificate_names
    from ..errors import AcmeliteError, ProblemError

    cert = _load_certificate(args.cert)
    serial = serial_hex(cert.serial_number)
    names = certificate_names(cert)
    shown = f"certificate {serial} ({', '.join(names) or 'no names'})"
    client = _client(args, cert)
    try:
        if args.key is not None:
            client.revoke_certificate(cert, args.reason, cert_key=client.account_key)
        else:
            client.revoke_certificate(cert, args.reason)
    except ProblemError as exc:
        kind = exc.problem.short_type
        if kind == "alreadyRevoked":
            raise AcmeliteError(f"{shown} is already revoked") from exc
        if kind == "unauthorized" and args.key is None:
            raise AcmeliteError(
                f"the CA does not let this account revoke {shown}: {exc.problem.detail};"
                " sign with the certificate's own key instead: --key PATH"
            ) from exc
        raise
    signer = "certificate key" if args.key is not None else "account"
    summary = {
        "ok": True,
        "serial": serial,
        "names": names,
        "reason": args.reason,
        "signed_by": signer,
        "account": client.account_url or None,
    }
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(
            printable(f"revoked {shown}, reason {args.reason or '(none)'}, signed by the {signer}")
        )
    return 0


def _client(args: argparse.Namespace, cert: x509.Certificate) -> AcmeClient:
    """With --key: a client whose only key is the certificate's; no account file is touched."""
    from ..client import AcmeClient
    from ..csr import public_keys_match
    from ..errors import InvalidInput
    from ..keys import AccountKey, load_private_key
    from ..transport import Transport
    from .common import open_client, server_url

    if args.key is None:
        if not Path(args.account_key).is_file():
            raise InvalidInput(
                f"no account key at {args.account_key}; sign with the certificate's own key"
                " instead: --key PATH"
            )
        return open_client(args)
    try:
        data = args.key.read_bytes()
    except OSError as exc:
        raise InvalidInput(f"cannot read --key {args.key}: {exc.strerror}") from None
    key = load_private_key(data, source=f"--key {args.key}")
    if not public_keys_match(cert, key):
        raise InvalidInput(
            f"--key {args.key} is not the private key of the certificate in {args.cert}"
        )
    if args.ca_bundle and not os.path.isfile(args.ca_bundle):
        raise InvalidInput(f"--ca-bundle {args.ca_bundle}: no such file")
    transport = Transport(ca_bundle=args.ca_bundle, insecure=getattr(args, "insecure", False))
    url = server_url(args.server, insecure=getattr(args, "insecure", False))
    return AcmeClient(url, AccountKey(key), transport=transport)


def _load_certificate(path: Path) -> x509.Certificate:
    from cryptography import x509

    from ..errors import InvalidInput

    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InvalidInput(f"cannot read --cert {path}: {exc.strerror}") from None
    try:
        if b"-----BEGIN" in data:
            return x509.load_pem_x509_certificates(data)[0]
        return x509.load_der_x509_certificate(data)
    except ValueError:
        raise InvalidInput(f"--cert {path}: not a PEM or DER certificate") from None
