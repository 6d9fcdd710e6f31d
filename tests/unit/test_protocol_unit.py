"""Unit tests for keys, JWS, transport helpers, problems, models and CSRs (no network)."""

from __future__ import annotations

import base64
import datetime as dt
import email.utils
import hashlib
import hmac
import json
import time

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from josepy import jwa

from acmelite.challenges import ChallengeTask
from acmelite.csr import csr_identifiers, load_csr, make_csr
from acmelite.errors import (
    BadNonceError,
    InvalidInput,
    Problem,
    ProtocolError,
    RateLimitedError,
    problem_error,
)
from acmelite.jws import eab_jws, sign_request
from acmelite.keys import AccountKey, generate_private_key, jwk_thumbprint, load_private_key
from acmelite.models import Authorization, Directory, Order, parse_timestamp
from acmelite.transport import NoncePool, parse_links, parse_retry_after

# RFC 7638 §3.1: the example RSA key and its SHA-256 thumbprint.
RFC7638_N = (
    "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebW"
    "KRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQ"
    "MicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2N"
    "cRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
)
RFC7638_THUMBPRINT = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


def _b64d(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def test_rfc7638_thumbprint_vector() -> None:
    jwk = {"kty": "RSA", "n": RFC7638_N, "e": "AQAB", "alg": "RS256", "kid": "2011-04-29"}
    assert jwk_thumbprint(jwk) == RFC7638_THUMBPRINT


def test_thumbprint_of_own_key_matches_function_and_key_authorization() -> None:
    key = AccountKey.generate()
    assert key.thumbprint() == jwk_thumbprint(key.public_jwk())
    assert key.key_authorization("tok_en-1") == f"tok_en-1.{key.thumbprint()}"
    with pytest.raises(InvalidInput, match="member"):
        jwk_thumbprint({"kty": "EC", "crv": "P-256", "x": "abc"})


@pytest.mark.parametrize(
    ("kind", "alg", "curve_or_size"),
    [
        ("ec256", "ES256", "P-256"),
        ("ec384", "ES384", "P-384"),
        ("rsa2048", "RS256", 2048),
    ],
)
def test_account_key_algorithms(kind: str, alg: str, curve_or_size: object) -> None:
    key = AccountKey.generate(kind)
    assert key.alg == alg
    jwk = key.public_jwk()
    if alg.startswith("ES"):
        assert jwk["kty"] == "EC"
        assert jwk["crv"] == curve_or_size
        assert "d" not in jwk
    else:
        assert jwk["kty"] == "RSA"
        assert set(jwk) == {"kty", "n", "e"}
    assert AccountKey.from_pem(key.to_pem()).thumbprint() == key.thumbprint()


def test_flattened_jws_with_jwk_then_kid() -> None:
    """RFC 8555 §6.2: protected {alg, nonce, url, jwk|kid}; the signature verifies."""
    key = AccountKey.generate()
    body = json.loads(
        sign_request(
            key, url="https://ca/new-acct", nonce="n1", payload={"termsOfServiceAgreed": True}
        )
    )
    assert set(body) == {"protected", "payload", "signature"}
    protected = json.loads(_b64d(body["protected"]))
    assert protected == {
        "alg": "ES256",
        "nonce": "n1",
        "url": "https://ca/new-acct",
        "jwk": key.public_jwk(),
    }
    assert json.loads(_b64d(body["payload"])) == {"termsOfServiceAgreed": True}
    signing_input = f"{body['protected']}.{body['payload']}".encode()
    assert len(_b64d(body["signature"])) == 64  # raw R||S, RFC 7518 §3.4
    assert isinstance(key.key, ec.EllipticCurvePrivateKey)
    assert jwa.ES256.verify(key.key.public_key(), signing_input, _b64d(body["signature"]))

    get = json.loads(
        sign_request(
            key, url="https://ca/order/1", nonce="n2", payload=None, kid="https://ca/acct/7"
        )
    )
    protected = json.loads(_b64d(get["protected"]))
    assert protected["kid"] == "https://ca/acct/7"
    assert "jwk" not in protected
    assert get["payload"] == ""  # POST-as-GET, RFC 8555 §6.3


def test_rsa_jws_verifies() -> None:
    key = AccountKey.generate("rsa2048")
    body = json.loads(sign_request(key, url="u", nonce="n", payload={}, kid="k"))
    assert isinstance(key.key, rsa.RSAPrivateKey)
    assert jwa.RS256.verify(
        key.key.public_key(),
        f"{body['protected']}.{body['payload']}".encode(),
        _b64d(body["signature"]),
    )


@pytest.mark.parametrize(("alg", "digest"), [("HS256", hashlib.sha256), ("HS512", hashlib.sha512)])
def test_eab_binding(alg: str, digest: object) -> None:
    """RFC 8555 §7.3.4: HMAC over the account JWK with the CA's key, kid and url in the header."""
    key = AccountKey.generate()
    mac_key = b"0123456789abcdef" * 4  # RFC 7518 §3.2: at least the hash size (HS512)
    b64key = base64.urlsafe_b64encode(mac_key).rstrip(b"=").decode()
    eab = eab_jws(key, kid="kid-1", hmac_key_b64=b64key, url="https://ca/new-acct", alg=alg)
    assert json.loads(_b64d(eab["protected"])) == {
        "alg": alg,
        "kid": "kid-1",
        "url": "https://ca/new-acct",
    }
    assert json.loads(_b64d(eab["payload"])) == key.public_jwk()
    expected = hmac.new(mac_key, f"{eab['protected']}.{eab['payload']}".encode(), digest).digest()  # type: ignore[arg-type]
    assert _b64d(eab["signature"]) == expected
    assert b64key not in json.dumps(eab)
    with pytest.raises(InvalidInput, match="base64url"):
        eab_jws(key, kid="k", hmac_key_b64="not base64!", url="u")
    with pytest.raises(InvalidInput, match="HS256"):
        eab_jws(key, kid="k", hmac_key_b64=b64key, url="u", alg="RS256")


def test_load_private_key_refuses_garbage_and_weak_keys() -> None:
    with pytest.raises(InvalidInput, match="not a PEM or DER"):
        load_private_key(b"hello", source="account key x")
    from cryptography.hazmat.primitives import serialization

    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505
    pem = weak.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(InvalidInput, match="1024 bits"):
        load_private_key(pem)
    with pytest.raises(InvalidInput, match="unknown key type"):
        generate_private_key("dsa")


def test_retry_after_both_forms() -> None:
    assert parse_retry_after("120") == 120.0
    future = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 28 <= (parse_retry_after(future) or 0) <= 31
    past = email.utils.formatdate(time.time() - 30, usegmt=True)
    assert parse_retry_after(past) == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


def test_link_headers_every_value() -> None:
    links = parse_links(
        [
            '<https://ca/dir>;rel="index", <https://ca/cert/1/1>;rel="alternate"',
            "<https://ca/cert/1/2>; rel=alternate",
        ]
    )
    assert ("index", "https://ca/dir") in links
    assert [u for r, u in links if r == "alternate"] == [
        "https://ca/cert/1/1",
        "https://ca/cert/1/2",
    ]


def test_nonce_pool_is_lifo_and_bounded() -> None:
    pool = NoncePool(limit=2)
    for n in ("a", "b", "c", None, ""):
        pool.put(n)
    assert len(pool) == 2
    assert pool.take() == "c"
    assert pool.take() == "b"
    assert pool.take() is None


def test_problem_with_subproblems_becomes_typed_error() -> None:
    doc = {
        "type": "urn:ietf:params:acme:error:rejectedIdentifier",
        "detail": "Some of the identifiers requested were rejected",
        "status": 400,
        "subproblems": [
            {
                "type": "urn:ietf:params:acme:error:rejectedIdentifier",
                "detail": 'This CA will not issue for "example.net"',
                "identifier": {"type": "dns", "value": "example.net"},
            }
        ],
        "unknownField": [1, 2],
    }
    problem = Problem.from_json(doc)
    assert problem.short_type == "rejectedIdentifier"
    assert problem.subproblems[0].identifier == "example.net"
    assert "example.net: rejectedIdentifier" in problem.describe()
    err = problem_error(problem, url="https://ca/new-order")
    assert err.problem is problem
    assert isinstance(
        problem_error(Problem(type="urn:ietf:params:acme:error:badNonce")), BadNonceError
    )
    limited = problem_error(
        Problem(type="urn:ietf:params:acme:error:rateLimited", status=429), retry_after=60
    )
    assert isinstance(limited, RateLimitedError)
    assert limited.retry_after == 60
    assert Problem.from_json("<html>oops</html>").detail == "<html>oops</html>"


def test_models_ignore_unknown_fields_and_report_missing_ones() -> None:
    directory = Directory.from_json(
        {
            "newNonce": "n",
            "newAccount": "a",
            "newOrder": "o",
            "renewalInfo": "r",
            "meta": {"termsOfService": "tos", "profiles": {"default": "d"}, "newThing": {}},
            "someFutureResource": "x",
        }
    )
    assert directory.renewal_info == "r"
    assert directory.profiles == {"default": "d"}
    with pytest.raises(ProtocolError, match="newOrder"):
        Directory.from_json({"newNonce": "n", "newAccount": "a"})
    order = Order.from_json(
        {
            "status": "pending",
            "identifiers": [{"type": "dns", "value": "a.test"}],
            "authorizations": ["https://ca/authz/1"],
            "finalize": "https://ca/fin/1",
            "expires": "2026-11-30T10:00:00.123456789Z",
            "extra": True,
        },
        url="https://ca/order/1",
    )
    assert order.expires == dt.datetime(2026, 11, 30, 10, 0, 0, 123456, tzinfo=dt.timezone.utc)
    authz = Authorization.from_json(
        {
            "status": "invalid",
            "identifier": {"type": "dns", "value": "a.test"},
            "wildcard": True,
            "challenges": [
                {
                    "type": "dns-01",
                    "url": "u",
                    "status": "invalid",
                    "token": "t",
                    "error": {"type": "urn:ietf:params:acme:error:dns", "detail": "NXDOMAIN"},
                }
            ],
        },
        url="https://ca/authz/1",
    )
    failure = authz.failure()
    assert failure.identifier == "*.a.test"
    assert failure.detail == "NXDOMAIN"
    with pytest.raises(ProtocolError, match="timestamp"):
        parse_timestamp("yesterday", "order.expires")


def test_csr_has_every_name_and_no_eku() -> None:
    from acmelite.models import Identifier

    key = generate_private_key("ec256")
    idents = [
        Identifier(type="dns", value="a.example.test"),
        Identifier(type="dns", value="*.example.test"),
        Identifier(type="ip", value="192.0.2.7"),
    ]
    csr = make_csr(key, idents)
    assert csr.is_signature_valid
    assert csr_identifiers(csr) == ["a.example.test", "*.example.test", "192.0.2.7"]
    with pytest.raises(x509.ExtensionNotFound):
        csr.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    from cryptography.hazmat.primitives import serialization

    der = csr.public_bytes(serialization.Encoding.DER)
    assert csr_identifiers(load_csr(der)) == csr_identifiers(csr)
    with pytest.raises(InvalidInput, match="not a PEM or DER"):
        load_csr(b"junk")


def test_dns01_record_and_value() -> None:
    """RFC 8555 §8.4: base64url(SHA-256(key authorization)) at _acme-challenge.<name>."""
    from acmelite.models import Challenge, Identifier

    task = ChallengeTask(
        identifier=Identifier(type="dns", value="example.test"),
        wildcard=True,
        challenge=Challenge(type="dns-01", url="u", status="pending", token="tok"),
        key_authorization="tok.thumb",
    )
    digest = hashlib.sha256(b"tok.thumb").digest()
    assert task.dns01_value == base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    assert task.dns01_record == "_acme-challenge.example.test."
    assert task.name == "*.example.test"
