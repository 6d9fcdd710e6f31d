"""acmelite: a small, fast, typed ACME (RFC 8555) client.

The high-level call::

    from acmelite import AccountKey, AcmeClient
    from acmelite.solvers.http01 import StandaloneSolver

    client = AcmeClient(directory_url, AccountKey.generate(), ca_bundle="pebble-ca.pem")
    client.register(agree_tos=True)
    bundle = client.issue(["example.test"], solver=StandaloneSolver(port=5002))
    bundle.write("out/")

Every protocol step below ``issue`` is public on :class:`AcmeClient`. A certificate that
is renewed for ever is a :class:`ManagedCertificate` (a directory, configured by a
:class:`CertificateConfig`); solvers are built by name from a :class:`ChallengeConfig`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from ._version import __version__

if TYPE_CHECKING:
    from .account_store import AccountNotFound, AccountStore
    from .challenges import ChallengeTask, Solver, SolverOption
    from .client import AcmeClient, CertificateBundle, ExternalAccountBinding
    from .config import CertificateConfig
    from .diagnose import Report, diagnose
    from .errors import (
        AcmeliteError,
        AuthorizationFailed,
        BadNonceError,
        DeadlineExceeded,
        DeployHookError,
        DirectoryLocked,
        DnsQueryError,
        IdentifierLimitExceeded,
        InvalidInput,
        NetworkError,
        Problem,
        ProblemError,
        ProtocolError,
        RateLimitedError,
        SolverError,
        UnsupportedOperation,
    )
    from .keys import AccountKey
    from .managed import DeployFailed, ManagedCertificate, RenewalResult
    from .models import Account, Authorization, Challenge, Directory, Identifier, Order, RenewalInfo
    from .names import matches, parse_identifiers
    from .solvers.registry import ChallengeConfig, SolverConfigError, solver_for
    from .tlsprobe import fetch_chain
    from .verify import VerifyReport, verify_deployment

# Theory of operation — lazy imports (PEP 562). ``import acmelite`` runs for every
# ``acmelite`` command, ``--help`` included, because ``acmelite.cli`` is a subpackage. The
# public names live in modules that pull in requests, cryptography and josepy (about
# 0.3 s of imports on a small machine), so they are imported on first use: the first
# ``acmelite.AcmeClient`` imports ``acmelite.client``, and later lookups find the name in
# this module's globals without coming back here.
_LAZY = {
    "AccountNotFound": "account_store",
    "AccountStore": "account_store",
    "CertificateConfig": "config",
    "ChallengeConfig": "solvers.registry",
    "DeployFailed": "managed",
    "ManagedCertificate": "managed",
    "RenewalResult": "managed",
    "SolverOption": "challenges",
    "solver_for": "solvers.registry",
    "SolverConfigError": "solvers.registry",
    "DeployHookError": "errors",
    "DirectoryLocked": "errors",
    "DnsQueryError": "errors",
    "IdentifierLimitExceeded": "errors",
    "AcmeClient": "client",
    "CertificateBundle": "client",
    "ExternalAccountBinding": "client",
    "AcmeliteError": "errors",
    "AuthorizationFailed": "errors",
    "BadNonceError": "errors",
    "DeadlineExceeded": "errors",
    "InvalidInput": "errors",
    "NetworkError": "errors",
    "Problem": "errors",
    "ProblemError": "errors",
    "ProtocolError": "errors",
    "RateLimitedError": "errors",
    "SolverError": "errors",
    "UnsupportedOperation": "errors",
    "AccountKey": "keys",
    "Account": "models",
    "Authorization": "models",
    "Challenge": "models",
    "Directory": "models",
    "Identifier": "models",
    "Order": "models",
    "RenewalInfo": "models",
    "ChallengeTask": "challenges",
    "Solver": "challenges",
    "Report": "diagnose",
    "diagnose": "diagnose",
    "matches": "names",
    "parse_identifiers": "names",
    "fetch_chain": "tlsprobe",
    "VerifyReport": "verify",
    "verify_deployment": "verify",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


__all__ = [
    "Account",
    "AccountKey",
    "AccountNotFound",
    "AccountStore",
    "AcmeClient",
    "AcmeliteError",
    "Authorization",
    "AuthorizationFailed",
    "BadNonceError",
    "CertificateBundle",
    "CertificateConfig",
    "Challenge",
    "ChallengeConfig",
    "ChallengeTask",
    "DeadlineExceeded",
    "DeployFailed",
    "DeployHookError",
    "Directory",
    "DirectoryLocked",
    "DnsQueryError",
    "ExternalAccountBinding",
    "Identifier",
    "IdentifierLimitExceeded",
    "InvalidInput",
    "ManagedCertificate",
    "NetworkError",
    "Order",
    "Problem",
    "ProblemError",
    "ProtocolError",
    "RateLimitedError",
    "RenewalInfo",
    "RenewalResult",
    "Report",
    "Solver",
    "SolverConfigError",
    "SolverError",
    "SolverOption",
    "UnsupportedOperation",
    "VerifyReport",
    "__version__",
    "diagnose",
    "fetch_chain",
    "matches",
    "parse_identifiers",
    "solver_for",
    "verify_deployment",
]
