"""keyChange (RFC 8555 §7.3.5): the nested JWS, checked byte by byte against a fake CA."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Mapping

import josepy
import pytest

from acmelite import AccountKey, AcmeClient
from acmelite.errors import InvalidInput, Problem, ProblemError, ProtocolError, problem_error
from acmelite.transport import Response

CA = "https://ca.test"
ACCOUNT = f"{CA}/acct/1"
KEY_CHANGE = f"{CA}/key-change"
NEW_ACCOUNT = f"{CA}/new-acct"
DIRECTORY = {
    "newNonce": f"{CA}/nonce",
    "newAccount": NEW_ACCOUNT,
    "newOrder": f"{CA}/new-order",
    "revokeCert": f"{CA}/revoke",
    "keyChange": KEY_CHANGE,
}

Reply = Callable[[str, Mapping[str, object]], Response]


def _b64d(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _part(jws: Mapping[str, str], name: str) -> dict[str, object]:
    decoded = json.loads(_b64d(jws[name]))
    assert isinstance(decoded, dict)
    return decoded


def _verifies(key: AccountKey, jws: Mapping[str, str]) -> bool:
    alg = josepy.JWASignature.from_json(key.alg)
    message = f"{jws['protected']}.{jws['payload']}".encode()
    return bool(alg.verify(key.key.public_key(), message, _b64d(jws["signature"])))


def _problem(kind: str, status: int, detail: str = "") -> ProblemError:
    return problem_error(
        Problem(type=f"urn:ietf:params:acme:error:{kind}", detail=detail, status=status)
    )


def _no_account(url: str, body: Mapping[str, object]) -> Response:
    """A CA that knows no account for any key but accepts every keyChange."""
    if url == NEW_ACCOUNT:
        raise _problem("accountDoesNotExist", 400)
    return Response(url=url, status=200, headers={}, content=b"")


class FakeTransport:
    """Signs every request with a made-up nonce and records it; ``reply`` answers it."""

    def __init__(self, reply: Reply, directory: Mapping[str, str] = DIRECTORY) -> None:
        self.reply = reply
        self.directory = directory
        self.new_nonce_url = ""
        self.posts: list[tuple[str, dict[str, str]]] = []

    def get(self, url: str, *, deadline: float | None = None) -> Response:
        return Response(
            url=url, status=200, headers={}, content=json.dumps(self.directory).encode()
        )

    def post(self, url: str, sign: Callable[[str], bytes], **_: object) -> Response:
        body = json.loads(sign(f"nonce-{len(self.posts)}"))
        self.posts.append((url, body))
        return self.reply(url, body)

    def close(self) -> None:
        pass


def _client(
    reply: Reply = _no_account,
    *,
    account_url: str = ACCOUNT,
    directory: Mapping[str, str] = DIRECTORY,
) -> tuple[AcmeClient, FakeTransport]:
    transport = FakeTransport(reply, directory)
    client = AcmeClient(
        CA + "/dir",
        AccountKey.generate(),
        account_url=account_url,
        transport=transport,  # type: ignore[arg-type]
    )
    return client, transport


@pytest.mark.parametrize("new_type", ["ec256", "ec384", "rsa2048"])
def test_nested_jws_structure(new_type: str) -> None:
    client, transport = _client()
    old, new = client.account_key, AccountKey.generate(new_type)
    client.change_key(new)

    lookup_url, lookup = transport.posts[0]
    assert lookup_url == NEW_ACCOUNT  # is the new key free? asked with the new key's jwk
    assert _part(lookup, "protected")["jwk"] == new.public_jwk()
    assert _part(lookup, "payload") == {"onlyReturnExisting": True}

    url, outer = transport.posts[-1]
    assert url == KEY_CHANGE
    # Outer: an ordinary kid request, signed by the old key.
    assert _part(outer, "protected") == {
        "alg": old.alg,
        "kid": ACCOUNT,
        "nonce": "nonce-1",
        "url": KEY_CHANGE,
    }
    assert _verifies(old, outer)
    assert not _verifies(new, outer)
    # Inner: signed by the new key, jwk and url only — no nonce, no kid.
    inner = _part(outer, "payload")
    assert set(inner) == {"protected", "payload", "signature"}
    inner_strs = {k: str(v) for k, v in inner.items()}
    assert _part(inner_strs, "protected") == {
        "alg": new.alg,
        "jwk": new.public_jwk(),
        "url": KEY_CHANGE,
    }
    assert _part(inner_strs, "payload") == {"account": ACCOUNT, "oldKey": old.public_jwk()}
    assert _verifies(new, inner_strs)
    assert not _verifies(old, inner_strs)
    # From now on the client signs with the new key.
    assert client.account_key is new
    assert len(transport.posts) == 2


def test_account_url_is_looked_up_first_when_unknown() -> None:
    def reply(url: str, body: Mapping[str, object]) -> Response:
        jwk = _part({k: str(v) for k, v in body.items()}, "protected").get("jwk")
        if url == NEW_ACCOUNT and jwk == old.public_jwk():
            return Response(
                url=url,
                status=200,
                headers={"Location": ACCOUNT},
                content=json.dumps({"status": "valid"}).encode(),
            )
        return _no_account(url, body)

    client, transport = _client(reply, account_url="")
    old, new = client.account_key, AccountKey.generate()
    client.change_key(new)
    assert [u for u, _ in transport.posts] == [NEW_ACCOUNT, NEW_ACCOUNT, KEY_CHANGE]
    inner = _part(transport.posts[-1][1], "payload")
    assert _part({k: str(v) for k, v in inner.items()}, "payload")["account"] == ACCOUNT


def test_same_key_is_refused_before_sending() -> None:
    client, transport = _client()
    old = client.account_key
    with pytest.raises(InvalidInput, match="is the current one"):
        client.change_key(AccountKey(old.key))
    assert transport.posts == []
    assert client.account_key is old


def test_key_of_another_account_is_refused_before_key_change() -> None:
    other = f"{CA}/acct/2"

    def reply(url: str, body: Mapping[str, object]) -> Response:
        return Response(url=url, status=200, headers={"Location": other}, content=b"{}")

    client, transport = _client(reply)
    old = client.account_key
    with pytest.raises(InvalidInput, match=f"already belongs to account {other}"):
        client.change_key(AccountKey.generate())
    assert [u for u, _ in transport.posts] == [NEW_ACCOUNT]
    assert client.account_key is old


def test_refusal_keeps_the_old_key() -> None:
    def reply(url: str, body: Mapping[str, object]) -> Response:
        if url == KEY_CHANGE:
            raise _problem("malformed", 400, "Key roll-over inner JWS body contains wrong old key")
        return _no_account(url, body)

    client, _ = _client(reply)
    old = client.account_key
    with pytest.raises(ProblemError, match="wrong old key"):
        client.change_key(AccountKey.generate())
    assert client.account_key is old


def test_directory_without_key_change() -> None:
    directory = {k: v for k, v in DIRECTORY.items() if k != "keyChange"}
    client, transport = _client(directory=directory)
    with pytest.raises(ProtocolError, match="no keyChange"):
        client.change_key(AccountKey.generate())
    assert transport.posts == []
