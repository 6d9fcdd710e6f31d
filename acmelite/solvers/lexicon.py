"""The ``lexicon`` DNS-01 solver: the DNS providers of dns-lexicon (optional extra
``acmelite[lexicon]``).

dns-lexicon has one Python API over some 90 DNS providers' HTTP APIs; ``provider=NAME``
picks one and every other option this solver does not declare itself is one of that
provider's (``auth_token``, ``pdns_server``, ... — ``auth-token`` works too), given like
any option (``auth_token=@/etc/acmelite/token``) or in lexicon's own environment variables
(``LEXICON_CLOUDFLARE_AUTH_TOKEN``). An option whose name says it is a credential (token,
secret, password, key) is secret: from a file or the environment, never inline.

What acmelite does around lexicon, so it behaves like the built-in solvers:

* **the zone** is acmelite's (the ``zone`` option, else the SOA walk of
  :mod:`acmelite.dns.zone`), handed to the provider as its domain. Lexicon's ``Client``
  would guess it from the public suffix list — wrong for internal names (``a.example.test``
  in zone ``test.``) and downloaded on first use without a timeout — so the provider class
  is built directly and nothing is guessed or downloaded;
* **time**: each HTTP request the provider makes without a timeout gets ``timeout``
  (:func:`acmelite.http.default_timeout`);
* **errors** become :class:`~acmelite.errors.SolverError` with the provider's own words
  (the HTTP status and the API's message), never a traceback;
* **one writer per zone** (:func:`~acmelite.dns.zonelock.zone_lock`), and the zones of a
  batch one after the other: providers read, change and write whole record sets, and some
  backends lock more than one zone (PowerDNS with SQLite). A server error (HTTP 5xx) or a
  lost connection is tried again, twice, with a fresh provider object.
"""

from __future__ import annotations

import importlib
import logging
import re
import time
from collections.abc import Mapping, Sequence
from types import ModuleType
from typing import ClassVar, Protocol

import dns.exception

from ..challenges import SolverOption
from ..dns.challenge import (
    PROPAGATION_OPTIONS,
    DnsChallengeSolver,
    TxtRecord,
    number_option,
    propagation_from_options,
)
from ..dns.propagation import PropagationSettings
from ..dns.zone import absolute, in_zone
from ..dns.zonelock import zone_lock
from ..errors import InvalidInput, SolverError
from ..http import default_timeout, error_text, is_transient
from .registry import SolverConfigError

__all__ = ["LexiconSolver", "provider_options", "providers"]

log = logging.getLogger(__name__)

#: Providers that are no DNS hosting API (``auto`` guesses one from the NS records).
EXCLUDED = frozenset({"auto"})
_OPTION_NAME = re.compile(r"[a-z][a-z0-9_-]*")
_SECRET_WORDS = re.compile(r"token|secret|passw|key|credential|otp|cookie", re.IGNORECASE)
_INSTALL = "pip install 'acmelite[lexicon]'"
_ATTEMPTS = 3


class _Provider(Protocol):
    """The part of ``lexicon.interfaces.Provider`` this solver uses."""

    def authenticate(self) -> None: ...
    def create_record(self, rtype: str, name: str, content: str) -> bool: ...
    def delete_record(
        self,
        identifier: str | None = None,
        rtype: str | None = None,
        name: str | None = None,
        content: str | None = None,
    ) -> bool: ...
    def cleanup(self) -> None: ...


def _discovery() -> ModuleType:
    try:
        return importlib.import_module("lexicon._private.discovery")
    except ImportError as exc:
        raise InvalidInput(f"solver 'lexicon' needs dns-lexicon 3.x ({_INSTALL}): {exc}") from None


def providers() -> dict[str, bool]:
    """The installed lexicon's providers: name -> whether their extra packages are there."""
    found: dict[str, bool] = _discovery().find_providers()
    return {name: ok for name, ok in sorted(found.items()) if name not in EXCLUDED}


class _OptionRecorder:
    """Stands in for the ``argparse`` parser a provider describes its options to."""

    def __init__(self) -> None:
        self.options: dict[str, str] = {}

    def add_argument(self, *flags: str, **kwargs: object) -> None:
        long = next((f for f in flags if f.startswith("--")), flags[0] if flags else "")
        dest = str(kwargs.get("dest") or long.lstrip("-").replace("-", "_"))
        if dest:
            self.options[dest] = str(kwargs.get("help") or "")

    def add_mutually_exclusive_group(self, **kwargs: object) -> _OptionRecorder:
        return self

    def add_argument_group(self, *args: object, **kwargs: object) -> _OptionRecorder:
        return self


def provider_options(name: str) -> dict[str, str]:
    """The options provider ``name`` takes (lexicon's names, ``auth_token``) and their help."""
    return provider_options_of(_provider_class(name))


def _provider_class(name: str) -> type:
    available = providers()
    if name not in available:
        raise SolverConfigError(
            f"dns-lexicon has no provider {name!r}; its providers: {', '.join(available)}",
            solver="lexicon",
            option="provider",
            choices=list(available),
        )
    if not available[name]:
        raise InvalidInput(
            f"lexicon provider {name!r} needs more packages: pip install 'dns-lexicon[{name}]'"
        )
    module = _discovery().load_provider_module(name)
    cls: type = module.Provider
    return cls


def is_secret(name: str) -> bool:
    """Whether a provider option's name says it holds a credential."""
    return bool(_SECRET_WORDS.search(name)) and not name.endswith(("_id", "_url", "_name"))


class LexiconSolver(DnsChallengeSolver):
    """Publish ``_acme-challenge`` TXT values with a dns-lexicon provider.

    ``provider`` names it, ``provider_options`` are its options (lexicon's names);
    lexicon's ``LEXICON_<PROVIDER>_<OPTION>`` environment variables fill in the rest.
    Lookups (CNAME, zone, nameservers) go to ``propagation.resolver`` if set, else to the
    system resolver.
    """

    _needs_zone = True
    options: ClassVar[tuple[SolverOption, ...]] = (
        SolverOption(
            name="provider",
            help="the dns-lexicon provider (cloudflare, powerdns, route53, ...: see"
            " docs/dns-providers.md); every other option is one of the provider's own, e.g."
            " auth_token=@FILE, or in $LEXICON_<PROVIDER>_<OPTION>",
            required=True,
        ),
        SolverOption(name="zone", help="the zone (default: found by SOA queries)"),
        SolverOption(
            name="ttl",
            help="TTL of new TXT records (providers keep an existing set's)",
            default="60",
        ),
        SolverOption(
            name="timeout", help="seconds each request to the provider may take", default="30"
        ),
        *PROPAGATION_OPTIONS,
    )

    @classmethod
    def extra_option(cls, name: str) -> SolverOption | None:
        """Any other option is the provider's; secret if its name says so."""
        if not _OPTION_NAME.fullmatch(name):
            return None
        variable = "LEXICON_<PROVIDER>_" + name.upper().replace("-", "_")
        return SolverOption(
            name=name,
            help="an option of the lexicon provider",
            secret=is_secret(name),
            env=(variable,),
        )

    @classmethod
    def from_options(cls, options: Mapping[str, str]) -> LexiconSolver:
        """Build from the string options (see the registry); the provider's options are
        checked against what the installed provider takes."""
        own = {o.name for o in cls.options}
        extra = {k.replace("-", "_"): v for k, v in options.items() if k not in own}
        return cls(
            options["provider"],
            extra,
            zone=options.get("zone") or None,
            ttl=int(number_option(options, "ttl", integer=True)),
            timeout=number_option(options, "timeout"),
            propagation=propagation_from_options(options),
        )

    def __init__(
        self,
        provider: str,
        provider_options: Mapping[str, str] | None = None,
        *,
        zone: str | None = None,
        ttl: int = 60,
        timeout: float = 30.0,
        propagation: PropagationSettings | None = None,
    ) -> None:
        super().__init__(propagation=propagation)
        self.provider = provider.strip().lower()
        self._provider_class = _provider_class(self.provider)
        takes = provider_options_of(self._provider_class)
        given = {k.replace("-", "_"): v for k, v in (provider_options or {}).items()}
        unknown = sorted(set(given) - set(takes))
        if unknown:
            raise SolverConfigError(
                f"lexicon provider {self.provider!r} has no option {unknown[0]!r}; its options:"
                f" {', '.join(sorted(takes)) or 'none'}",
                solver="lexicon",
                option=unknown[0],
                choices=sorted(takes),
            )
        self._given = given
        try:
            self.zone = absolute(zone) if zone else None
        except dns.exception.DNSException as exc:
            raise InvalidInput(f"bad DNS zone {zone!r}: {exc}") from None
        if not 0 <= ttl <= 2**31 - 1:
            raise InvalidInput(f"bad TTL {ttl}")
        self.ttl = ttl
        self.timeout = timeout if timeout > 0 else 30.0

    def __repr__(self) -> str:  # never the options: they hold credentials
        return f"LexiconSolver(provider={self.provider!r}, zone={self.zone!r}, ttl={self.ttl})"

    def _zone_for(self, name: str) -> str:
        if self.zone is not None and in_zone(name, self.zone):
            return self.zone
        return super()._zone_for(name)

    def _provider(self, zone: str) -> _Provider:
        """A provider object for ``zone``: acmelite's zone, our options, lexicon's env."""
        config_module = importlib.import_module("lexicon.config")
        settings: dict[str, object] = {
            "provider_name": self.provider,
            "domain": zone.rstrip("."),
            "ttl": self.ttl,
            self.provider: dict(self._given),
        }
        config = config_module.ConfigResolver().with_dict(settings).with_env()
        provider: _Provider = self._provider_class(config)
        return provider

    def _publish(self, records: Sequence[TxtRecord]) -> None:
        self._change(records, add=True)

    def _unpublish(self, records: Sequence[TxtRecord]) -> None:
        self._change(records, add=False)

    def _change(self, records: Sequence[TxtRecord], *, add: bool) -> None:
        """Zone after zone (a provider's backend may lock more than one zone), each under
        its zone's lock; every zone is tried before the failures are raised."""
        by_zone: dict[str, list[TxtRecord]] = {}
        for record in records:
            by_zone.setdefault(record.zone, []).append(record)
        failures: dict[str, str] = {}
        for zone, group in by_zone.items():
            try:
                with zone_lock("lexicon", self.provider, zone=zone), default_timeout(self.timeout):
                    self._change_zone(zone, group, add=add)
            except SolverError as exc:
                failures[zone] = str(exc)
        if failures:
            raise SolverError(
                "; ".join(failures.values()),
                identifiers=[r.identifier for z in failures for r in by_zone[z]],
            )

    def _change_zone(self, zone: str, records: Sequence[TxtRecord], *, add: bool) -> None:
        """Open the zone, change every record; a server error (HTTP 5xx) or a lost
        connection is tried again with a fresh provider object, up to three times."""
        for attempt in range(1, _ATTEMPTS + 1):
            try:
                self._change_zone_once(zone, records, add=add)
                return
            except _Failed as failed:
                if attempt == _ATTEMPTS or not is_transient(failed.cause):
                    raise SolverError(str(failed)) from None
                log.info("%s; trying again", failed)
                time.sleep(0.25 * attempt)

    def _change_zone_once(self, zone: str, records: Sequence[TxtRecord], *, add: bool) -> None:
        what = f"lexicon provider {self.provider!r}"
        try:
            provider = self._provider(zone)
            provider.authenticate()
        except Exception as exc:  # lexicon raises anything: one message, no traceback
            raise _Failed(
                f"{what} could not open zone {zone.rstrip('.')}: {error_text(exc)}", exc
            ) from None
        try:
            for record in records:
                name = record.name.rstrip(".")
                try:
                    if add:
                        provider.create_record("TXT", name, record.value)
                    else:
                        provider.delete_record(None, "TXT", name, record.value)
                except Exception as exc:
                    verb = "add" if add else "delete"
                    raise _Failed(
                        f"{what} could not {verb} TXT {record.name} in zone"
                        f" {zone.rstrip('.')}: {error_text(exc)}",
                        exc,
                    ) from None
        finally:
            try:
                provider.cleanup()
            except Exception as exc:
                log.debug("%s: cleanup of the provider object failed: %s", what, exc)
        log.info(
            "%s %d TXT value(s) %s zone %s with lexicon provider %s",
            "added" if add else "deleted",
            len(records),
            "to" if add else "from",
            zone,
            self.provider,
        )


class _Failed(Exception):
    """A provider call failed; ``cause`` is what lexicon raised."""

    def __init__(self, message: str, cause: BaseException) -> None:
        super().__init__(message)
        self.cause = cause


def provider_options_of(cls: type) -> dict[str, str]:
    """The options a provider class declares in its ``configure_parser``."""
    recorder = _OptionRecorder()
    configure = getattr(cls, "configure_parser", None)
    if callable(configure):
        configure(recorder)
    return recorder.options
