"""acmelite: a small, fast, typed ACME (RFC 8555) client.

The high-level call::

    from acmelite import AccountKey, AcmeClient
    from acmelite.solvers.http01 import StandaloneSolver

    client = AcmeClient(directory_url, AccountKey.generate(), ca_bundle="pebble-ca.pem")
    client.register(agree_tos=True)
    bundle = client.issue(["example.test"], solver=StandaloneSolver(port=5002))
    bundle.write("out/")

Every protocol step below ``issue`` is public on :class:`AcmeClient`.
"""

from ._version import __version__
from .client import AcmeClient, CertificateBundle, ExternalAccountBinding
from .errors import (
    AcmeliteError,
    AuthorizationFailed,
    BadNonceError,
    DeadlineExceeded,
    InvalidInput,
    NetworkError,
    Problem,
    ProblemError,
    ProtocolError,
    RateLimitedError,
    SolverError,
)
from .keys import AccountKey
from .models import Account, Authorization, Challenge, Directory, Identifier, Order, RenewalInfo
from .solvers.base import ChallengeTask, Solver

__all__ = [
    "Account",
    "AccountKey",
    "AcmeClient",
    "AcmeliteError",
    "Authorization",
    "AuthorizationFailed",
    "BadNonceError",
    "CertificateBundle",
    "Challenge",
    "ChallengeTask",
    "DeadlineExceeded",
    "Directory",
    "ExternalAccountBinding",
    "Identifier",
    "InvalidInput",
    "NetworkError",
    "Order",
    "Problem",
    "ProblemError",
    "ProtocolError",
    "RateLimitedError",
    "RenewalInfo",
    "Solver",
    "SolverError",
    "__version__",
]
