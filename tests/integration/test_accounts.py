"""Accounts against a real Pebble: EAB (RFC 8555 §7.3.4), lookup, update, key rollover and
deactivation (§7.3.1-§7.3.6), through ``acmelite account`` and the library."""

from __future__ import annotations

import base64
import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from acmelite import AccountKey, AcmeClient, NetworkError, ProblemError
from acmelite.models import Identifier
from acmelite.testing.pebble import Pebble
from tests.conftest import PebbleFactory
from tests.support import issue_argv, run_cli, verify_chain

HS256_KEY = base64.urlsafe_b64encode(bytes(range(32))).rstrip(b"=").decode()
HS512_KEY = base64.urlsafe_b64encode(bytes(range(100, 164))).rstrip(b"=").decode()
EAB_KEYS = {"kid-hs256": HS256_KEY, "kid-hs512": HS512_KEY}
DOCS = Path(__file__).resolve().parents[2] / "docs"


@pytest.fixture
def eab_pebble(pebble_factory: PebbleFactory) -> Pebble:
    """A Pebble that refuses newAccount without External Account Binding."""
    return pebble_factory(eab_required=True, eab_mac_keys=EAB_KEYS)


def account_argv(action: str, pebble: Pebble, key: Path, *extra: str) -> list[str]:
    return [
        "account",
        action,
        "--server",
        pebble.directory_url,
        "--ca-bundle",
        pebble.ca_bundle,
        "--account-key",
        str(key),
        *extra,
    ]


def _register(pebble: Pebble, key: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> dict:
    result = run_cli(
        [*account_argv("register", pebble, key, "--agree-tos", "--json"), *extra], capsys
    )
    assert result.code == 0, result.err
    summary: dict = json.loads(result.out)
    return summary


def _last_line(err: str) -> str:
    return err.strip().splitlines()[-1]


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# -- External Account Binding ----------------------------------------------------------------


def test_eab_required_and_missing(
    eab_pebble: Pebble, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = tmp_path / "account.key"
    result = run_cli(account_argv("register", eab_pebble, key, "--agree-tos"), capsys)
    assert result.code == 1
    line = _last_line(result.err)
    assert "requires External Account Binding" in line
    assert "--eab-kid" in line and "--eab-hmac-key" in line
    issued = run_cli(issue_argv(eab_pebble, tmp_path, "eab-missing.acmelite.test"), capsys)
    assert issued.code == 1
    assert "requires External Account Binding" in _last_line(issued.err)
    assert not (tmp_path / "out" / "cert.pem").exists()


@pytest.mark.parametrize(
    ("kid", "hmac_key", "detail"),
    [
        ("kid-hs256", HS512_KEY, "verification error"),
        ("kid-unknown", HS256_KEY, "not known"),
    ],
)
def test_eab_wrong_credentials(
    eab_pebble: Pebble,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    kid: str,
    hmac_key: str,
    detail: str,
) -> None:
    argv = account_argv(
        "register",
        eab_pebble,
        tmp_path / "a.key",
        "--agree-tos",
        "--eab-kid",
        kid,
        "--eab-hmac-key",
        hmac_key,
    )
    result = run_cli(argv, capsys)
    assert result.code == 1
    line = _last_line(result.err)
    assert f"refused the External Account Binding of key id {kid!r}" in line
    assert detail in line  # Pebble's own words are kept
    assert "--eab-hmac-key" in line
    assert hmac_key not in result.err + result.out


@pytest.mark.parametrize(
    ("alg", "kid", "hmac_key"),
    [
        ("HS256", "kid-hs256", HS256_KEY),
        ("HS512", "kid-hs512", HS512_KEY),
    ],
)
def test_eab_succeeds_and_is_needed_once(
    eab_pebble: Pebble,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    alg: str,
    kid: str,
    hmac_key: str,
) -> None:
    """The binding is sent once; the account URL stored beside the key serves every later run.
    The HMAC key never shows, not even with -vv (HTTP wire included)."""
    name = f"eab-{alg.lower()}.acmelite.test"
    argv = [
        *issue_argv(eab_pebble, tmp_path, name),
        "-vv",
        "--eab-kid",
        kid,
        "--eab-hmac-key",
        hmac_key,
        "--eab-hmac-alg",
        alg,
    ]
    first = run_cli(argv, capsys)
    assert first.code == 0, first.err
    assert "(created)" in first.err
    assert hmac_key not in first.out + first.err
    verify_chain((tmp_path / "out/fullchain.pem").read_bytes(), eab_pebble.roots(), name)
    stored = json.loads((tmp_path / "account.key.accounts.json").read_text())
    assert list(stored) == [eab_pebble.directory_url]

    second = run_cli([*issue_argv(eab_pebble, tmp_path, name, out="out2"), "-v"], capsys)
    assert second.code == 0, second.err
    assert "sign-me-up" not in second.err  # no newAccount at all: Pebble's newAccount path

    # `account register` finds the account; no binding is needed (nor sent) again.
    monkeypatch.setenv("ACMELITE_EAB_HMAC_KEY", hmac_key)  # the env form, read by the parser
    again = run_cli(
        [
            *account_argv(
                "register",
                eab_pebble,
                tmp_path / "account.key",
                "--agree-tos",
                "--eab-kid",
                kid,
                "--json",
            ),
            "-vv",
        ],
        capsys,
    )
    assert again.code == 0, again.err
    summary = json.loads(again.out)
    assert summary["state"] == "existing"
    assert summary["url"] == stored[eab_pebble.directory_url]
    assert hmac_key not in again.out + again.err


def test_eab_key_too_short_for_hs512(
    eab_pebble: Pebble, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """RFC 7518 §3.2: HS512 needs a 64-byte key; refused before the CA sees it."""
    argv = account_argv(
        "register",
        eab_pebble,
        tmp_path / "a.key",
        "--agree-tos",
        "--eab-kid",
        "kid-hs256",
        "--eab-hmac-key",
        HS256_KEY,
        "--eab-hmac-alg",
        "HS512",
    )
    result = run_cli(argv, capsys)
    assert result.code == 1
    assert "has 32 bytes, HS512 needs at least 64" in _last_line(result.err)


# -- lookup, register, update ------------------------------------------------------------------


def test_register_then_show(
    pebble: Pebble, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = tmp_path / "account.key"
    created = _register(pebble, key, capsys, "--email", "ops@example.test")
    assert created["state"] == "created"
    assert created["status"] == "valid"
    assert created["contact"] == ["mailto:ops@example.test"]
    assert _mode(key) == 0o600
    again = _register(pebble, key, capsys)
    assert again["state"] == "existing"
    assert again["url"] == created["url"]

    shown = run_cli(account_argv("show", pebble, key, "--json"), capsys)
    assert shown.code == 0, shown.err
    summary = json.loads(shown.out)
    assert summary["url"] == created["url"]
    assert summary["status"] == "valid"
    assert summary["contact"] == ["mailto:ops@example.test"]
    assert summary["key_thumbprint"] == AccountKey.load(key).thumbprint()
    text = run_cli(account_argv("show", pebble, key), capsys)
    assert text.code == 0, text.err
    assert re.search(r"^account\s+" + re.escape(created["url"]) + "$", text.out, re.M)
    assert re.search(r"^status\s+valid$", text.out, re.M)
    assert re.search(r"^contact\s+mailto:ops@example.test$", text.out, re.M)


def test_show_unknown_account(
    pebble: Pebble, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = tmp_path / "fresh.key"
    key.write_bytes(AccountKey.generate().to_pem())
    result = run_cli(account_argv("show", pebble, key), capsys)
    assert result.code == 1
    line = _last_line(result.err)
    assert line.startswith("acmelite: error: no account for this key")
    assert "account register --agree-tos" in line
    assert result.out == ""
    missing = run_cli(account_argv("show", pebble, tmp_path / "nope.key"), capsys)
    assert missing.code == 1
    assert "no account key at" in _last_line(missing.err)
    assert not (tmp_path / "nope.key").exists()  # show never creates a key
    unregistered = run_cli(account_argv("register", pebble, key), capsys)
    assert unregistered.code == 1
    assert "pass --agree-tos" in _last_line(unregistered.err)


def test_update_contact(pebble: Pebble, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    key = tmp_path / "account.key"
    _register(pebble, key, capsys, "--email", "old@example.test")
    updated = run_cli(
        account_argv(
            "update",
            pebble,
            key,
            "--email",
            "a@example.test",
            "--email",
            "mailto:b@example.test",
            "--json",
        ),
        capsys,
    )
    assert updated.code == 0, updated.err
    assert json.loads(updated.out)["contact"] == ["mailto:a@example.test", "mailto:b@example.test"]
    with AcmeClient(pebble.directory_url, AccountKey.load(key), ca_bundle=pebble.ca_bundle) as lib:
        assert lib.get_account().contact == ("mailto:a@example.test", "mailto:b@example.test")
        assert lib.update_account(contact=()).contact == ()
        assert lib.find_account().contact == ()
    usage = run_cli(account_argv("update", pebble, key), capsys)
    assert usage.code == 2
    assert "--email" in usage.err and "--no-email" in usage.err
    refused = run_cli(
        account_argv(
            "update",
            pebble,
            key,
            "--email",
            "x@example.test",
            "--email",
            "y@example.test",
            "--email",
            "z@example.test",
        ),
        capsys,
    )
    assert refused.code == 1
    assert "too many contacts" in _last_line(refused.err)  # Pebble allows two


# -- key rollover ------------------------------------------------------------------------------


def test_rollover_then_order_with_new_key_and_old_key_refused(
    pebble: Pebble, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = tmp_path / "account.key"
    url = _register(pebble, key, capsys)["url"]
    old_pem = key.read_bytes()
    old_key = AccountKey.load(key)
    result = run_cli(account_argv("rollover", pebble, key, "--json"), capsys)
    assert result.code == 0, result.err
    summary = json.loads(result.out)
    assert summary["url"] == url
    new_key = AccountKey.load(key)
    assert new_key.alg == "ES256"  # same algorithm: Pebble's answer to the old key is the signature
    assert summary["key_thumbprint"] == new_key.thumbprint()
    assert summary["old_key_thumbprint"] == old_key.thumbprint()
    assert (tmp_path / "account.key.old").read_bytes() == old_pem
    assert _mode(key) == 0o600
    assert _mode(tmp_path / "account.key.old") == 0o600
    assert not (tmp_path / "account.key.new").exists()

    # The same account, now signed by the new key: orders work.
    shown = json.loads(run_cli(account_argv("show", pebble, key, "--json"), capsys).out)
    assert shown["url"] == url
    issued = run_cli(issue_argv(pebble, tmp_path, "rolled.acmelite.test"), capsys)
    assert issued.code == 0, issued.err

    # The old key is refused, both by account URL and by lookup (Pebble's own answers; an old
    # key of another algorithm than the new one gets badSignatureAlgorithm instead).
    with AcmeClient(
        pebble.directory_url, old_key, ca_bundle=pebble.ca_bundle, account_url=url
    ) as stale:
        with pytest.raises(ProblemError) as info:
            stale.new_order([Identifier(type="dns", value="old-key.acmelite.test")])
        assert info.value.problem.short_type == "malformed"
        assert "JWS verification error" in info.value.problem.detail
        with pytest.raises(ProblemError) as lookup:
            stale.find_account()
        assert lookup.value.problem.short_type == "accountDoesNotExist"
    old_show = run_cli(account_argv("show", pebble, tmp_path / "account.key.old"), capsys)
    assert old_show.code == 1
    assert "no account for this key" in _last_line(old_show.err)


def test_rollover_to_given_key_file(
    pebble: Pebble, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = tmp_path / "account.key"
    url = _register(pebble, key, capsys)["url"]
    new_file = tmp_path / "next.key"
    new_file.write_bytes(AccountKey.generate("rsa2048").to_pem())  # ES256 -> RS256
    result = run_cli(account_argv("rollover", pebble, key, "--new-key", str(new_file)), capsys)
    assert result.code == 0, result.err
    assert key.read_bytes() == new_file.read_bytes()
    assert re.search(r"^new key\s+.*RS256", result.out, re.M)
    with AcmeClient(pebble.directory_url, AccountKey.load(key), ca_bundle=pebble.ca_bundle) as c:
        assert c.find_account().url == url


def test_refused_rollovers_leave_the_key_file_untouched(
    pebble: Pebble,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    key = tmp_path / "account.key"
    _register(pebble, key, capsys)
    before = key.read_bytes()

    # 1. Pebble refuses the keyChange itself: an inner JWS naming the wrong old key.
    import acmelite.accounts

    def wrong_old_key(old: AccountKey, new: AccountKey, *, url: str, account_url: str) -> object:
        return real(new, new, url=url, account_url=account_url)

    real = acmelite.accounts._key_change_jws
    with monkeypatch.context() as patch:
        patch.setattr(acmelite.accounts, "_key_change_jws", wrong_old_key)
        refused = run_cli(account_argv("rollover", pebble, key), capsys)
    assert refused.code == 1
    assert "wrong old key" in _last_line(refused.err)

    # 2. The new key already belongs to another account: refused before keyChange (Pebble
    # 2.10 would accept it and leave two accounts with one key).
    other = tmp_path / "other.key"
    _register(pebble, other, capsys)
    taken = run_cli(account_argv("rollover", pebble, key, "--new-key", str(other)), capsys)
    assert taken.code == 1
    assert "already belongs to account" in _last_line(taken.err)

    # 3. The same key again.
    same = tmp_path / "copy.key"
    same.write_bytes(before)
    again = run_cli(account_argv("rollover", pebble, key, "--new-key", str(same)), capsys)
    assert again.code == 1
    assert "is the current one" in _last_line(again.err)

    assert key.read_bytes() == before
    assert not (tmp_path / "account.key.old").exists()
    assert not (tmp_path / "account.key.new").exists()
    shown = run_cli(account_argv("show", pebble, key), capsys)
    assert shown.code == 0, shown.err


def test_rollover_with_lost_answer_keeps_the_new_key(
    pebble: Pebble,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The CA made the change but the answer never came: the new key is kept in <key>.new."""
    key = tmp_path / "account.key"
    url = _register(pebble, key, capsys)["url"]
    before = key.read_bytes()
    real = AcmeClient.change_key

    def lost_answer(self: AcmeClient, new_key: AccountKey) -> None:
        real(self, new_key)
        raise NetworkError("connection reset by peer")

    monkeypatch.setattr(AcmeClient, "change_key", lost_answer)
    result = run_cli(account_argv("rollover", pebble, key), capsys)
    monkeypatch.undo()
    assert result.code == 1
    assert "no clear answer" in _last_line(result.err)
    assert "account.key.new" in _last_line(result.err)
    assert key.read_bytes() == before
    pending = tmp_path / "account.key.new"
    assert _mode(pending) == 0o600
    shown = run_cli(account_argv("show", pebble, pending, "--json"), capsys)
    assert shown.code == 0, shown.err
    assert json.loads(shown.out)["url"] == url


# -- deactivation ------------------------------------------------------------------------------


def test_deactivation_needs_confirmation_then_account_cannot_order(
    pebble: Pebble, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = tmp_path / "account.key"
    _register(pebble, key, capsys)
    unconfirmed = run_cli(account_argv("deactivate", pebble, key), capsys)
    assert unconfirmed.code == 2
    assert "cannot be undone" in unconfirmed.err and "--yes-deactivate" in unconfirmed.err
    assert (
        json.loads(run_cli(account_argv("show", pebble, key, "--json"), capsys).out)["status"]
        == "valid"
    )

    done = run_cli(account_argv("deactivate", pebble, key, "--yes-deactivate", "--json"), capsys)
    assert done.code == 0, done.err
    assert json.loads(done.out)["status"] == "deactivated"

    issued = run_cli(issue_argv(pebble, tmp_path, "deactivated.acmelite.test"), capsys)
    assert issued.code == 1
    assert "deactivated" in _last_line(issued.err)
    assert not (tmp_path / "out" / "cert.pem").exists()
    shown = run_cli(account_argv("show", pebble, key), capsys)
    assert shown.code == 1
    assert "deactivated" in _last_line(shown.err)


# -- docs ----------------------------------------------------------------------------------


def test_docs_library_example(pebble: Pebble, tmp_path: Path) -> None:
    """The Python example of docs/accounts.md runs against Pebble."""
    blocks = re.findall(r"```python\n(.*?)```", (DOCS / "accounts.md").read_text(), flags=re.S)
    env = {
        **os.environ,
        "ACME_DIRECTORY": pebble.directory_url,
        "ACME_CA_BUNDLE": pebble.ca_bundle,
        "HTTP_PORT": str(pebble.http_port),
    }
    proc = subprocess.run(
        [sys.executable, "-c", blocks[0]],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert "deactivated" in proc.stdout
