"""``acmelite renew``: renew the certificates that are due and leave the rest.

Each directory was written by ``acmelite issue --out DIR``; its ``renewal.json`` says how
to issue again and ``.renewal-state.json`` remembers the ARI window, the moment picked in
it and past failures (see :mod:`acmelite.renewal`). Safe to run from cron every hour: a
certificate that is not due costs at most one ARI request per ``Retry-After``, and one
that failed waits out its back-off without a single request.

Exit status:
    0  nothing renewed and nothing failed (not due, backing off, --dry-run)
    1  at least one certificate failed (its old files keep serving)
    2  usage error
    3  at least one certificate renewed, none failed
    4  with --verify: a renewed certificate is not what the endpoint serves (see --verify)
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from .common import DEFAULT_TIMEOUT, add_output_arguments
from .verify_options import EXIT_NOT_SERVED, add_verify_arguments, verify_installed

if TYPE_CHECKING:
    from cryptography import x509

    from ..client import AcmeClient, CertificateBundle
    from ..models import RenewalInfo
    from ..renewal import Decision, RenewalConfig, RenewalState
    from ..solvers.base import Solver

__all__ = ["EXIT_RENEWED", "add_parser", "renewal_config", "run", "run_hook", "secret_ref"]

log = logging.getLogger("acmelite.cli")

EXIT_RENEWED = 3


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "renew",
        help="renew the certificates that are due",
        description="Renew the certificates in the given output directories that are due:"
        " inside the CA's ARI window (RFC 9773), else when a third of the lifetime remains"
        " (half for certificates of 10 days or less). Exit status: 0 nothing renewed and"
        " nothing failed, 3 renewed at least one and none failed, 1 any failed.",
    )
    p.add_argument(
        "dirs",
        nargs="*",
        type=Path,
        metavar="DIR",
        help="output directories written by 'acmelite issue --out'",
    )
    p.add_argument(
        "--all-under",
        action="append",
        type=Path,
        default=[],
        metavar="PATH",
        help="also every directory below PATH that holds a renewal.json",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="renew now, due or not, even while backing off after failures",
    )
    p.add_argument(
        "--reuse-key",
        action="store_true",
        help="keep the current private key instead of making a new one",
    )
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="decide and print, change nothing (no order, no file written)",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help=f"give up on one certificate after this long (default {DEFAULT_TIMEOUT:.0f})",
    )
    p.add_argument(
        "--json", action="store_true", help="print each certificate's decision as JSON on stdout"
    )
    add_verify_arguments(p)
    add_output_arguments(p)
    p.set_defaults(func=run)


# -- shared with ``issue`` -------------------------------------------------------------------


def secret_ref(text: str) -> str:
    """argparse type for ``--k8s-secret NAME[/NAMESPACE]``: checked, kept as text."""
    from ..deploy import SecretRef
    from ..errors import InvalidInput

    try:
        return str(SecretRef.parse(text))
    except InvalidInput as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def renewal_config(args: argparse.Namespace, names: Sequence[str]) -> RenewalConfig:
    """What ``issue`` writes to ``renewal.json``: its options, paths made absolute, no secret."""
    from ..renewal import DNS_KEYS, RenewalConfig
    from .common import server_url

    challenge: dict[str, object] = {"type": args.challenge}
    if args.challenge == "http-01":
        challenge["http_port"] = args.http_port
        challenge["http_address"] = args.http_address
        challenge["webroot"] = _absolute(args.webroot)
    else:
        for key in DNS_KEYS:
            value = getattr(args, key, None)
            if value is not None:
                challenge[key] = value
        if challenge.get("tsig_secret_file"):
            challenge["tsig_secret_file"] = _absolute(Path(str(challenge["tsig_secret_file"])))
        elif getattr(args, "tsig_secret", None):
            log.info(
                "note: the TSIG secret is not stored; 'acmelite renew' reads it from"
                " $ACMELITE_TSIG_SECRET (or use --tsig-secret-file)"
            )
    return RenewalConfig(
        server=server_url(args.server),
        names=tuple(names),
        key_type=args.key_type,
        account_key=_absolute(Path(args.account_key)) or "",
        ca_bundle=_absolute(Path(args.ca_bundle)) or "" if args.ca_bundle else "",
        challenge=challenge,
        profile=args.profile or "",
        preferred_chain=args.preferred_chain or "",
        deploy_hook=args.deploy_hook or "",
        k8s_secret=args.k8s_secret or "",
        csr=_absolute(args.csr) or "",
    )


def _absolute(path: Path | None) -> str | None:
    return None if path is None else os.path.abspath(path)


def write_k8s_secret(out: Path, ref: str, bundle: CertificateBundle) -> None:
    from ..deploy import SecretRef, write_secret

    path = write_secret(
        out, SecretRef.parse(ref), fullchain_pem=bundle.fullchain_pem, key_pem=bundle.key_pem
    )
    log.info("wrote %s (Secret %s)", path, ref)


def run_hook(command: str, out: Path, names: Sequence[str]) -> None:
    """Run the deploy hook; its output goes to stderr as progress lines."""
    from ..deploy import run_deploy_hook

    log.info("running deploy hook: %s", command)
    output = run_deploy_hook(command, cert_dir=out, names=names)
    for line in output.splitlines():
        log.info("  hook: %s", line)


# -- renew -----------------------------------------------------------------------------------


@dataclass
class Outcome:
    """One certificate's decision, as printed (``--json`` shows every field)."""

    dir: Path
    status: str  # not-due | due (--dry-run) | renewed | failed | backing-off | skipped
    reason: str
    names: tuple[str, ...] = ()
    serial: str = ""
    not_after: dt.datetime | None = None
    window: RenewalInfo | None = None
    renew_at: dt.datetime | None = None
    next_check: dt.datetime | None = None
    failures: int = 0
    replaced: str = ""
    order_url: str = ""

    def to_json(self) -> dict[str, object]:
        def iso(value: dt.datetime | None) -> str | None:
            return None if value is None else value.isoformat()

        window = None
        if self.window is not None:
            window = {
                "start": iso(self.window.start),
                "end": iso(self.window.end),
                "explanation_url": self.window.explanation_url or None,
            }
        return {
            "dir": str(self.dir),
            "status": self.status,
            "reason": self.reason,
            "names": list(self.names),
            "serial": self.serial or None,
            "not_after": iso(self.not_after),
            "ari_window": window,
            "renew_at": iso(self.renew_at),
            "next_check": iso(self.next_check),
            "failures": self.failures,
            "replaces": self.replaced or None,
            "order_url": self.order_url or None,
        }

    def line(self) -> str:
        text = f"{self.dir}: {self.status}: {self.reason}"
        if self.next_check is not None and self.status != "renewed":
            text += f"; next check {self.next_check.strftime('%Y-%m-%d %H:%M UTC')}"
        return text


def run(args: argparse.Namespace) -> int:
    from ..errors import InvalidInput
    from . import EXIT_ERROR, EXIT_OK

    dirs = _directories(args.dirs, args.all_under)
    if not dirs:
        raise InvalidInput("nothing to renew: give DIR ... or --all-under PATH")
    outcomes = [_renew_dir(d, args) for d in dirs]
    if args.json:
        print(json.dumps([o.to_json() for o in outcomes], indent=2))
    else:
        for outcome in outcomes:
            print(outcome.line())
    verified = [verify_installed(args, o.dir, o.names) for o in outcomes if o.status == "renewed"]
    if any(o.status == "failed" for o in outcomes):
        return EXIT_ERROR
    if any(verified):
        return EXIT_NOT_SERVED
    return EXIT_RENEWED if any(o.status == "renewed" for o in outcomes) else EXIT_OK


def _directories(dirs: Sequence[Path], roots: Sequence[Path]) -> list[Path]:
    from ..renewal import CONFIG_FILE

    found = [Path(os.path.abspath(d)) for d in dirs]
    for root in roots:
        for here, subdirs, files in os.walk(root):
            subdirs[:] = sorted(s for s in subdirs if not s.startswith("."))
            if CONFIG_FILE in files:
                found.append(Path(os.path.abspath(here)))
    return list(dict.fromkeys(found))


def _renew_dir(out: Path, args: argparse.Namespace) -> Outcome:
    from ..errors import AcmeliteError
    from ..renewal import load_config
    from ..storage import OutputLock

    try:
        config = load_config(out)
    except AcmeliteError as exc:
        log.error("%s: %s", out, exc)
        return Outcome(dir=out, status="failed", reason=str(exc))
    lock = None if args.dry_run else OutputLock(out)
    if lock is not None:
        try:
            lock.__enter__()
        except AcmeliteError as exc:
            return Outcome(dir=out, status="skipped", reason=str(exc), names=config.names)
    renewal = _Renewal(out, config, args)
    try:
        return renewal.run()
    finally:
        renewal.close()
        if lock is not None:
            lock.__exit__(None, None, None)


class _Renewal:
    """One directory: decide, and when due issue, install, deploy — or record the failure."""

    def __init__(self, out: Path, config: RenewalConfig, args: argparse.Namespace) -> None:
        self.out = out
        self.config = config
        self.args = args
        self.result = Outcome(dir=out, status="", reason="", names=config.names)
        self._client: AcmeClient | None = None

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    def client(self) -> AcmeClient:
        from .common import open_client

        if self._client is None:
            self._client = open_client(self._account_args())
        return self._client

    def _account_args(self) -> argparse.Namespace:
        from .common import default_account_key

        config = self.config
        return argparse.Namespace(
            server=config.server, ca_bundle=config.ca_bundle or None,
            account_key=Path(config.account_key or default_account_key()), email=[],
            agree_tos=False, eab_kid=None, eab_hmac_key=None, eab_hmac_alg="HS256",
            timeout=self.args.timeout,  # bounds every request for this certificate
        )  # fmt: skip

    def done(self, status: str, reason: str, next_check: dt.datetime | None = None) -> Outcome:
        self.result.status, self.result.reason = status, reason
        self.result.next_check = next_check
        return self.result

    def run(self) -> Outcome:
        from ..renewal import Decision, load_state, now_utc, save_state

        now = now_utc()
        state = load_state(self.out)
        cert = _current_certificate(self.out)
        if cert is not None:
            self.result.serial = format(cert.serial_number, "x")
            self.result.not_after = cert.not_valid_after_utc
        if state.deploy_pending and cert is not None and not self.args.dry_run:
            if not self._deploy_again():
                return self.result
            state = load_state(self.out)
        self.result.failures = state.failures
        if not self.args.force and state.next_attempt is not None and now < state.next_attempt:
            reason = (
                f"backing off until {state.next_attempt:%Y-%m-%d %H:%M UTC} after"
                f" {state.failures} failed attempt(s); last error: {state.last_error}"
            )
            return self.done("backing-off", reason, state.next_attempt)
        if cert is None:
            decision = Decision(due=True, reason="no readable cert.pem", next_check=now)
        else:
            decision, state = self._decide(cert, state, now)
        self.result.window, self.result.renew_at = decision.window, decision.renew_at
        if not decision.due:
            if not self.args.dry_run:
                save_state(self.out, state)
            return self.done("not-due", decision.reason, decision.next_check)
        if self.args.dry_run:
            return self.done("due", decision.reason, now)
        log.info("%s: due: %s", self.out, decision.reason)
        return self._renew(cert, state, decision.reason)

    def _decide(
        self, cert: x509.Certificate, state: RenewalState, now: dt.datetime
    ) -> tuple[Decision, RenewalState]:
        from ..errors import AcmeliteError
        from ..renewal import certificate_id, decide, refresh_ari

        ari = state.ari
        try:
            cert_id = certificate_id(cert)
            if ari is None or ari.cert_id != cert_id or now >= ari.next_fetch:
                ari = refresh_ari(self.client(), cert, previous=state.ari, now=now)
                state = replace(state, ari=ari)
        except AcmeliteError as exc:
            log.warning("%s: no ARI (%s); using the lifetime rule", self.out, exc)
            ari = None
        return decide(cert, now=now, ari=ari, force=self.args.force), state

    def _renew(self, cert: x509.Certificate | None, state: RenewalState, why: str) -> Outcome:
        from ..deploy import DeployHookError
        from ..errors import AcmeliteError
        from ..renewal import RenewalState, now_utc, save_state

        try:
            bundle, replaced = self._issue(cert)
            bundle.write(self.out)
            if self.config.k8s_secret:
                write_k8s_secret(self.out, self.config.k8s_secret, bundle)
        except AcmeliteError as exc:
            state = state.failed(str(exc), now=now_utc())
            save_state(self.out, state)
            log.error("%s: renewal failed (attempt %d); the old files stay: %s",
                      self.out, state.failures, exc)  # fmt: skip
            self.result.failures = state.failures
            return self.done("failed", f"{why}; renewal failed: {exc}", state.next_attempt)
        new = bundle.certificate
        state = RenewalState(last_renewal=now_utc())
        save_state(self.out, state)
        result = self.result
        result.serial, result.not_after = format(new.serial_number, "x"), new.not_valid_after_utc
        result.failures, result.replaced, result.order_url = 0, replaced or "", bundle.order_url
        reason = f"{why}; new certificate valid until {new.not_valid_after_utc:%Y-%m-%d %H:%M UTC}"
        if self.config.deploy_hook:
            try:
                run_hook(self.config.deploy_hook, self.out, self.config.names)
            except DeployHookError as exc:
                save_state(self.out, replace(state, deploy_pending=True, last_error=str(exc)))
                log.error("%s: %s", self.out, exc)
                return self.done("failed", f"{reason}, but {exc}; it runs again on the next renew")
        return self.done("renewed", reason)

    def _deploy_again(self) -> bool:
        """Run the hook that failed after the last renewal; False (and a result) if it fails."""
        from ..deploy import DeployHookError
        from ..renewal import load_state, save_state

        log.info("%s: the deploy hook failed last time; running it again", self.out)
        try:
            run_hook(self.config.deploy_hook, self.out, self.config.names)
        except DeployHookError as exc:
            save_state(self.out, replace(load_state(self.out), last_error=str(exc)))
            log.error("%s: %s", self.out, exc)
            self.done("failed", f"the deploy hook failed again: {exc}")
            return False
        save_state(self.out, replace(load_state(self.out), deploy_pending=False, last_error=""))
        return True

    def _issue(self, cert: x509.Certificate | None) -> tuple[CertificateBundle, str | None]:
        """Order as ``issue`` did, with ``replaces`` (RFC 9773 §5); without it if refused."""
        from ..csr import certificate_names
        from ..errors import ProblemError
        from ..renewal import certificate_id, refused_replaces, shares_a_name
        from .common import forget_stale_account

        client = self.client()
        replaces = None
        old_names = certificate_names(cert) if cert is not None else []
        if cert is not None and client.directory.renewal_info:
            replaces = certificate_id(cert) if shares_a_name(self.config.names, old_names) else None
        try:
            return self._order(client, replaces), replaces
        except ProblemError as exc:
            if replaces and exc.url == client.directory.new_order and refused_replaces(exc):
                log.warning("the CA refused replaces=%s (%s); ordering without it", replaces, exc)
                return self._order(client, None), None
            if exc.problem.short_type != "accountDoesNotExist":
                raise
            log.info("the CA no longer knows the stored account; looking it up again")
            forget_stale_account(self._account_args(), client)
            client.close()
            self._client = None
            return self._order(self.client(), replaces), replaces

    def _order(self, client: AcmeClient, replaces: str | None) -> CertificateBundle:
        from ..csr import load_csr
        from ..errors import InvalidInput
        from ..keys import load_private_key

        config = self.config
        csr = key = None
        path = Path(config.csr) if config.csr else self.out / "privkey.pem"
        try:
            if config.csr:
                csr = load_csr(path.read_bytes(), source=str(path))
            elif self.args.reuse_key:
                key = load_private_key(path.read_bytes(), source=str(path))
        except OSError as exc:
            raise InvalidInput(f"cannot read {path}: {exc.strerror}") from None
        return client.issue(
            list(config.names), solver=_solver(config), key_type=config.key_type,
            private_key=key, csr=csr, profile=config.profile or None, replaces=replaces,
            preferred_chain=config.preferred_chain or None, timeout=self.args.timeout,
        )  # fmt: skip


def _current_certificate(out: Path) -> x509.Certificate | None:
    from cryptography import x509

    try:
        return x509.load_pem_x509_certificate((out / "cert.pem").read_bytes())
    except (OSError, ValueError) as exc:
        log.warning("%s: no readable cert.pem (%s); renewing", out, exc)
        return None


def _solver(config: RenewalConfig) -> Solver:
    from ..renewal import DNS_KEYS
    from ..solvers.http01 import StandaloneSolver, WebrootSolver

    settings = config.challenge
    if settings.get("type") == "dns-01":
        from .dns_options import build_dns_solver

        options = {key: settings.get(key) for key in DNS_KEYS}
        if options["dns_propagation_timeout"] is None:
            options["dns_propagation_timeout"] = 120.0
        return build_dns_solver(argparse.Namespace(tsig_secret=None, **options))
    webroot = settings.get("webroot")
    if isinstance(webroot, str) and webroot:
        return WebrootSolver(webroot)
    port = settings.get("http_port")
    address = settings.get("http_address")
    return StandaloneSolver(
        port=port if isinstance(port, int) else 80,
        address=address if isinstance(address, str) else "",
    )
