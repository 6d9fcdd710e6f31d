"""Identifier validation, IDNA conversion and certificate name matching.

Two jobs share this module because they must agree on what a name *is*:

* turning what a person typed into ACME identifiers (RFC 8555 §7.1.3, RFC 8738 for IPs),
  refusing bad names before anything is sent;
* deciding whether a certificate's SAN covers a hostname (RFC 9525 §6.3, which
  replaces RFC 6125 §6.4): compared as A-labels, case-insensitively, and a wildcard
  ``*`` stands for exactly one whole leftmost label.

IDNA: the standard library has no IDNA2008 / UTS #46 table, and its ``idna`` codec is
IDNA2003, which maps ``ß`` to ``ss`` and so names a different domain than browsers and
CAs do today. We approximate UTS #46 non-transitional processing instead: NFKC, then
lowercase, then NFC, then Punycode (RFC 3492) per non-ASCII label. Code points are only
checked coarsely (letters, marks, decimal digits and ``-``; no leading combining mark);
the bidi and contextual rules of RFC 5893 / RFC 5892 are not checked, so a few names
this accepts will still be refused by the CA.
"""

from __future__ import annotations

import ipaddress
import string
import unicodedata
from collections.abc import Iterable

from .errors import InvalidInput
from .models import Identifier

__all__ = [
    "MAX_IDENTIFIERS",
    "covering_sans",
    "explain_miss",
    "is_ip",
    "is_wildcard",
    "matches",
    "normalize_name",
    "parse_identifiers",
    "was_converted",
]

MAX_IDENTIFIERS = 100
"""Most CAs (Let's Encrypt among them) refuse an order with more than 100 names."""

MAX_LABEL = 63
MAX_NAME = 253
_LDH = frozenset(string.ascii_lowercase + string.digits + "-")
# RFC 3490 §3.1: these dots separate labels just like U+002E.
_DOTS = str.maketrans({"\u3002": ".", "\uff0e": ".", "\uff61": "."})
_ALLOWED_CATEGORIES = ("L", "M", "Nd")


def normalize_name(name: str) -> str:
    """A DNS name as an ACME ``dns`` identifier value: lowercase A-labels, no trailing dot.

    Raises :class:`InvalidInput` with one line naming the name and the rule it breaks.
    """
    text = shown = name.strip()
    if not text:
        raise InvalidInput("invalid name '': the name is empty")
    text = unicodedata.normalize("NFKC", text.translate(_DOTS)).lower()
    text = unicodedata.normalize("NFC", text)
    if text.endswith(".") and text != ".":
        text = text[:-1]
    labels = text.split(".")
    wildcard = labels[0] == "*"
    if wildcard:
        labels = labels[1:]
        if not labels:
            raise _bad(shown, "a wildcard needs a domain after '*.'")
    a_labels = [_to_a_label(shown, label) for label in labels]
    if any("*" in label for label in a_labels):
        raise _bad(shown, "'*' is allowed only as the whole leftmost label, as in *.example.com")
    if a_labels[-1].isdigit():
        raise _bad(shown, "the last label is all digits (not a valid IP address either)")
    result = ".".join((["*"] if wildcard else []) + a_labels)
    if len(result) > MAX_NAME:
        raise _bad(shown, f"the name is {len(result)} octets long, more than {MAX_NAME}")
    return result


def _bad(shown: str, rule: str) -> InvalidInput:
    return InvalidInput(f"invalid name {shown!r}: {rule}")


def _to_a_label(shown: str, label: str) -> str:
    if not label:
        raise _bad(shown, "it has an empty label (two dots in a row, or a leading dot)")
    if label.isascii():
        a_label = label
    else:
        _check_u_label(shown, label)
        try:
            a_label = "xn--" + label.encode("punycode").decode("ascii")
        except UnicodeError:
            raise _bad(shown, f"label {label!r} cannot be converted to an A-label") from None
    if "*" in a_label:
        return a_label  # reported by the caller with the wildcard rule
    bad = sorted(set(a_label) - _LDH)
    if bad:
        chars = "".join(bad)
        raise _bad(
            shown, f"label {label!r} has characters other than letters, digits and '-': {chars!r}"
        )
    if a_label.startswith("-") or a_label.endswith("-"):
        raise _bad(shown, f"label {label!r} starts or ends with a hyphen")
    if len(a_label) > MAX_LABEL:
        raise _bad(shown, f"label {a_label!r} is {len(a_label)} octets long, more than {MAX_LABEL}")
    if a_label[2:4] == "--":
        _check_reserved(shown, a_label)
    return a_label


def _check_u_label(shown: str, label: str) -> None:
    problem = _u_label_problem(label)
    if problem:
        raise _bad(shown, f"label {label!r} {problem}")


def _u_label_problem(label: str) -> str:
    if unicodedata.category(label[0]).startswith("M"):
        return "starts with a combining mark"
    for char in label:
        if not char.isascii() and not unicodedata.category(char).startswith(_ALLOWED_CATEGORIES):
            return f"has a character not allowed in names (U+{ord(char):04X})"
    return ""


def _check_reserved(shown: str, a_label: str) -> None:
    """RFC 5891 §4.2.3.1: ``??--`` is reserved; only ``xn--`` with valid Punycode is allowed."""
    if not a_label.startswith("xn--"):
        raise _bad(shown, f"label {a_label!r} has '--' in positions 3-4, reserved for 'xn--'")
    try:
        decoded = a_label[4:].encode("ascii").decode("punycode")
        again = "xn--" + decoded.encode("punycode").decode("ascii")
    except (UnicodeError, ValueError, IndexError, OverflowError):
        decoded = again = ""
    canonical = unicodedata.normalize("NFC", decoded.lower())
    if (
        not decoded
        or decoded.isascii()
        or again != a_label
        or canonical != decoded
        or _u_label_problem(decoded)
    ):
        raise _bad(shown, f"label {a_label!r} is not a valid Punycode A-label")


def is_ip(value: str) -> bool:
    """True for an IPv4 or IPv6 address (brackets around IPv6 allowed)."""
    return _parse_ip(value) is not None


def _parse_ip(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    text = value.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def parse_identifiers(names: Iterable[str]) -> list[Identifier]:
    """ACME identifiers for ``names``: ``ip`` (RFC 8738) or normalized ``dns``, first order kept."""
    seen: dict[tuple[str, str], None] = {}
    for name in names:
        address = _parse_ip(name)
        if address is None:
            seen.setdefault(("dns", normalize_name(name)))
            continue
        if isinstance(address, ipaddress.IPv6Address) and address.scope_id:
            raise InvalidInput(f"invalid IP address {name.strip()!r}: a zone index is not allowed")
        seen.setdefault(("ip", address.compressed))
    if not seen:
        raise InvalidInput("no names given: an order needs at least one name")
    if len(seen) > MAX_IDENTIFIERS:
        raise InvalidInput(
            f"{len(seen)} distinct names given; an order may hold at most {MAX_IDENTIFIERS} "
            "(the limit most CAs enforce): split them over several certificates"
        )
    return [Identifier(type=kind, value=value) for kind, value in seen]


def is_wildcard(name: str) -> bool:
    """True for ``*.example.com``."""
    return name.strip().startswith("*.")


def was_converted(original: str, normalized: str) -> bool:
    """True when normalizing changed more than case, spaces and a trailing dot.

    Lets the CLI tell the user ``bücher.example → xn--bcher-kva.example``.
    """
    text = original.strip().lower()
    if text.endswith("."):
        text = text[:-1]
    return text != normalized


# --- matching (RFC 9525 §6.3) -------------------------------------------------------------


def _match_form(name: str) -> str | None:
    """The comparable form of a hostname or SAN, or None when it can never match."""
    address = _parse_ip(name)
    if address is not None:
        return address.compressed
    try:
        return normalize_name(name)
    except InvalidInput:
        text = name.strip().lower()
        text = text[:-1] if text.endswith(".") else text
        # Odd but printable ASCII names (an underscore, say) still match by RFC 9525 rules.
        ok = text.isascii() and text.isprintable() and " " not in text and "*" not in text
        return text if ok and "" not in text.split(".") else None


def matches(hostname: str, san: str) -> bool:
    """Whether a certificate SAN covers ``hostname`` (RFC 9525 §6.3).

    Case-insensitive, compared as A-labels. A wildcard SAN ``*.b.c`` covers exactly one
    whole label before ``b.c``: not ``b.c`` itself, not ``x.y.b.c``. A partial-label
    wildcard (``f*.b.c``) never matches, nor does a wildcard match an IP address. A
    wildcard hostname is covered only by the identical wildcard SAN. IP SANs are given
    as text; the caller keeps DNS and IP SANs apart.
    """
    host = _match_form(hostname)
    if host is None:
        return False
    if san.strip().startswith("*.") and not is_ip(hostname):
        pattern = _match_form(san)
        if pattern is None or not pattern.startswith("*."):
            return False
        if host == pattern:
            return True
        first, _, rest = host.partition(".")
        return first not in ("", "*") and rest == pattern[2:]
    return host == _match_form(san)


def covering_sans(hostname: str) -> tuple[str, str | None]:
    """The SANs that would cover ``hostname``: the exact name, and the one-label wildcard.

    The wildcard is None for an IP address, a wildcard name, or a name of fewer than
    three labels (``*.com`` is no fix). Raises :class:`InvalidInput` for a bad name.
    """
    address = _parse_ip(hostname)
    if address is not None:
        return address.compressed, None
    exact = normalize_name(hostname)
    labels = exact.split(".")
    if labels[0] == "*" or len(labels) < 3:
        return exact, None
    return exact, "*." + ".".join(labels[1:])


def explain_miss(hostname: str, san: str) -> str | None:
    """One sentence on why ``san`` does not cover ``hostname``, when it nearly does.

    None when the SAN matches, or when it is simply a different name with nothing in
    common worth explaining.
    """
    if matches(hostname, san):
        return None
    host = _match_form(hostname)
    raw = san.strip()
    if host is None:
        return None
    if is_ip(hostname):
        if raw.startswith("*"):
            return f"{raw} is a wildcard, and a wildcard never matches an IP address"
        return None
    if "*" in raw and not raw.startswith("*."):
        return (
            f"{raw} is a partial-label wildcard; clients accept '*' only as the whole "
            "leftmost label (RFC 9525 §6.3)"
        )
    pattern = _match_form(raw)
    if pattern is None:
        return None
    if pattern.startswith("*."):
        return _explain_wildcard(host, pattern)
    if host.startswith("*."):
        if pattern.endswith("." + host[2:]):
            return f"{pattern} covers only itself; the wildcard {host} needs the SAN {host}"
        return None
    if host.endswith("." + pattern):
        return f"{pattern} covers only itself, not names under it such as {host}"
    if pattern.endswith("." + host):
        return f"{pattern} is a name under {host}, not {host} itself"
    return None


def _explain_wildcard(host: str, pattern: str) -> str | None:
    base = pattern[2:]
    if host.startswith("*."):
        near = host.endswith("." + base)
        return f"{pattern} is a different wildcard than {host}" if near else None
    if host == base:
        return f"{pattern} covers one label before {base}, not {base} itself"
    if host.endswith("." + base):
        extra = host[: -len(base) - 1]
        count = extra.count(".") + 1
        words = {2: "two", 3: "three", 4: "four"}
        return (
            f"{pattern} covers one label before {base}; this name has "
            f"{words.get(count, str(count))} ({extra})"
        )
    if base.endswith("." + host):
        return f"{pattern} covers names under {base}; {host} is above it"
    return None
