"""Facts that several layers need, written once, with no imports (the CLI's parser uses
them, so ``acmelite --help`` stays fast)."""

from __future__ import annotations

__all__ = [
    "CHALLENGE_TYPES",
    "DEFAULT_CONCURRENCY",
    "DEFAULT_TIMEOUT",
    "DNS_CHALLENGE_TYPES",
    "KEY_TYPES",
    "REVOCATION_REASONS",
    "serial_hex",
]

#: Key types for certificate and account keys: EC P-256/P-384 and RSA of 2048-4096 bits.
KEY_TYPES = ("ec256", "ec384", "rsa2048", "rsa3072", "rsa4096")

#: Challenge types acmelite answers: http-01 and dns-01 (RFC 8555 §8.3, §8.4), tls-alpn-01
#: (RFC 8737), dns-account-01 (draft-ietf-acme-dns-account-label) and dns-persist-01
#: (draft-ietf-acme-dns-persist).
CHALLENGE_TYPES = ("http-01", "dns-01", "tls-alpn-01", "dns-account-01", "dns-persist-01")

#: The challenge types answered by a TXT record in DNS: every dns-01 solver publishes their
#: records (``ChallengeTask.dns_record`` / ``dns_value``); none validates an IP address.
DNS_CHALLENGE_TYPES = ("dns-01", "dns-account-01", "dns-persist-01")

#: CRL reason codes a revocation may give (RFC 5280 §5.3.1; RFC 8555 §7.6). 7 is unused.
REVOCATION_REASONS: dict[str, int] = {
    "unspecified": 0,
    "keyCompromise": 1,
    "cACompromise": 2,
    "affiliationChanged": 3,
    "superseded": 4,
    "cessationOfOperation": 5,
    "certificateHold": 6,
    "removeFromCRL": 8,
    "privilegeWithdrawn": 9,
    "aACompromise": 10,
}

#: Seconds a whole issuance (or one renewal) may take when no timeout is given: generous
#: for dns-01 propagation, yet finite, so an order stuck at the CA cannot hang a cron job.
DEFAULT_TIMEOUT = 600.0

#: How many certificates one fleet run (``renew --all-under``) renews at once by default.
DEFAULT_CONCURRENCY = 4


def serial_hex(serial: int) -> str:
    """A certificate serial number as acmelite prints and stores it: lowercase hex."""
    return format(serial, "x")
