"""Managed certificates: one directory that acmelite issues into, renews and deploys from.

A certificate directory holds the served files (``privkey.pem``, ``cert.pem``,
``chain.pem``, ``fullchain.pem``, installed atomically by :mod:`acmelite.storage`), its
configuration (``renewal.json``, a :class:`~acmelite.config.CertificateConfig`), what
renewal learned (``.renewal-state.json``, a :class:`~acmelite.renewal.RenewalState`) and a
lock. :class:`ManagedCertificate` is that directory as an object::

    cert = ManagedCertificate.create("/etc/acmelite/api", config, agree_tos=True)
    result = ManagedCertificate.open("/etc/acmelite/api").renew()   # hourly

Theory of operation — one :meth:`ManagedCertificate.renew`, the policy being
:func:`acmelite.renewal.decide` and this module doing the I/O around it:

1. take the directory's lock (held by another run: ``skipped``); a deploy hook that failed
   after the last issuance runs again first;
2. during a back-off after failures: ``backing-off``, no request at all;
3. fetch the ARI window when the stored answer is stale (``AcmeClient.renewal_info``),
   and decide; not due: ``not-due`` with the next moment worth a look;
4. due: order with ``replaces`` (RFC 9773 §5) and, if the CA refuses it, without; a stored
   account URL the CA no longer knows is looked up again
   (:func:`~acmelite.account_store.retry_stale_account`);
5. install all files at once, write the Kubernetes Secret, reset the state, run the
   deploy hook (a failure is remembered, and retried on every later run); a failed
   issuance keeps the old files and starts the back-off: ``failed``. A ``rateLimited``
   answer is no failure of the certificate: it waits for the CA's ``Retry-After``
   (``rate-limited``; the failure count and back-off stay as they were). Nor is a request
   the shared client's circuit breaker held back (:class:`~acmelite.errors.CaUnavailable`:
   the CA account failed request after request in this run): ``ca-unavailable``, with the
   breaker's wait as the next attempt; for the ARI request, the lifetime rule decides.

For a fleet (:mod:`acmelite.fleet`), :meth:`ManagedCertificate.renew` takes a
:class:`~acmelite.client_pool.SharedClient` (one client for every certificate of a CA
account) and a ``before_order`` hook, asked once the certificate is due and before the
order: it may hold the order back with a :class:`Hold` (the account's rate limit, the
run's order budget), recorded in the state when it names an ``until``.

Nothing here prints or reads the command line; progress goes to :mod:`logging`.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from cryptography import x509

from .client import CertificateBundle, ExternalAccountBinding
from .client_pool import SharedClient
from .config import CONFIG_FILE, STATE_FILE, CertificateConfig, load_config, save_config
from .constants import serial_hex
from .csr import certificate_id, certificate_names
from .deploy import SecretRef, run_deploy_hook, write_secret
from .errors import (
    AcmeliteError,
    CaUnavailable,
    CleanupFailed,
    DeployHookError,
    DirectoryLocked,
    InvalidInput,
    ProblemError,
    RateLimitedError,
)
from .issuance import Issuer
from .keys import PrivateKey, load_private_key
from .models import RenewalInfo
from .renewal import (
    RATE_LIMIT_WAIT,
    Decision,
    RenewalState,
    ari_answered,
    ari_failed,
    ari_unsupported,
    decide,
    now_utc,
    shares_a_name,
    window_json,
)
from .storage import OutputLock, atomic_write, check_output_dir, check_trusted
from .transport import deadline_scope

__all__ = [
    "STATE_FILE",
    "CleanupIncomplete",
    "DeployFailed",
    "Hold",
    "Inspection",
    "ManagedCertificate",
    "RenewalResult",
    "load_state",
    "save_state",
    "unavailable",
]

log = logging.getLogger(__name__)


class DeployFailed(AcmeliteError):
    """The certificate is installed, but the deploy hook failed; it runs again on the next
    renewal. ``certificate`` is the directory, ``hook_error`` the hook's failure."""

    def __init__(self, certificate: ManagedCertificate, hook_error: DeployHookError) -> None:
        super().__init__(
            f"the certificate is installed in {certificate.path}, but {hook_error};"
            " the hook runs again on the next renewal"
        )
        self.certificate = certificate
        self.hook_error = hook_error


class CleanupIncomplete(AcmeliteError):
    """The certificate is installed (and deployed), but the solver's cleanup failed:
    ``cleanup_error.records`` are still published. ``certificate`` is the directory."""

    def __init__(self, certificate: ManagedCertificate, cleanup_error: CleanupFailed) -> None:
        super().__init__(
            f"the certificate is installed in {certificate.path}, but the challenge cleanup"
            f" failed: {cleanup_error}",
            code="cleanup-failed",
        )
        self.certificate = certificate
        self.cleanup_error = cleanup_error


@dataclass(frozen=True, slots=True, kw_only=True)
class RenewalResult:
    """One certificate's renewal decision and outcome.

    ``status`` is ``renewed``, ``not-due``, ``failed``, ``skipped`` (another run holds the
    lock), ``backing-off`` (waiting after failures, or for a CA's rate limit; no request
    made), ``rate-limited`` (the CA refused the order for now; not a failure),
    ``ca-unavailable`` (not tried: the CA account's earlier requests in this run failed at
    the transport; not counted as a failure of this certificate), for a dry run ``due``, or
    what a ``before_order`` hook's :class:`Hold` said (``deferred``, ...).
    ``certificate`` is the new bundle when renewed; ``error`` the failure; ``warnings``
    what a person must act on before a later renewal fails (a dns-persist-01 record whose
    ``persistUntil`` is near).
    """

    path: Path
    status: str
    reason: str
    names: tuple[str, ...] = ()
    serial: str | None = None
    not_after: dt.datetime | None = None
    window: RenewalInfo | None = None
    renew_at: dt.datetime | None = None
    next_check: dt.datetime | None = None
    failures: int = 0
    replaces: str | None = None
    order_url: str | None = None
    certificate: CertificateBundle | None = None
    error: AcmeliteError | None = None
    warnings: tuple[str, ...] = ()

    def to_json(self) -> dict[str, object]:
        def iso(value: dt.datetime | None) -> str | None:
            return None if value is None else value.isoformat()

        return {
            "dir": str(self.path),
            "status": self.status,
            "reason": self.reason,
            "names": list(self.names),
            "serial": self.serial,
            "not_after": iso(self.not_after),
            "ari_window": window_json(self.window),
            "renew_at": iso(self.renew_at),
            "next_check": iso(self.next_check),
            "failures": self.failures,
            "replaces": self.replaces,
            "order_url": self.order_url,
            "warnings": list(self.warnings),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Inspection:
    """What :meth:`ManagedCertificate.inspect` read: the status ``result``, the ``state``
    and ``certificate`` (None: no readable ``cert.pem``), and the ``decision`` (None while
    backing off)."""

    result: RenewalResult
    state: RenewalState
    certificate: x509.Certificate | None
    decision: Decision | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Hold:
    """A ``before_order`` hook's answer that stops an order: the result's ``status`` and
    ``reason`` ("" keeps the decision's); with ``until``, no attempt before then
    (``next_attempt`` in the state, which is not a failure)."""

    status: str
    reason: str = ""
    until: dt.datetime | None = None


def unavailable(error: CaUnavailable, *, now: dt.datetime | None = None) -> Hold:
    """The :class:`Hold` of a certificate whose CA account's breaker held it back: no
    attempt for ``error.retry_after`` seconds, not counted as a failure."""
    until = (now or now_utc()) + dt.timedelta(seconds=error.retry_after)
    return Hold(status="ca-unavailable", reason=str(error), until=until)


#: ``before_order(certificate, decision)``: None to order, a :class:`Hold` not to.
BeforeOrder = Callable[["ManagedCertificate", Decision], "Hold | None"]


def save_state(directory: str | os.PathLike[str], state: RenewalState) -> None:
    """Write ``directory/.renewal-state.json`` atomically, 0600."""
    data = json.dumps(state.to_json(), indent=2).encode() + b"\n"
    atomic_write(Path(directory) / STATE_FILE, data, mode=0o600)


def load_state(directory: str | os.PathLike[str]) -> RenewalState:
    """The stored state; a missing or unreadable file is a fresh start (logged)."""
    path = Path(directory) / STATE_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return RenewalState()
    except (OSError, ValueError) as exc:
        log.warning("ignoring unreadable %s: %s", path, exc)
        return RenewalState()
    return RenewalState.from_json(data, source=str(path))


# -- the directory ---------------------------------------------------------------------------


class ManagedCertificate:
    """One certificate directory: its configuration, state, lock and files.

    Make one with :meth:`create` (issues into the directory) or :meth:`open` (an existing
    one, written by :meth:`create` or ``acmelite issue --out``).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        config: CertificateConfig,
        *,
        environ: Mapping[str, str] | None = None,
        insecure: bool = False,
    ) -> None:
        self.path = Path(os.path.abspath(path))
        self.config = config
        self._environ = environ
        self._insecure = insecure
        #: The bundle of the last issuance by this object (None after :meth:`open`).
        self.last_bundle: CertificateBundle | None = None

    def __repr__(self) -> str:
        return f"ManagedCertificate({str(self.path)!r}, names={list(self.config.names)!r})"

    @classmethod
    def create(
        cls,
        path: str | os.PathLike[str],
        config: CertificateConfig,
        *,
        agree_tos: bool = False,
        eab: ExternalAccountBinding | None = None,
        environ: Mapping[str, str] | None = None,
        insecure: bool = False,
    ) -> ManagedCertificate:
        """Issue a certificate into ``path`` (created, 0700) and make it renewable.

        The configuration is stored with absolute paths in ``renewal.json``; a directory
        that already holds a certificate gets a new one (the old files serve until the
        new ones are complete). Raises :class:`DeployFailed` when only the deploy hook
        failed (the certificate is installed; the hook runs again on the next renewal),
        :class:`CleanupIncomplete` when only the solver's cleanup failed (installed and
        deployed; the records it names are left),
        :class:`~acmelite.errors.DirectoryLocked` when another run holds the directory, and
        whatever :func:`issue` raises — in which case nothing in ``path`` changed.
        """
        config = config.absolute()
        cert = cls(path, config, environ=environ, insecure=insecure)
        check_output_dir(cert.path)
        issuer = Issuer(config, insecure=insecure, agree_tos=agree_tos, eab=eab, environ=environ)
        # The lock first: another run on this directory is said before anything else.
        with issuer, OutputLock(cert.path):
            issuer.prepare()  # solver options, a bound listener: before any request
            bundle, _ = issuer.issue()
            cert._install(bundle)
            save_config(cert.path, config)
            save_state(cert.path, RenewalState(last_renewal=now_utc()))
            hook_error = cert._deploy()
        cert.last_bundle = bundle
        if hook_error is not None:
            raise DeployFailed(cert, hook_error)
        if bundle.cleanup_error is not None:
            raise CleanupIncomplete(cert, bundle.cleanup_error)
        return cert

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        *,
        environ: Mapping[str, str] | None = None,
        insecure: bool = False,
        default_account_key: str = "",
        tree_root: str | os.PathLike[str] | None = None,
    ) -> ManagedCertificate:
        """The certificate directory at ``path``; :class:`InvalidInput` if it has no
        readable ``renewal.json``. ``default_account_key`` stands in for the key path of
        a 0.1.0 ``renewal.json`` that stored none.

        ``renewal.json`` is executable configuration (its hooks run as this process), so
        it and ``.renewal-state.json``, ``path`` and every directory up to ``tree_root``
        (the root of a tree being walked, if any) must belong to this user or root and be
        writable by nobody else; otherwise :class:`InvalidInput` (code
        ``untrusted-config``) names the offending file, its owner and its mode
        (:func:`acmelite.storage.check_trusted`)."""
        check_trusted(path, files=(CONFIG_FILE, STATE_FILE), up_to=tree_root)
        return cls(
            path, load_config(path, account_key=default_account_key), environ=environ,
            insecure=insecure,
        )  # fmt: skip

    # -- what is there ------------------------------------------------------------------------

    @property
    def state(self) -> RenewalState:
        return load_state(self.path)

    def certificate(self) -> x509.Certificate | None:
        """The installed certificate, or None when ``cert.pem`` is missing or unreadable."""
        try:
            return x509.load_pem_x509_certificate((self.path / "cert.pem").read_bytes())
        except (OSError, ValueError):
            return None

    def status(self, *, now: dt.datetime | None = None) -> RenewalResult:
        """Where this certificate stands, from its files alone (no request): ``status`` is
        what :meth:`renew` would do with the stored ARI answer — ``due``, ``not-due`` or
        ``backing-off``."""
        return self.inspect(now=now).result

    def inspect(self, *, now: dt.datetime | None = None) -> Inspection:
        """:meth:`status` with the state and certificate it was read from (each file read
        once: what an inventory of thousands of directories needs)."""
        now = now or now_utc()
        state, cert = self.state, self.certificate()
        base = self._result(cert, state)
        if state.next_attempt is not None and now < state.next_attempt:
            result = _backing_off(base, state, state.next_attempt)
            return Inspection(result=result, state=state, certificate=cert)
        decision = _decision(cert, state, now=now, force=False)
        result = _decided(base, decision, "due" if decision.due else "not-due")
        return Inspection(result=result, state=state, certificate=cert, decision=decision)

    # -- renewal ------------------------------------------------------------------------------

    def renew(
        self,
        *,
        force: bool = False,
        dry_run: bool = False,
        reuse_key: bool = False,
        timeout: float | None = None,
        refresh_ari: bool = False,
        shared: SharedClient | None = None,
        before_order: BeforeOrder | None = None,
    ) -> RenewalResult:
        """Renew if due (see the module's theory of operation); never raises for the CA's,
        the network's or the files' failures: they are the ``failed`` result (``error``),
        and the old files keep serving. ``dry_run`` decides and changes nothing;
        ``refresh_ari`` asks for the ARI window even when the cached answer is fresh;
        ``reuse_key`` keeps the private key; ``timeout`` bounds every request of this
        renewal (seconds; default: the configuration's). ``shared`` is the client (and
        solver) to use instead of ones of its own; ``before_order`` is asked before the
        order, and may hold it back (:class:`Hold`)."""
        timeout = timeout or self.config.timeout
        session = Issuer(self.config, insecure=self._insecure, environ=self._environ,
                         timeout=timeout, shared=shared)  # fmt: skip
        try:
            options = {"force": force, "reuse_key": reuse_key, "refresh_ari": refresh_ari}
            with deadline_scope(timeout):
                if dry_run:
                    result = self._renew(session, dry_run=True, before_order=None, **options)
                    return self._with_advice(session, result)
                try:
                    lock = OutputLock(self.path).__enter__()
                except DirectoryLocked as exc:
                    return RenewalResult(path=self.path, status="skipped", reason=str(exc),
                                         names=self.config.names)  # fmt: skip
                try:
                    result = self._renew(session, dry_run=False, before_order=before_order,
                                         **options)  # fmt: skip
                finally:
                    lock.__exit__(None, None, None)
                return self._with_advice(session, result)
        finally:
            session.close()

    def _with_advice(self, session: Issuer, result: RenewalResult) -> RenewalResult:
        """``result`` with the solver's warnings (logged), unless it was backing off."""
        if result.status == "backing-off":
            return result
        warnings = session.advice()
        for warning in warnings:
            log.warning("%s: %s", self.path, warning)
        return replace(result, warnings=tuple(warnings)) if warnings else result

    def _renew(
        self, session: Issuer, *, force: bool, dry_run: bool, reuse_key: bool, refresh_ari: bool,
        before_order: BeforeOrder | None,
    ) -> RenewalResult:  # fmt: skip
        now = now_utc()
        state, cert = self.state, self.certificate()
        stored = state
        if cert is None:
            log.warning("%s: no readable cert.pem; renewing", self.path)
        if state.deploy_pending and cert is not None and not dry_run:
            failed = self._deploy_again(cert, state)
            if failed is not None:
                return failed
            state = stored = self.state
        base = self._result(cert, state)
        if not force and state.next_attempt is not None and now < state.next_attempt:
            return _backing_off(base, state, state.next_attempt)
        if cert is not None:
            state = self._refresh_ari(session, cert, state, now, force_fetch=refresh_ari)
        decision = _decision(cert, state, now=now, force=force)
        if not decision.due:
            if not dry_run and state != stored:
                save_state(self.path, state)
            return _decided(base, decision, "not-due")
        if dry_run:
            return _decided(base, decision, "due")
        hold = before_order(self, decision) if before_order is not None else None
        if hold is not None:
            return self._held(base, state, stored, decision, hold)
        log.info("%s: due: %s", self.path, decision.reason)
        return self._reissue(session, cert, state, decision, reuse_key=reuse_key)

    def _held(
        self, base: RenewalResult, state: RenewalState, stored: RenewalState, decision: Decision,
        hold: Hold, *, error: AcmeliteError | None = None,
    ) -> RenewalResult:  # fmt: skip
        """The result of an order held back (the state records ``hold.until``, if any)."""
        if hold.until is not None:
            state = state.held(hold.until, hold.reason)
        if state != stored:
            save_state(self.path, state)
        result = _decided(base, decision, hold.status)
        return replace(result, reason=hold.reason or result.reason,
                       next_check=hold.until or result.next_check, error=error)  # fmt: skip

    def _refresh_ari(
        self, session: Issuer, cert: x509.Certificate, state: RenewalState, now: dt.datetime,
        *, force_fetch: bool = False,
    ) -> RenewalState:  # fmt: skip
        """The state with a fresh ARI answer when the stored one is stale (RFC 9773 §4.3)."""
        try:
            cert_id = certificate_id(cert)
        except InvalidInput as exc:
            log.warning("%s: no ARI (%s); using the lifetime rule", self.path, exc)
            return replace(state, ari=None)
        ari = state.ari
        if not force_fetch and ari is not None and ari.cert_id == cert_id and now < ari.next_fetch:
            return state
        try:
            client = session.open()
            if not client.directory.renewal_info:
                return replace(state, ari=ari_unsupported(cert_id, now=now))
            window, retry_after = client.renewal_info(cert)
        except AcmeliteError as exc:
            # Held back by the breaker: said once, when it opened; not per certificate.
            level = logging.INFO if isinstance(exc, CaUnavailable) else logging.WARNING
            log.log(level, "%s: no ARI (%s); using the lifetime rule", self.path, exc)
            wait = exc.retry_after if isinstance(exc, ProblemError) else None
            return replace(state, ari=ari_failed(cert_id, str(exc), retry_after=wait, now=now))
        record = ari_answered(cert_id, window, retry_after=retry_after, previous=ari, now=now)
        return replace(state, ari=record)

    def _reissue(
        self, session: Issuer, cert: x509.Certificate | None, state: RenewalState,
        decision: Decision, *, reuse_key: bool,
    ) -> RenewalResult:  # fmt: skip
        base = _decided(self._result(cert, state), decision, "")
        replaces = None
        if cert is not None and shares_a_name(self.config.names, certificate_names(cert)):
            try:
                replaces = certificate_id(cert)
            except InvalidInput as exc:  # no AKI (not from an ACME CA): a new order, no replaces
                log.info("%s: ordering without replaces: %s", self.path, exc)
        try:
            key = self._current_key() if reuse_key and self.config.csr is None else None
            bundle, replaced = session.issue(private_key=key, replaces=replaces)
            self._install(bundle)
        except RateLimitedError as exc:
            now = now_utc()
            wait = (
                RATE_LIMIT_WAIT
                if exc.retry_after is None
                else dt.timedelta(seconds=exc.retry_after)
            )
            state = state.held(now + wait, f"rate limited by the CA: {exc}")
            save_state(self.path, state)
            log.warning("%s: the CA refused the order for now; no attempt before %s: %s",
                        self.path, _when(now + wait), exc)  # fmt: skip
            return replace(base, status="rate-limited", reason=f"{decision.reason}; rate"
                           f" limited: {exc}", next_check=now + wait, error=exc)  # fmt: skip
        except CaUnavailable as exc:
            log.info("%s: %s", self.path, exc)
            return self._held(base, state, self.state, decision, unavailable(exc), error=exc)
        except AcmeliteError as exc:
            state = state.failed(str(exc), now=now_utc())
            save_state(self.path, state)
            log.error("%s: renewal failed (attempt %d); the old files stay: %s",
                      self.path, state.failures, exc)  # fmt: skip
            return replace(base, status="failed", reason=f"{decision.reason}; renewal failed:"
                           f" {exc}", failures=state.failures, next_check=state.next_attempt,
                           error=exc)  # fmt: skip
        self.last_bundle = bundle
        new = bundle.certificate
        save_state(self.path, RenewalState(last_renewal=now_utc()))
        reason = f"{decision.reason}; new certificate valid until {_when(new.not_valid_after_utc)}"
        result = replace(
            base, status="renewed", reason=reason, serial=serial_hex(new.serial_number),
            not_after=new.not_valid_after_utc, failures=0, replaces=replaced,
            order_url=bundle.order_url or None, certificate=bundle, next_check=None,
        )  # fmt: skip
        hook_error = self._deploy()
        if hook_error is not None:
            return replace(
                result,
                status="failed",
                error=hook_error,
                reason=f"{reason}, but {hook_error}; it runs again on the next renew",
            )
        if bundle.cleanup_error is not None:  # renewed all the same: the run still says so
            left = CleanupIncomplete(self, bundle.cleanup_error)
            log.error("%s: %s", self.path, left)
            return replace(result, error=left, reason=f"{reason}, but the challenge cleanup"
                           f" failed: {bundle.cleanup_error}")  # fmt: skip
        return result

    def _current_key(self) -> PrivateKey:
        path = self.path / "privkey.pem"
        try:
            return load_private_key(path.read_bytes(), source=str(path))
        except OSError as exc:
            raise InvalidInput(f"cannot read {path}: {exc.strerror}") from None

    # -- installing and deploying ---------------------------------------------------------------

    def _install(self, bundle: CertificateBundle) -> None:
        bundle.write(self.path)
        if self.config.k8s_secret:
            written = write_secret(
                self.path,
                SecretRef.parse(self.config.k8s_secret),
                fullchain_pem=bundle.fullchain_pem,
                key_pem=bundle.key_pem,
            )
            log.info("wrote %s (Secret %s)", written, self.config.k8s_secret)

    def _deploy(self) -> DeployHookError | None:
        """Run the deploy hook, if any; its failure is recorded and returned."""
        command = self.config.deploy_hook
        if not command:
            return None
        log.info("running deploy hook: %s", command)
        try:
            output = run_deploy_hook(command, cert_dir=self.path, names=self.config.names)
        except DeployHookError as exc:
            log.error("%s: %s", self.path, exc)
            save_state(self.path, replace(self.state, deploy_pending=True, last_error=str(exc)))
            return exc
        for line in output.splitlines():
            log.info("  hook: %s", line)
        if self.state.deploy_pending:
            save_state(self.path, replace(self.state, deploy_pending=False, last_error=""))
        return None

    def _deploy_again(self, cert: x509.Certificate, state: RenewalState) -> RenewalResult | None:
        """Re-run a deploy hook that failed last time; a result only if it fails again."""
        log.info("%s: the deploy hook failed last time; running it again", self.path)
        error = self._deploy()
        if error is None:
            return None
        return replace(self._result(cert, self.state), status="failed", error=error,
                       reason=f"the deploy hook failed again: {error}")  # fmt: skip

    def _result(self, cert: x509.Certificate | None, state: RenewalState) -> RenewalResult:
        return RenewalResult(
            path=self.path, status="", reason="", names=self.config.names,
            serial=serial_hex(cert.serial_number) if cert is not None else None,
            not_after=cert.not_valid_after_utc if cert is not None else None,
            failures=state.failures,
        )  # fmt: skip


def _decision(
    cert: x509.Certificate | None, state: RenewalState, *, now: dt.datetime, force: bool
) -> Decision:
    if cert is None:
        return Decision(due=True, reason="no readable cert.pem", next_check=now)
    return decide(cert, now=now, ari=state.ari, force=force)


def _decided(base: RenewalResult, decision: Decision, status: str) -> RenewalResult:
    return replace(base, status=status, reason=decision.reason, window=decision.window,
                   renew_at=decision.renew_at, next_check=decision.next_check)  # fmt: skip


def _backing_off(base: RenewalResult, state: RenewalState, until: dt.datetime) -> RenewalResult:
    if state.hold_reason:
        reason = f"waiting until {_when(until)}: {state.hold_reason}"
    else:
        reason = (
            f"backing off until {_when(until)} after {state.failures} failed"
            f" attempt(s); last error: {state.last_error}"
        )
    return replace(base, status="backing-off", reason=reason, next_check=until)


def _when(value: dt.datetime) -> str:
    return value.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
