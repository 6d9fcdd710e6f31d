"""Options and wiring shared by the subcommands: server, CA bundle, account."""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

from ..constants import DEFAULT_TIMEOUT

if TYPE_CHECKING:
    from ..account_store import AccountStore
    from ..client import AcmeClient, ExternalAccountBinding

__all__ = [
    "DEFAULT_TIMEOUT",
    "SERVER_ALIASES",
    "account_store",
    "add_account_arguments",
    "add_output_arguments",
    "default_account_key",
    "open_client",
    "server_url",
]

#: ``--server`` aliases for well-known public ACME CAs.
SERVER_ALIASES = {
    "letsencrypt": "https://acme-v02.api.letsencrypt.org/directory",
    "letsencrypt-staging": "https://acme-staging-v02.api.letsencrypt.org/directory",
    "zerossl": "https://acme.zerossl.com/v2/DV90",
    "google": "https://dv.acme-v02.api.pki.goog/directory",
    "google-staging": "https://dv.acme-v02.test-api.pki.goog/directory",
}


def default_account_key() -> Path:
    """``--account-key`` when none is given: ``$XDG_CONFIG_HOME/acmelite/account.key``."""
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "acmelite" / "account.key"


def seconds(text: str) -> float:
    """argparse type for a timeout: a number of seconds > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0 seconds: {text!r}")
    return value


def add_output_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="more detail on stderr (-vv: HTTP wire too); causes on errors",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress lines")


def add_account_arguments(
    parser: argparse.ArgumentParser, *, contact: bool = True, registration: bool = True
) -> None:
    """``--server``, ``--ca-bundle``, ``--account-key``, ``--timeout``, ``--insecure``; with
    ``contact`` also ``--email``; with ``registration`` also ``--agree-tos`` and EAB (only
    commands that may create an account take those)."""
    g = parser.add_argument_group("CA and account")
    g.add_argument(
        "--server",
        default=os.environ.get("ACMELITE_SERVER", "letsencrypt"),
        metavar="URL|ALIAS",
        help="ACME directory URL or alias: "
        + ", ".join(SERVER_ALIASES)
        + " (default letsencrypt; env ACMELITE_SERVER)",
    )
    g.add_argument(
        "--ca-bundle",
        default=os.environ.get("ACMELITE_CA_BUNDLE"),
        metavar="PATH",
        help="CA certificates that verify the ACME server's HTTPS (env ACMELITE_CA_BUNDLE)",
    )
    g.add_argument(
        "--account-key",
        type=Path,
        metavar="PATH",
        default=os.environ.get("ACMELITE_ACCOUNT_KEY") or default_account_key(),
        help="account key PEM; created (EC P-256, mode 0600) when missing"
        " (default ~/.config/acmelite/account.key)",
    )
    if contact:
        g.add_argument(
            "--email",
            action="append",
            default=[],
            metavar="EMAIL",
            help="account contact (optional, repeatable)",
        )
    if registration:
        _add_registration_arguments(g)
    g.add_argument(
        "--timeout",
        type=seconds,
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help=f"give up on the whole run after this long (default {DEFAULT_TIMEOUT:.0f}: an"
        " order stuck at the CA must not hang a cron job for ever)",
    )
    g.add_argument(
        "--insecure",
        action="store_true",
        help="DANGEROUS, for test CAs only: do not verify the ACME server's HTTPS"
        " certificate (warns on every run)",
    )


def server_url(value: str, *, insecure: bool = False) -> str:
    """The directory URL of ``--server`` (an alias or a URL); :class:`UsageError` if neither,
    or if it is plain HTTP without ``--insecure`` (a test CA)."""
    from .output import UsageError

    url = SERVER_ALIASES.get(value, value)
    if not url.startswith(("https://", "http://")):
        known = ", ".join(SERVER_ALIASES)
        raise UsageError(f"--server {value!r} is neither a URL nor an alias ({known})")
    if url.startswith("http://") and not insecure:
        raise UsageError(
            f"--server {url} is plain HTTP: signed requests and the account URL would travel"
            " unprotected; use the CA's https:// URL (--insecure allows it for a test CA)"
        )
    return url


def account_store(args: argparse.Namespace) -> AccountStore:
    from ..account_store import AccountStore

    return AccountStore(args.account_key)


def _add_registration_arguments(g: argparse._ArgumentGroup) -> None:
    g.add_argument(
        "--agree-tos",
        action="store_true",
        help="agree to the CA's terms of service; required to create an account",
    )
    g.add_argument("--eab-kid", metavar="KID", help="External Account Binding key id")
    key = g.add_mutually_exclusive_group()
    key.add_argument(
        "--eab-hmac-key",
        metavar="B64URL",
        default=os.environ.get("ACMELITE_EAB_HMAC_KEY"),
        help="External Account Binding HMAC key (visible to other users in the process"
        " list: prefer --eab-hmac-key-file or $ACMELITE_EAB_HMAC_KEY)",
    )
    key.add_argument(
        "--eab-hmac-key-file",
        type=Path,
        metavar="PATH",
        help="a file holding the External Account Binding HMAC key (keep it 0600)",
    )
    g.add_argument("--eab-hmac-alg", default="HS256", choices=("HS256", "HS384", "HS512"))


def eab_from_args(args: argparse.Namespace) -> ExternalAccountBinding | None:
    from ..client import ExternalAccountBinding
    from .output import UsageError

    kid = getattr(args, "eab_kid", None)
    path = getattr(args, "eab_hmac_key_file", None)
    key = _read_eab_key(path) if path is not None else getattr(args, "eab_hmac_key", None)
    if bool(kid) != bool(key):
        raise UsageError("--eab-kid and --eab-hmac-key (or --eab-hmac-key-file) go together")
    if not kid or not key:
        return None
    return ExternalAccountBinding(kid=kid, hmac_key=key, alg=args.eab_hmac_alg)


def _read_eab_key(path: Path) -> str:
    """The HMAC key in ``path`` (surrounding whitespace dropped); never shown in a message."""
    from ..errors import InvalidInput

    try:
        text = path.read_text(encoding="ascii").strip()
        mode = path.stat().st_mode
    except (OSError, UnicodeDecodeError) as exc:
        why = getattr(exc, "strerror", None) or "not base64url text"
        raise InvalidInput(f"cannot read --eab-hmac-key-file {path}: {why}") from None
    if not text:
        raise InvalidInput(f"--eab-hmac-key-file {path} is empty")
    if mode & 0o077:
        logging.getLogger("acmelite.cli").warning(
            "%s can be read by other users (mode %04o): chmod 600 it", path, mode & 0o777
        )
    return text


def open_client(
    args: argparse.Namespace, *, register: bool = True, create_key: bool = True
) -> AcmeClient:
    """A client for ``--server`` with the account of ``--account-key`` (see
    :meth:`acmelite.account_store.AccountStore.client`)."""
    return account_store(args).client(
        server_url(args.server, insecure=getattr(args, "insecure", False)),
        ca_bundle=args.ca_bundle,
        insecure=getattr(args, "insecure", False),
        timeout=getattr(args, "timeout", None),
        create_key=create_key,
        register=register,
        agree_tos=getattr(args, "agree_tos", False),
        contact=getattr(args, "email", ()),
        eab=eab_from_args(args) if register else None,
    )
