"""ACME resources as frozen dataclasses (RFC 8555 §7.1).

Server JSON enters here as ``Mapping[str, object]`` and leaves as typed values. Unknown
fields are ignored; a missing or mistyped required field raises :class:`ProtocolError`
naming the resource and the field. camelCase stays in this module.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field

from .errors import Problem, ProtocolError

__all__ = [
    "ACCOUNT_STATUSES",
    "AUTHORIZATION_STATUSES",
    "CHALLENGE_STATUSES",
    "ORDER_STATUSES",
    "Account",
    "Authorization",
    "Challenge",
    "Directory",
    "Identifier",
    "Order",
    "RenewalInfo",
]


def _as_mapping(data: object, what: str) -> Mapping[str, object]:
    if not isinstance(data, Mapping):
        raise ProtocolError(f"{what}: expected a JSON object, got {type(data).__name__}")
    return data


def _str(data: Mapping[str, object], key: str, what: str, *, required: bool = True) -> str:
    value = data.get(key)
    if isinstance(value, str):
        return value
    if value is None and not required:
        return ""
    raise ProtocolError(f"{what}: field {key!r} missing or not a string")


#: The status values each resource may have (RFC 8555 §7.1.6); anything else is a
#: protocol error, so no other text from the CA ever reaches a message as a "status".
ACCOUNT_STATUSES = frozenset({"valid", "deactivated", "revoked"})
ORDER_STATUSES = frozenset({"pending", "ready", "processing", "valid", "invalid"})
AUTHORIZATION_STATUSES = frozenset(
    {"pending", "valid", "invalid", "deactivated", "expired", "revoked"}
)
CHALLENGE_STATUSES = frozenset({"pending", "processing", "valid", "invalid"})


def _status(data: Mapping[str, object], what: str, allowed: frozenset[str]) -> str:
    value = _str(data, "status", what)
    if value not in allowed:
        raise ProtocolError(
            f"{what}: status {value[:40]!r} is not one of {', '.join(sorted(allowed))}"
            " (RFC 8555 §7.1.6)"
        )
    return value


def _str_list(data: Mapping[str, object], key: str, what: str) -> tuple[str, ...]:
    value = data.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ProtocolError(f"{what}: field {key!r} is not a list of strings")
    return tuple(value)


def _time(data: Mapping[str, object], key: str, what: str) -> dt.datetime | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ProtocolError(f"{what}: field {key!r} is not a timestamp")
    return parse_timestamp(value, f"{what}.{key}")


def parse_timestamp(value: str, what: str) -> dt.datetime:
    """Parse an RFC 3339 timestamp (Pebble sends nanoseconds; Python wants at most 6 digits)."""
    text = value.strip().replace("z", "Z")
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    if "." in text:
        head, _, rest = text.partition(".")
        digits = ""
        while rest and rest[0].isdigit():
            digits, rest = digits + rest[0], rest[1:]
        text = f"{head}.{digits[:6].ljust(6, '0')}{rest}"
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ProtocolError(f"{what}: not an RFC 3339 timestamp: {value[:40]!r}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.timezone.utc)
    return parsed


@dataclass(frozen=True, slots=True, kw_only=True)
class Identifier:
    """RFC 8555 §9.7.7: ``dns`` or ``ip`` (RFC 8738)."""

    type: str
    value: str

    @classmethod
    def from_json(cls, data: object) -> Identifier:
        obj = _as_mapping(data, "identifier")
        return cls(type=_str(obj, "type", "identifier"), value=_str(obj, "value", "identifier"))

    def to_json(self) -> dict[str, str]:
        return {"type": self.type, "value": self.value}


@dataclass(frozen=True, slots=True, kw_only=True)
class Directory:
    """RFC 8555 §7.1.1, plus ``renewalInfo`` (RFC 9773) and ``meta.profiles``."""

    new_nonce: str
    new_account: str
    new_order: str
    revoke_cert: str = ""
    key_change: str = ""
    new_authz: str = ""
    renewal_info: str = ""
    terms_of_service: str = ""
    website: str = ""
    caa_identities: tuple[str, ...] = ()
    external_account_required: bool = False
    profiles: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: object) -> Directory:
        what = "directory"
        obj = _as_mapping(data, what)
        meta_raw = obj.get("meta", {})
        meta = meta_raw if isinstance(meta_raw, Mapping) else {}
        profiles_raw = meta.get("profiles", {})
        profiles = (
            {str(k): str(v) for k, v in profiles_raw.items()}
            if isinstance(profiles_raw, Mapping)
            else {}
        )
        caa = meta.get("caaIdentities", [])
        return cls(
            new_nonce=_str(obj, "newNonce", what),
            new_account=_str(obj, "newAccount", what),
            new_order=_str(obj, "newOrder", what),
            revoke_cert=_str(obj, "revokeCert", what, required=False),
            key_change=_str(obj, "keyChange", what, required=False),
            new_authz=_str(obj, "newAuthz", what, required=False),
            renewal_info=_str(obj, "renewalInfo", what, required=False),
            terms_of_service=str(meta.get("termsOfService", "") or ""),
            website=str(meta.get("website", "") or ""),
            caa_identities=tuple(str(c) for c in caa) if isinstance(caa, list) else (),
            external_account_required=meta.get("externalAccountRequired") is True,
            profiles=profiles,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Account:
    """RFC 8555 §7.1.2. ``url`` is the account URL (the ``kid``) from the Location header."""

    url: str
    status: str
    contact: tuple[str, ...] = ()
    orders: str = ""

    @classmethod
    def from_json(cls, data: object, *, url: str) -> Account:
        what = "account"
        obj = _as_mapping(data, what)
        return cls(
            url=url,
            status=_status(obj, what, ACCOUNT_STATUSES),
            contact=_str_list(obj, "contact", what),
            orders=_str(obj, "orders", what, required=False),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Challenge:
    """RFC 8555 §7.1.5 / §8. A dns-persist-01 challenge (draft-ietf-acme-dns-persist §3.1)
    has no token; it names the CA's ``issuer_domain_names`` and, since draft -01, the
    ``account_uri`` its record must carry."""

    type: str
    url: str
    status: str
    token: str = ""
    validated: dt.datetime | None = None
    error: Problem | None = None
    issuer_domain_names: tuple[str, ...] = ()
    account_uri: str = ""

    @classmethod
    def from_json(cls, data: object) -> Challenge:
        what = "challenge"
        obj = _as_mapping(data, what)
        err = obj.get("error")
        return cls(
            type=_str(obj, "type", what),
            url=_str(obj, "url", what),
            status=_status(obj, what, CHALLENGE_STATUSES),
            token=_str(obj, "token", what, required=False),
            validated=_time(obj, "validated", what),
            error=Problem.from_json(err) if err is not None else None,
            issuer_domain_names=_str_list(obj, "issuer-domain-names", what),
            account_uri=_str(obj, "accounturi", what, required=False),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Authorization:
    """RFC 8555 §7.1.4."""

    url: str
    identifier: Identifier
    status: str
    challenges: tuple[Challenge, ...]
    expires: dt.datetime | None = None
    wildcard: bool = False

    @classmethod
    def from_json(cls, data: object, *, url: str) -> Authorization:
        """Parse an authorization. One that is ``valid`` already needs no challenge, so its
        challenges may be missing or odd (CAs that pre-validate, such as Sectigo, list
        none or one of their own making): those that do not parse are left out."""
        what = "authorization"
        obj = _as_mapping(data, what)
        status = _status(obj, what, AUTHORIZATION_STATUSES)
        chals = obj.get("challenges", [])
        if chals is None and status == "valid":
            chals = []
        if not isinstance(chals, list):
            raise ProtocolError(f"{what}: field 'challenges' is not a list")
        challenges = []
        for chal in chals:
            try:
                challenges.append(Challenge.from_json(chal))
            except ProtocolError:
                if status != "valid":
                    raise
        return cls(
            url=url,
            identifier=Identifier.from_json(obj.get("identifier")),
            status=status,
            challenges=tuple(challenges),
            expires=_time(obj, "expires", what),
            wildcard=obj.get("wildcard") is True,
        )

    @property
    def name(self) -> str:
        """The identifier as requested: ``*.example.com`` for a wildcard authorization."""
        return f"*.{self.identifier.value}" if self.wildcard else self.identifier.value

    def challenge(self, challenge_type: str) -> Challenge | None:
        return next((c for c in self.challenges if c.type == challenge_type), None)

    def failure(self) -> Problem:
        """The problem that made this authorization invalid, tagged with the name."""
        errors = [c.error for c in self.challenges if c.error is not None]
        base = (
            errors[0]
            if errors
            else Problem(
                type="urn:ietf:params:acme:error:unauthorized",
                detail=f"authorization is {self.status} and no challenge reported an error",
            )
        )
        return Problem(
            type=base.type,
            detail=base.detail,
            status=base.status,
            title=base.title,
            instance=base.instance,
            identifier=self.name,
            subproblems=base.subproblems,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Order:
    """RFC 8555 §7.1.3."""

    url: str
    status: str
    identifiers: tuple[Identifier, ...]
    authorizations: tuple[str, ...]
    finalize: str
    certificate: str = ""
    expires: dt.datetime | None = None
    error: Problem | None = None
    profile: str = ""
    replaces: str = ""

    @classmethod
    def from_json(cls, data: object, *, url: str) -> Order:
        what = "order"
        obj = _as_mapping(data, what)
        idents = obj.get("identifiers", [])
        if not isinstance(idents, list):
            raise ProtocolError(f"{what}: field 'identifiers' is not a list")
        err = obj.get("error")
        return cls(
            url=url,
            status=_status(obj, what, ORDER_STATUSES),
            identifiers=tuple(Identifier.from_json(i) for i in idents),
            authorizations=_str_list(obj, "authorizations", what),
            finalize=_str(obj, "finalize", what),
            certificate=_str(obj, "certificate", what, required=False),
            expires=_time(obj, "expires", what),
            error=Problem.from_json(err) if err is not None else None,
            profile=_str(obj, "profile", what, required=False),
            replaces=_str(obj, "replaces", what, required=False),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class RenewalInfo:
    """RFC 9773 §4.2: the CA's suggested renewal window for one certificate."""

    start: dt.datetime
    end: dt.datetime
    explanation_url: str = ""

    @classmethod
    def from_json(cls, data: object) -> RenewalInfo:
        what = "renewalInfo"
        obj = _as_mapping(data, what)
        window = _as_mapping(obj.get("suggestedWindow"), f"{what}.suggestedWindow")
        start = _time(window, "start", what)
        end = _time(window, "end", what)
        if start is None or end is None or end < start:
            raise ProtocolError(f"{what}: suggestedWindow needs start <= end")
        return cls(
            start=start,
            end=end,
            explanation_url=_str(obj, "explanationURL", what, required=False),
        )
