"""What a managed certificate is: :class:`CertificateConfig`, the content of ``renewal.json``.

A frozen, validated value: the names, the CA, the account key, the key type (or a CSR),
how to answer challenges (:class:`~acmelite.solvers.registry.ChallengeConfig`), profile,
preferred chain, what to do after installing (deploy hook, Kubernetes Secret), contact and
the time one issuance may take. ``to_json()``/``from_json()`` are the file format, with a
``"version"``; version 1 (acmelite 0.1.0, which stored the command line's option names)
is read and understood as the same configuration.

``renewal.json`` holds no secret: a secret solver option is stored only as an ``@PATH``
reference (see :mod:`acmelite.solvers.registry`). It is *executable* configuration all the
same — it names a deploy hook and may name a DNS hook that ``renew`` runs — so it must be
writable by its owner only.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from .constants import DEFAULT_TIMEOUT, KEY_TYPES
from .deploy import SecretRef
from .errors import InvalidInput
from .names import is_wildcard, parse_identifiers
from .solvers.registry import ChallengeConfig, absolute_config
from .storage import atomic_write

__all__ = [
    "CONFIG_FILE",
    "CONFIG_VERSION",
    "STATE_FILE",
    "CertificateConfig",
    "load_config",
    "save_config",
]

CONFIG_FILE = "renewal.json"
#: What renewals of the directory learned (ARI answers, failures, back-off): ``acmelite.managed``.
STATE_FILE = ".renewal-state.json"
CONFIG_VERSION = 2


@dataclass(frozen=True, slots=True, kw_only=True)
class CertificateConfig:
    """How to issue (and re-issue) one certificate. Paths are strings; see :meth:`absolute`.

    Raises :class:`InvalidInput` at construction for names that cannot be issued together
    with the challenge (a wildcard needs a DNS challenge, an IP address cannot have one), an
    unknown key type, a bad Secret name, a CSR with a Secret, or a timeout <= 0.
    """

    names: tuple[str, ...]
    server: str
    account_key: str
    challenge: ChallengeConfig = field(default_factory=ChallengeConfig)
    ca_bundle: str | None = None
    key_type: str = "ec256"
    csr: str | None = None
    profile: str | None = None
    preferred_chain: str | None = None
    deploy_hook: str | None = None
    k8s_secret: str | None = None
    contact: tuple[str, ...] = ()
    timeout: float = DEFAULT_TIMEOUT

    def __post_init__(self) -> None:
        if isinstance(self.names, str):
            raise TypeError("names must be a sequence of names, not one string")
        identifiers = parse_identifiers(list(self.names))
        object.__setattr__(self, "names", tuple(i.value for i in identifiers))
        object.__setattr__(self, "contact", tuple(self.contact))
        if not self.server.startswith(("https://", "http://")):
            raise InvalidInput(f"the ACME server {self.server!r} is not an http(s) URL")
        if not self.account_key:
            raise InvalidInput("no account key path")
        if self.key_type not in KEY_TYPES:
            raise InvalidInput(
                f"unknown key type {self.key_type!r}; choose one of {', '.join(KEY_TYPES)}"
            )
        dns_challenge = self.challenge.type.startswith("dns-")
        wild = [i.value for i in identifiers if is_wildcard(i.value)]
        if wild and not dns_challenge:
            raise InvalidInput(
                f"{wild[0]} is a wildcard: wildcards can only be validated by dns-01",
                code="wildcard-needs-dns",
            )
        ips = [i.value for i in identifiers if i.type == "ip"]
        if ips and dns_challenge:
            raise InvalidInput(
                f"{ips[0]} is an IP address: {self.challenge.type} cannot validate IP"
                " identifiers (RFC 8738 §7); use http-01"
            )
        if self.k8s_secret is not None:
            object.__setattr__(self, "k8s_secret", str(SecretRef.parse(self.k8s_secret)))
            if self.csr is not None:
                raise InvalidInput(
                    "a Kubernetes Secret needs the private key, which acmelite does not have"
                    " with a CSR of yours"
                )
        if not self.timeout > 0:
            raise InvalidInput(f"the timeout must be > 0 seconds, not {self.timeout}")

    def absolute(self, base: str | os.PathLike[str] | None = None) -> CertificateConfig:
        """A copy whose file paths (account key, CA bundle, CSR, ``@PATH`` options) are
        absolute, resolved against ``base`` (default: the current directory), so a run
        from cron reads the same files."""

        def path(value: str | None) -> str | None:
            if value is None:
                return None
            return os.path.abspath(Path(base or os.getcwd()) / os.path.expanduser(value))

        return replace(
            self,
            account_key=path(self.account_key) or self.account_key,
            ca_bundle=path(self.ca_bundle),
            csr=path(self.csr),
            challenge=absolute_config(self.challenge, base),
        )

    def to_json(self) -> dict[str, object]:
        """The ``renewal.json`` object (version :data:`CONFIG_VERSION`)."""
        return {
            "version": CONFIG_VERSION,
            "names": list(self.names),
            "server": self.server,
            "ca_bundle": self.ca_bundle,
            "account_key": self.account_key,
            "contact": list(self.contact),
            "key_type": self.key_type,
            "csr": self.csr,
            "profile": self.profile,
            "preferred_chain": self.preferred_chain,
            "challenge": self.challenge.to_json(),
            "deploy_hook": self.deploy_hook,
            "k8s_secret": self.k8s_secret,
            "timeout": self.timeout,
        }

    @classmethod
    def from_json(cls, data: object, *, source: str, account_key: str = "") -> CertificateConfig:
        """Read ``renewal.json`` (version 1 or 2); ``source`` names it in errors.

        ``account_key`` is the key path to use where a version 1 file stored none (0.1.0
        stored "" for the default key).
        """
        if not isinstance(data, Mapping):
            raise InvalidInput(f"{source}: not a JSON object")
        version = data.get("version", 1)
        if version not in (1, CONFIG_VERSION):
            raise InvalidInput(
                f"{source}: version {version!r} is not one this acmelite reads (1 or"
                f" {CONFIG_VERSION}); it was written by a newer acmelite"
            )
        server = data.get("server")
        names = data.get("names")
        if not isinstance(server, str) or not server:
            raise InvalidInput(f"{source}: 'server' missing")
        if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
            raise InvalidInput(f"{source}: 'names' must be a non-empty list of names")

        def text(key: str) -> str | None:
            value = data.get(key)
            if value is None or value == "":
                return None
            if not isinstance(value, str):
                raise InvalidInput(f"{source}: {key!r} must be a string")
            return value

        if version == 1:
            challenge = _challenge_v1(data.get("challenge") or {"type": "http-01"}, source)
        else:
            challenge = ChallengeConfig.from_json(data.get("challenge"), source=source)
        contact = data.get("contact") or []
        if not isinstance(contact, list) or not all(isinstance(c, str) for c in contact):
            raise InvalidInput(f"{source}: 'contact' must be a list of strings")
        timeout = data.get("timeout", DEFAULT_TIMEOUT)
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
            raise InvalidInput(f"{source}: 'timeout' must be a number of seconds")
        try:
            return cls(
                names=tuple(names),
                server=server,
                account_key=text("account_key") or account_key,
                challenge=challenge,
                ca_bundle=text("ca_bundle"),
                key_type=text("key_type") or "ec256",
                csr=text("csr"),
                profile=text("profile"),
                preferred_chain=text("preferred_chain"),
                deploy_hook=text("deploy_hook"),
                k8s_secret=text("k8s_secret"),
                contact=tuple(contact),
                timeout=float(timeout),
            )
        except InvalidInput as exc:
            raise InvalidInput(f"{source}: {exc}") from None


#: Version 1 (0.1.0) dns-01 settings, by the rfc2136/hook option each one became.
_V1_DNS_OPTIONS = {
    "dns_server": "server",
    "tsig_key_name": "tsig-key-name",
    "tsig_algorithm": "tsig-algorithm",
    "dns_zone": "zone",
    "dns_hook": "command",
    "dns_resolver": "resolver",
    "dns_propagation_timeout": "propagation-timeout",
}


def _challenge_v1(data: object, source: str) -> ChallengeConfig:
    """The challenge of a 0.1.0 ``renewal.json``: its option names were the CLI's."""
    if not isinstance(data, Mapping):
        raise InvalidInput(f"{source}: 'challenge' is not an object")
    kind = data.get("type", "http-01")
    if kind not in ("http-01", "dns-01"):  # the only types 0.1.0 had
        raise InvalidInput(f"{source}: unknown challenge type {kind!r}")
    options: dict[str, str] = {}
    if kind == "http-01":
        webroot = data.get("webroot")
        if isinstance(webroot, str) and webroot:
            return ChallengeConfig(type=kind, solver="webroot", options={"path": webroot})
        port, address = data.get("http_port"), data.get("http_address")
        if isinstance(port, int) and not isinstance(port, bool):
            options["port"] = str(port)
        if isinstance(address, str) and address:
            options["address"] = address
        return ChallengeConfig(type=kind, solver="standalone", options=options)
    solver = data.get("dns")
    if solver not in ("rfc2136", "hook"):
        raise InvalidInput(f"{source}: unknown DNS solver {solver!r}")
    for old, new in _V1_DNS_OPTIONS.items():
        value = data.get(old)
        if value is None or value == "" or isinstance(value, bool):
            continue
        if isinstance(value, (int, float, str)):
            options[new] = f"{value:g}" if isinstance(value, float) else str(value)
    secret_file = data.get("tsig_secret_file")
    if isinstance(secret_file, str) and secret_file:
        options["tsig-secret"] = "@" + secret_file
    if solver == "hook":
        options = {k: v for k, v in options.items() if k not in _RFC2136_ONLY}
    return ChallengeConfig(type=kind, solver=str(solver), options=options)


_RFC2136_ONLY = frozenset({"server", "tsig-key-name", "tsig-algorithm", "zone", "tsig-secret"})


def save_config(directory: str | os.PathLike[str], config: CertificateConfig) -> None:
    """Write ``directory/renewal.json`` atomically, 0600."""
    data = json.dumps(config.to_json(), indent=2).encode() + b"\n"
    atomic_write(Path(directory) / CONFIG_FILE, data, mode=0o600)


def load_config(directory: str | os.PathLike[str], *, account_key: str = "") -> CertificateConfig:
    """Read ``directory/renewal.json``; :class:`InvalidInput` naming the file if it is
    missing or not a configuration (``account_key`` as for :meth:`~CertificateConfig.from_json`)."""
    path = Path(directory) / CONFIG_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InvalidInput(
            f"{path} not found: only a directory that acmelite issued a certificate into"
            " can be renewed"
        ) from None
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"cannot read {path}: {exc}") from None
    return CertificateConfig.from_json(data, source=str(path), account_key=account_key)
