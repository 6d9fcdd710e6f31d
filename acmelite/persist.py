"""dns-persist-01 records (draft-ietf-acme-dns-persist): build them, parse them, check them.

A persistent TXT record at ``_validation-persist.<name>`` binds the name to one CA (its
*issuer domain name*) and one account (``accounturi``), once; renewals then need no DNS
change. Its text is an RFC 8659 §4.1.1 ``issue-value``::

    ca.example; accounturi=https://ca.example/acct/1; policy=wildcard; persistUntil=1767225600

* :class:`PersistRecord` is one such value: :meth:`PersistRecord.to_text` writes it,
  :func:`parse_record` reads it (the grammar, tags case-insensitive, unknown parameters kept
  and ignored, a repeated tag refused as ambiguous);
* :func:`evaluate` decides, without any I/O, whether the values found at a name let *this*
  account and CA issue for the name: the issuer, ``accounturi``, ``policy=wildcard`` for a
  wildcard, ``persistUntil`` not passed (§4) — and says exactly what is wrong otherwise;
* :func:`persist_tasks` turns records into tasks any dns-01 solver publishes.

No I/O here: :mod:`acmelite.dns.persist` asks the nameservers and evaluates their answers.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from .challenges import PERSIST_LABEL, ChallengeTask
from .errors import InvalidInput
from .models import Challenge, Identifier
from .names import is_wildcard

__all__ = [
    "EXPIRY_WARNING",
    "MAX_ISSUER_DOMAIN_NAMES",
    "PersistRecord",
    "RecordSyntaxError",
    "Requirement",
    "Verdict",
    "build_records",
    "choose_issuer",
    "evaluate",
    "parse_issue_value",
    "parse_record",
    "persist_tasks",
    "record_name",
    "when",
]

log = logging.getLogger(__name__)

#: How long before ``persistUntil`` a record is reported as about to expire.
EXPIRY_WARNING = dt.timedelta(days=30)
#: The most issuer domain names a challenge may list (draft-ietf-acme-dns-persist §3.1).
MAX_ISSUER_DOMAIN_NAMES = 10

_LABEL = r"[A-Za-z0-9](?:-*[A-Za-z0-9])*"
_ISSUER = rf"{_LABEL}(?:\.{_LABEL})*"
_VALUE_CHARS = r"[\x21-\x3a\x3c-\x7e]"
_PARAMETER = rf"{_LABEL}[ \t]*=[ \t]*{_VALUE_CHARS}*"
#: RFC 8659 §4.1.1 issue-value.
_ISSUE_VALUE = re.compile(
    rf"[ \t]*(?P<issuer>{_ISSUER})?[ \t]*"
    rf"(?:;[ \t]*(?P<parameters>{_PARAMETER}(?:[ \t]*;[ \t]*{_PARAMETER})*)?[ \t]*)?"
)
_VALUE = re.compile(rf"{_VALUE_CHARS}*")
_ISSUER_NAME = re.compile(_ISSUER)


class RecordSyntaxError(ValueError):
    """A TXT value that is no issue-value, or no usable dns-persist-01 record."""


def parse_issue_value(text: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    """``(issuer domain name, ((tag, value), ...))`` of an RFC 8659 issue-value; the issuer
    lower case ("" when absent), tags lower case, in their order. A tag given twice is a
    :class:`RecordSyntaxError` (which one would count?)."""
    match = _ISSUE_VALUE.fullmatch(text)
    if match is None:
        raise RecordSyntaxError(f"not an RFC 8659 issue-value: {text[:80]!r}")
    pairs: list[tuple[str, str]] = []
    if match["parameters"]:
        # Values hold neither ';' nor white space, so splitting on ';' is exact.
        for parameter in match["parameters"].split(";"):
            tag, _, value = parameter.partition("=")
            tag = tag.strip(" \t").lower()
            if any(seen == tag for seen, _ in pairs):
                raise RecordSyntaxError(f"parameter {tag!r} is given twice")
            pairs.append((tag, value.strip(" \t")))
    return (match["issuer"] or "").lower(), tuple(pairs)


@dataclass(frozen=True, slots=True, kw_only=True)
class PersistRecord:
    """One dns-persist-01 record (draft-ietf-acme-dns-persist §4).

    ``issuer`` is the issuer domain name, ``account_uri`` the account's URL (RFC 8657 §3),
    ``policy`` as written (``wildcard`` also allows wildcards and subdomains; any other
    value means none), ``persist_until`` a UNIX time after which the CA must not use the
    record for a new validation; ``extra`` the parameters this version does not know.
    """

    issuer: str
    account_uri: str
    policy: str = ""
    persist_until: int | None = None
    extra: tuple[tuple[str, str], ...] = field(default=())

    def __post_init__(self) -> None:
        object.__setattr__(self, "issuer", self.issuer.lower())
        if not _ISSUER_NAME.fullmatch(self.issuer) or len(self.issuer) > 253:
            raise RecordSyntaxError(f"bad issuer domain name {self.issuer!r}")
        for tag, value in (("accounturi", self.account_uri), ("policy", self.policy)):
            if not _VALUE.fullmatch(value):
                raise RecordSyntaxError(f"{tag} {value!r} has characters an issue-value forbids")
        if not self.account_uri:
            raise RecordSyntaxError("the record has no accounturi")
        if self.persist_until is not None and self.persist_until < 0:
            raise RecordSyntaxError(f"persistUntil {self.persist_until} is before 1970")

    @property
    def wildcard(self) -> bool:
        """``policy=wildcard`` (case-insensitive, §4 item 4)."""
        return self.policy.lower() == "wildcard"

    @property
    def expires(self) -> dt.datetime | None:
        """``persistUntil`` as a time, or None without one."""
        if self.persist_until is None:
            return None
        return dt.datetime.fromtimestamp(self.persist_until, dt.timezone.utc)

    def to_text(self) -> str:
        """The TXT value: ``issuer; accounturi=URL[; policy=...][; persistUntil=N]``."""
        parts = [self.issuer, f"accounturi={self.account_uri}"]
        if self.policy:
            parts.append(f"policy={self.policy}")
        if self.persist_until is not None:
            parts.append(f"persistUntil={self.persist_until}")
        parts += [f"{tag}={value}" for tag, value in self.extra]
        return "; ".join(parts)

    def strings(self) -> list[str]:
        """:meth:`to_text` as TXT character-strings of at most 255 octets (RFC 1035 §3.3)."""
        text = self.to_text()
        return [text[i : i + 255] for i in range(0, len(text), 255)]

    def zone_line(self, name: str) -> str:
        """The record as a zone-file line for ``name`` (``*.`` removed)."""
        quoted = " ".join('"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'
                          for s in self.strings())  # fmt: skip
        return f"{record_name(name)} IN TXT {quoted}"


def parse_record(text: str) -> PersistRecord:
    """The record a TXT value holds; :class:`RecordSyntaxError` when it is none (bad
    grammar, no issuer, no ``accounturi``, a ``persistUntil`` that is no integer)."""
    issuer, pairs = parse_issue_value(text)
    if not issuer:
        raise RecordSyntaxError("the record names no issuer domain name")
    params = dict(pairs)
    until_text = params.get("persistuntil")
    until = None
    if until_text is not None:
        if not until_text.isdigit() or not until_text.isascii():
            raise RecordSyntaxError(f"persistUntil {until_text!r} is not a UNIX time")
        until = int(until_text)
    known = {"accounturi", "policy", "persistuntil"}
    return PersistRecord(
        issuer=issuer,
        account_uri=params.get("accounturi", ""),
        policy=params.get("policy", ""),
        persist_until=until,
        extra=tuple((tag, value) for tag, value in pairs if tag not in known),
    )


def record_name(name: str) -> str:
    """``_validation-persist.<name>.``, fully qualified, a leading ``*.`` removed."""
    return f"{PERSIST_LABEL}.{name.removeprefix('*.').rstrip('.').lower()}."


def choose_issuer(offered: Sequence[str], wanted: str | None = None) -> str:
    """The issuer domain name to write: ``wanted`` if the CA lists it, else the first the
    CA lists. :class:`InvalidInput` when the CA lists none and none is given, or lists
    others only."""
    names = [n.lower().rstrip(".") for n in offered]
    if wanted:
        choice = wanted.lower().rstrip(".")
        if names and choice not in names:
            raise InvalidInput(
                f"issuer {choice} is not one the CA accepts ({', '.join(names)})",
                code="persist-issuer",
            )
        return choice
    if not names:
        raise InvalidInput(
            "the CA names no issuer domain name (its directory has no caaIdentities):"
            " give the one its documentation names",
            code="persist-issuer",
        )
    if len(names) > 1:
        log.info("the CA accepts %s; writing %s", ", ".join(names), names[0])
    return names[0]


def build_records(
    names: Sequence[str],
    *,
    account_url: str,
    issuer: str,
    wildcard: bool = False,
    until: dt.datetime | None = None,
) -> dict[str, PersistRecord]:
    """One record per name (``example.test`` and ``*.example.test`` share one, with
    ``policy=wildcard``), by the name without ``*.``, in the order given."""
    stamp = None if until is None else int(until.timestamp())
    wild = {n.removeprefix("*.").lower() for n in names if is_wildcard(n)}
    out: dict[str, PersistRecord] = {}
    for name in names:
        base = name.removeprefix("*.").rstrip(".").lower()
        out.setdefault(
            base,
            PersistRecord(
                issuer=issuer,
                account_uri=account_url,
                policy="wildcard" if wildcard or base in wild else "",
                persist_until=stamp,
            ),
        )
    return out


def persist_tasks(records: Mapping[str, PersistRecord]) -> list[ChallengeTask]:
    """Tasks that make any dns-01 solver publish ``records`` (name -> record) at
    ``_validation-persist.<name>``: their ``txt_value`` is the record's text."""
    return [
        ChallengeTask(
            identifier=Identifier(type="dns", value=name),
            challenge=Challenge(type="dns-persist-01", url="", status="pending"),
            key_authorization="",
            txt_value=record.to_text(),
        )
        for name, record in records.items()
    ]


# -- deciding -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Requirement:
    """What must be true for ``name`` (``*.`` for a wildcard): a record for one of
    ``issuers`` (empty: any issuer) and ``account_uri``, valid at ``now``."""

    name: str
    account_uri: str
    issuers: tuple[str, ...] = ()

    @property
    def wildcard(self) -> bool:
        return is_wildcard(self.name)


@dataclass(frozen=True, slots=True, kw_only=True)
class Verdict:
    """The outcome at one server: the ``valid`` record, or ``problems`` (one line each);
    ``warnings`` for a valid record that expires soon; ``ignored`` records of other CAs."""

    valid: PersistRecord | None = None
    problems: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    ignored: tuple[str, ...] = ()


def evaluate(values: Iterable[str], requirement: Requirement, *, now: dt.datetime) -> Verdict:
    """Which of the TXT ``values`` at the record lets this account and CA validate
    ``requirement.name`` (draft-ietf-acme-dns-persist §4, §5); pure. Of several valid
    records the one that lasts longest counts (an older one may linger after a new one was
    published)."""
    issuers = tuple(i.lower().rstrip(".") for i in requirement.issuers)
    problems: list[str] = []
    ignored: list[str] = []
    valid: list[PersistRecord] = []
    found = sorted(values)
    if not found:
        return Verdict(problems=("no record",))
    for text in found:
        issuer = text.split(";", 1)[0].strip(" \t").lower()
        if issuers and issuer not in issuers:
            ignored.append(issuer or "(none)")
            continue
        try:
            record = parse_record(text)
        except RecordSyntaxError as exc:
            problems.append(f"malformed record for issuer {issuer}: {exc}")
            continue
        expires = record.expires
        if record.account_uri != requirement.account_uri:
            problems.append(
                f"accounturi is {record.account_uri}, this run is account {requirement.account_uri}"
            )
        elif requirement.wildcard and not record.wildcard:
            problems.append("a wildcard was requested but the record lacks policy=wildcard")
        elif expires is not None and expires <= now:
            problems.append(f"persistUntil passed on {when(expires)}")
        else:
            valid.append(record)
    if valid:
        best = max(valid, key=lambda r: (r.persist_until is None, r.persist_until or 0))
        return Verdict(valid=best, warnings=_expiry_warning(best, requirement, now),
                       ignored=tuple(ignored))  # fmt: skip
    if ignored and not problems:
        accepted = ", ".join(issuers)
        names = ", ".join(dict.fromkeys(ignored))
        problems.append(f"issuer {names} is not one the CA accepts ({accepted})")
    return Verdict(problems=tuple(problems), ignored=tuple(ignored))


def _expiry_warning(
    record: PersistRecord, requirement: Requirement, now: dt.datetime
) -> tuple[str, ...]:
    expires = record.expires
    if expires is None or expires - now > EXPIRY_WARNING:
        return ()
    days = (expires - now).days
    return (
        f"the dns-persist-01 record of {requirement.name} expires on {when(expires)}"
        f" (persistUntil, in {days} day{'s' if days != 1 else ''}): publish one with a later"
        " persistUntil before then",
    )


def when(moment: dt.datetime) -> str:
    """A moment as the messages write it: ``2026-01-01 00:00 UTC``."""
    return moment.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
