"""``acmelite account``: look an account up, create, update or deactivate it, roll its key over.

Every action but ``register`` works on an existing key and account: it never creates a key
file, and it looks the account up by key first (RFC 8555 §7.3.1), so a stored account URL
the CA has forgotten is no trap.

Key rollover (RFC 8555 §7.3.5) writes nothing over the key file before the CA has said yes:

1. a generated new key is first saved as ``<key>.new`` (0600), so it survives a lost answer;
2. keyChange, signed by the old key, carrying an inner JWS signed by the new one;
3. only after a 200: the old key is copied to ``<key>.old``, the new key replaces ``<key>``
   (each by an atomic rename, 0600), and ``<key>.new`` goes.

A refusal (or a check that fails before sending) removes ``<key>.new`` and leaves ``<key>``
as it was. A lost answer keeps ``<key>.new``: the CA may have made the change.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from ..constants import KEY_TYPES
from ..text import printable
from .common import add_account_arguments, add_output_arguments

if TYPE_CHECKING:
    from ..client import AcmeClient
    from ..keys import AccountKey
    from ..models import Account

__all__ = ["add_parser", "run"]

log = logging.getLogger("acmelite.cli")


_ACTION_EXAMPLES = {
    "show": "acmelite account show --server letsencrypt --json",
    "register": "acmelite account register --agree-tos --email ops@example.com"
    " --eab-kid KID --eab-hmac-key B64URL --server zerossl",
    "update": "acmelite account update --email ops@example.com --email sec@example.com",
    "deactivate": "acmelite account deactivate --yes-deactivate",
    "rollover": "acmelite account rollover --key-type ec384",
}

_ACTIONS = {
    "show": "look up the account of --account-key: URL, status, contact",
    "register": "create the account for --account-key (or find the one it has)",
    "update": "replace the account's contact addresses",
    "deactivate": "deactivate the account for good (needs --yes-deactivate)",
    "rollover": "replace the account key; the key file changes only after the CA agreed",
}


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "account",
        help="show, register, update or deactivate the account; roll its key over",
        description="Manage the ACME account of --account-key (RFC 8555 §7.3).",
    )
    actions = p.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    parsers = {}
    for name, text in _ACTIONS.items():
        sub = actions.add_parser(
            name, help=text, description=text[0].upper() + text[1:] + ".",
            epilog=f"example:\n  {_ACTION_EXAMPLES[name]}",
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )  # fmt: skip
        parsers[name] = sub
    parsers["update"].add_argument(
        "--no-email", action="store_true", help="remove every contact address"
    )
    parsers["deactivate"].add_argument(
        "--yes-deactivate",
        action="store_true",
        help="confirm: neither the account nor its key can ever be used again at this CA",
    )
    new = parsers["rollover"].add_argument_group("new key").add_mutually_exclusive_group()
    new.add_argument(
        "--new-key", type=Path, metavar="PATH", help="use this key (EC or RSA PEM) as the new one"
    )
    new.add_argument(
        "--key-type", choices=KEY_TYPES, default="ec256", help="generate a key of this type"
    )
    for name, sub in parsers.items():
        add_account_arguments(
            sub, contact=name in ("register", "update"), registration=name == "register"
        )
        sub.add_argument("--json", action="store_true", help="print a JSON summary on stdout")
        add_output_arguments(sub)
        sub.set_defaults(func=run, usage_error=sub.error)


def run(args: argparse.Namespace) -> int:
    actions = {
        "show": _show,
        "register": _register,
        "update": _update,
        "deactivate": _deactivate,
        "rollover": _rollover,
    }
    return actions[args.action](args)


# -- the actions ---------------------------------------------------------------------------


def _show(args: argparse.Namespace) -> int:
    client = _existing_client(args)
    _print_account(args, client, _lookup(args, client))
    return 0


def _register(args: argparse.Namespace) -> int:
    """Find the account first, so an existing one never spends a (single-use) EAB credential."""
    from ..account_store import AccountNotFound
    from ..errors import ProblemError
    from .common import account_store, eab_from_args, open_client

    eab = eab_from_args(args)
    client = open_client(args, register=False)
    state = "existing"
    try:
        account = client.find_account()
    except ProblemError as exc:
        if exc.problem.short_type != "accountDoesNotExist":
            raise
        if not args.agree_tos:
            raise AccountNotFound(
                directory_url=client.directory_url,
                key_path=str(args.account_key),
                terms_of_service=client.directory.terms_of_service,
            ) from exc
        account = client.register(contact=args.email, agree_tos=True, eab=eab)
        state = "created"
    else:
        if args.email or eab is not None:
            log.info(
                "the account exists already: --email and EAB were not sent"
                " (change contacts with `acmelite account update`)"
            )
    account_store(args).remember(client.directory_url, account.url)
    _print_account(args, client, account, state=state)
    return 0


def _update(args: argparse.Namespace) -> int:
    if bool(args.email) == bool(args.no_email):
        args.usage_error("give the new contacts with --email ADDRESS (repeatable), or --no-email")
    client = _existing_client(args)
    _lookup(args, client)
    account = client.update_account(contact=[] if args.no_email else args.email)
    _print_account(args, client, account)
    return 0


def _deactivate(args: argparse.Namespace) -> int:
    if not args.yes_deactivate:
        args.usage_error(
            "deactivation cannot be undone: the CA will refuse this account and its key for"
            " good; add --yes-deactivate to confirm"
        )
    client = _existing_client(args)
    _lookup(args, client)
    account = client.deactivate_account()
    _print_account(args, client, account)
    log.info(
        "this key can no longer be used at %s; a new account needs a new --account-key",
        client.directory_url,
    )
    return 0


def _rollover(args: argparse.Namespace) -> int:
    from ..errors import AcmeliteError, InvalidInput, ProblemError
    from ..keys import AccountKey
    from ..storage import atomic_write

    path = Path(args.account_key)
    client = _existing_client(args)
    account = _lookup(args, client)
    old_key = client.account_key
    old_pem = _read(path, "account key")
    pending: Path | None = None
    if args.new_key is not None:
        if args.new_key.resolve() == path.resolve():
            raise InvalidInput(f"--new-key {args.new_key} is the account key itself")
        new_pem = _read(args.new_key, "--new-key")
        new_key = AccountKey.from_pem(new_pem, source=f"--new-key {args.new_key}")
    else:
        new_key = AccountKey.generate(args.key_type)
        new_pem = new_key.to_pem()
        pending = _sibling(path, ".new")
        atomic_write(pending, new_pem, mode=0o600)
    try:
        client.change_key(new_key)
    except (ProblemError, InvalidInput):
        # The CA said no, or a check refused before sending: the account keeps the old key.
        if pending is not None:
            pending.unlink(missing_ok=True)
        raise
    except AcmeliteError as exc:
        kept = pending if pending is not None else args.new_key
        raise AcmeliteError(
            f"keyChange got no clear answer ({exc}); the account may now use the new key, kept"
            f" in {kept}: check with `acmelite account show --account-key {kept}`."
            f" {path} is unchanged"
        ) from exc
    old_path = _sibling(path, ".old")
    atomic_write(old_path, old_pem, mode=0o600)
    atomic_write(path, new_pem, mode=0o600)
    if pending is not None:
        pending.unlink(missing_ok=True)
    _print_rollover(
        args,
        account_url=account.url,
        path=path,
        old_path=old_path,
        old_key=old_key,
        new_key=new_key,
    )
    return 0


# -- helpers -------------------------------------------------------------------------------


def _existing_client(args: argparse.Namespace) -> AcmeClient:
    """A client for an existing account key file; never creates one."""
    from ..errors import InvalidInput
    from .common import open_client

    path = Path(args.account_key)
    if not path.is_file():
        raise InvalidInput(
            f"no account key at {path}; create one with `acmelite account register --agree-tos`"
            " or point --account-key at yours"
        )
    return open_client(args, register=False, create_key=False)


def _lookup(args: argparse.Namespace, client: AcmeClient) -> Account:
    """The account of the key (RFC 8555 §7.3.1); its URL is stored beside the key."""
    from ..errors import AcmeliteError, ProblemError
    from .common import account_store

    path = Path(args.account_key)
    store = account_store(args)
    try:
        account = client.find_account()
    except ProblemError as exc:
        if exc.problem.short_type != "accountDoesNotExist":
            raise
        store.forget(client.directory_url)
        raise AcmeliteError(
            f"no account for this key ({path}) at {client.directory_url}; create one with"
            " `acmelite account register --agree-tos`"
        ) from exc
    store.remember(client.directory_url, account.url)
    return account


def _read(path: Path, what: str) -> bytes:
    from ..errors import InvalidInput

    try:
        return path.read_bytes()
    except OSError as exc:
        raise InvalidInput(f"cannot read {what} {path}: {exc.strerror}") from None


def _sibling(path: Path, suffix: str) -> Path:
    return path.with_name(path.name + suffix)


def _print_account(
    args: argparse.Namespace, client: AcmeClient, account: Account, *, state: str = ""
) -> None:
    from ..challenges import account_label

    key = client.account_key
    label = account_label(account.url)
    summary: dict[str, object] = {
        "ok": True,
        "url": account.url,
        "dns_account_label": label,
        "status": account.status,
        "contact": list(account.contact),
        "orders": account.orders,
        "server": client.directory_url,
        "key_file": str(args.account_key),
        "key_alg": key.alg,
        "key_thumbprint": key.thumbprint(),
    }
    if state:
        summary["state"] = state
    if args.json:
        print(json.dumps(summary, indent=2))
        return
    rows = [
        ("account", account.url),
        ("status", account.status + (f" ({state})" if state else "")),
        ("contact", ", ".join(account.contact) or "(none)"),
        ("key", f"{args.account_key} ({key.alg}, thumbprint {key.thumbprint()})"),
        ("dns-account-01 label", f"{label} (records at {label}._acme-challenge.NAME)"),
    ]
    _print_rows(rows)


def _print_rollover(
    args: argparse.Namespace,
    *,
    account_url: str,
    path: Path,
    old_path: Path,
    old_key: AccountKey,
    new_key: AccountKey,
) -> None:
    if args.json:
        summary = {
            "ok": True,
            "url": account_url,
            "key_file": str(path),
            "old_key_file": str(old_path),
            "key_alg": new_key.alg,
            "key_thumbprint": new_key.thumbprint(),
            "old_key_thumbprint": old_key.thumbprint(),
        }
        print(json.dumps(summary, indent=2))
        return
    _print_rows(
        [
            ("account", account_url),
            ("new key", f"{path} ({new_key.alg}, thumbprint {new_key.thumbprint()})"),
            ("old key", f"{old_path} ({old_key.alg}, thumbprint {old_key.thumbprint()})"),
        ]
    )


def _print_rows(rows: list[tuple[str, str]]) -> None:
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        print(f"{label:<{width}}  {printable(value)}")
