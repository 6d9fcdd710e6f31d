"""Options and wiring shared by the subcommands: server, CA bundle, account."""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..client import AcmeClient, ExternalAccountBinding
    from ..errors import InvalidInput, ProblemError

__all__ = [
    "DEFAULT_TIMEOUT",
    "SERVER_ALIASES",
    "add_account_arguments",
    "add_output_arguments",
    "open_client",
]

log = logging.getLogger("acmelite.cli")

#: ``--timeout`` when none is given, in seconds: generous for dns-01 propagation, yet finite.
DEFAULT_TIMEOUT = 600.0

#: ``--server`` aliases for well-known public ACME CAs.
SERVER_ALIASES = {
    "letsencrypt": "https://acme-v02.api.letsencrypt.org/directory",
    "letsencrypt-staging": "https://acme-staging-v02.api.letsencrypt.org/directory",
    "zerossl": "https://acme.zerossl.com/v2/DV90",
    "google": "https://dv.acme-v02.api.pki.goog/directory",
    "google-staging": "https://dv.acme-v02.test-api.pki.goog/directory",
}


def default_account_key() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "acmelite" / "account.key"


def add_output_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="more detail on stderr (-vv: HTTP wire too); causes on errors",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress lines")


def add_account_arguments(parser: argparse.ArgumentParser) -> None:
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
    g.add_argument(
        "--email",
        action="append",
        default=[],
        metavar="EMAIL",
        help="account contact (optional, repeatable)",
    )
    g.add_argument(
        "--agree-tos",
        action="store_true",
        help="agree to the CA's terms of service; required to create an account",
    )
    g.add_argument("--eab-kid", metavar="KID", help="External Account Binding key id")
    g.add_argument(
        "--eab-hmac-key",
        metavar="B64URL",
        default=os.environ.get("ACMELITE_EAB_HMAC_KEY"),
        help="External Account Binding HMAC key (env ACMELITE_EAB_HMAC_KEY)",
    )
    g.add_argument("--eab-hmac-alg", default="HS256", choices=("HS256", "HS384", "HS512"))
    g.add_argument(
        "--timeout",
        type=float,
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


def server_url(value: str) -> str:
    from ..errors import InvalidInput

    url = SERVER_ALIASES.get(value, value)
    if not url.startswith(("https://", "http://")):
        known = ", ".join(SERVER_ALIASES)
        raise InvalidInput(f"--server {value!r} is neither a URL nor an alias ({known})")
    return url


def _accounts_file(key_path: Path) -> Path:
    return key_path.with_name(key_path.name + ".accounts.json")


def read_account_urls(key_path: Path) -> dict[str, str]:
    """Account URLs known for this key, by directory URL (stored beside the key)."""
    try:
        data = json.loads(_accounts_file(key_path).read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {str(k): str(v) for k, v in data.items()}


def save_account_url(key_path: Path, directory_url: str, account_url: str | None) -> None:
    from ..storage import atomic_write

    urls = read_account_urls(key_path)
    if account_url:
        urls[directory_url] = account_url
    else:
        urls.pop(directory_url, None)
    atomic_write(_accounts_file(key_path), json.dumps(urls, indent=2).encode() + b"\n", mode=0o600)


def load_or_create_account_key(path: Path) -> tuple[object, bool]:
    from ..keys import AccountKey
    from ..storage import atomic_write, ensure_private_dir

    if path.exists():
        return AccountKey.load(path), False
    ensure_private_dir(path.parent)
    key = AccountKey.generate("ec256")
    atomic_write(path, key.to_pem(), mode=0o600)
    log.info("created account key %s", path)
    return key, True


def eab_from_args(args: argparse.Namespace) -> ExternalAccountBinding | None:
    from ..client import ExternalAccountBinding
    from ..errors import InvalidInput

    if bool(args.eab_kid) != bool(args.eab_hmac_key):
        raise InvalidInput("--eab-kid and --eab-hmac-key go together")
    if not args.eab_kid:
        return None
    return ExternalAccountBinding(
        kid=args.eab_kid, hmac_key=args.eab_hmac_key, alg=args.eab_hmac_alg
    )


def open_client(args: argparse.Namespace, *, register: bool = True) -> AcmeClient:
    """A client for ``--server`` with the account of ``--account-key`` ready to use.

    A known account URL (stored beside the key after the first registration) costs no
    request at all; otherwise the account is looked up or, with ``--agree-tos``, created.
    """
    from ..client import AcmeClient
    from ..errors import InvalidInput, ProblemError
    from ..keys import AccountKey
    from ..transport import Transport

    url = server_url(args.server)
    if args.ca_bundle and not os.path.isfile(args.ca_bundle):
        raise InvalidInput(f"--ca-bundle {args.ca_bundle}: no such file")
    key, _created = load_or_create_account_key(Path(args.account_key))
    assert isinstance(key, AccountKey)  # noqa: S101 - narrowing for mypy
    known = read_account_urls(Path(args.account_key)).get(url)
    transport = Transport(ca_bundle=args.ca_bundle, insecure=getattr(args, "insecure", False))
    if getattr(args, "timeout", None):
        # --timeout bounds every request of the run, the directory and account ones too.
        transport.deadline = time.monotonic() + args.timeout
    client = AcmeClient(url, key, transport=transport, account_url=known)
    if known or not register:
        return client
    eab = eab_from_args(args)
    try:
        client.register(
            contact=args.email,
            agree_tos=args.agree_tos,
            eab=eab,
            only_return_existing=not args.agree_tos,
        )
    except ProblemError as exc:
        better = explain_registration_error(client, exc, eab)
        if better is None:
            raise
        raise better from exc
    save_account_url(Path(args.account_key), url, client.account_url)
    return client


def explain_registration_error(
    client: AcmeClient, exc: ProblemError, eab: ExternalAccountBinding | None
) -> InvalidInput | None:
    """One line saying what to do about a newAccount problem, or None to show it as is."""
    from ..errors import InvalidInput

    kind = exc.problem.short_type
    if kind == "accountDoesNotExist":
        tos = client.directory.terms_of_service
        return InvalidInput(
            "no account exists for this key at the CA; pass --agree-tos to create one"
            + (f" (terms: {tos})" if tos else "")
        )
    if kind == "externalAccountRequired":
        return InvalidInput(
            "this CA requires External Account Binding: pass --eab-kid and --eab-hmac-key"
            " from your CA account"
        )
    if eab is not None and kind == "unauthorized":
        return InvalidInput(
            f"the CA refused the External Account Binding of key id {eab.kid!r}"
            f" ({exc.problem.detail or 'no detail given'}); check --eab-kid, --eab-hmac-key and"
            " --eab-hmac-alg against your CA account (some CAs accept each key id only once)"
        )
    return None


def forget_stale_account(args: argparse.Namespace, client: AcmeClient) -> None:
    """Drop a stored account URL the CA no longer knows (e.g. a restarted test CA)."""
    save_account_url(Path(args.account_key), client.directory_url, None)
