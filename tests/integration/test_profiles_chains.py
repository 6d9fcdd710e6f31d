"""Certificate profiles (draft-ietf-acme-profiles) and alternate chains, against Pebble.

The harness configures Pebble with two profiles, ``default`` (90 days) and ``shortlived``
(6 days). Pebble 2.10 gives an order that names no profile one of them at random, and says
which in the order object. With ``alternate_roots=1`` every certificate URL has one
``Link: rel="alternate"`` chain up to a second root (same intermediate name and key,
cross-signed), so only the root's common name tells the chains apart.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from acmelite import AccountKey, AcmeClient, InvalidInput
from acmelite.models import Identifier
from acmelite.testing.pebble import Pebble, PebbleServer
from tests.integration.test_renew import renew
from tests.support import issue_argv, run_cli, verify_chain

LIFETIME = {"default": dt.timedelta(days=90), "shortlived": dt.timedelta(days=6)}


def _lifetime(out: Path) -> dt.timedelta:
    cert = x509.load_pem_x509_certificate((out / "cert.pem").read_bytes())
    # Pebble's notAfter is inclusive: one second short of the full period.
    return cert.not_valid_after_utc - cert.not_valid_before_utc + dt.timedelta(seconds=1)


@pytest.mark.parametrize("profile", ["default", "shortlived"])
def test_profile_sets_the_lifetime_and_is_remembered(
    pebble: Pebble, tmp_path: Path, capsys: pytest.CaptureFixture[str], profile: str
) -> None:
    argv = issue_argv(pebble, tmp_path, f"{profile}.profile.test")
    result = run_cli([*argv, "--profile", profile], capsys)
    assert result.code == 0, result.err
    out = tmp_path / "out"
    assert _lifetime(out) == LIFETIME[profile]
    assert json.loads((out / "renewal.json").read_text())["profile"] == profile
    code, _, err = renew(capsys, str(out), "--force")
    assert code == 3, err
    assert _lifetime(out) == LIFETIME[profile]


def _order_count(pebble: Pebble) -> int | None:
    if not isinstance(pebble, PebbleServer):
        return None
    return pebble.log_path.read_text(errors="replace").count("Added order")


def test_unknown_profile_is_refused_before_the_order(
    pebble: Pebble, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = issue_argv(pebble, tmp_path, "unknown.profile.test")
    orders = _order_count(pebble)
    result = run_cli([*argv, "--profile", "tiny"], capsys)
    assert result.code == 1
    assert result.err.splitlines()[-1] == (
        f"acmelite: error: profile 'tiny' is not offered by {pebble.directory_url};"
        " its profiles: default (90-day certificates); shortlived (6-day certificates)"
    )
    assert _order_count(pebble) == orders
    assert not (tmp_path / "out").exists()


def test_library_profile_check_and_pebble_default(pebble: Pebble) -> None:
    """Without a profile Pebble 2.10 draws one per order; the order says which."""
    with AcmeClient(pebble.directory_url, AccountKey.generate(), ca_bundle=pebble.ca_bundle) as c:
        c.register(agree_tos=True)
        with pytest.raises(InvalidInput, match="its profiles: default"):
            c.check_profile("tiny")
        ident = [Identifier(type="dns", value="random.profile.test")]
        seen = {c.new_order(ident).profile for _ in range(24)}
    assert seen == {"default", "shortlived"}


def _common_name(pem: str) -> str:
    cert = x509.load_pem_x509_certificate(pem.encode())
    return str(cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)


def _top_issuer(out: Path) -> str:
    top = x509.load_pem_x509_certificates((out / "fullchain.pem").read_bytes())[-1]
    return str(top.issuer.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)


@pytest.fixture(scope="module")
def two_roots(pebble_factory: object) -> Pebble:
    return pebble_factory(alternate_roots=1)  # type: ignore[operator,no-any-return]


def test_preferred_chain_picked_and_remembered(
    two_roots: Pebble, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    default_root, other_root = _common_name(two_roots.roots(0)), _common_name(two_roots.roots(1))
    assert default_root != other_root
    argv = issue_argv(two_roots, tmp_path, "alt.chain.test")
    result = run_cli([*argv, "--preferred-chain", other_root], capsys)
    assert result.code == 0, result.err
    out = tmp_path / "out"
    assert _top_issuer(out) == other_root
    verify_chain((out / "fullchain.pem").read_bytes(), two_roots.roots(1), "alt.chain.test")
    with pytest.raises(x509.verification.VerificationError):
        verify_chain((out / "fullchain.pem").read_bytes(), two_roots.roots(0), "alt.chain.test")
    assert json.loads((out / "renewal.json").read_text())["preferred_chain"] == other_root
    code, _, err = renew(capsys, str(out), "--force")
    assert code == 3, err
    assert _top_issuer(out) == other_root


def test_preferred_chain_absent_falls_back_to_default(
    two_roots: Pebble, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = issue_argv(two_roots, tmp_path, "absent.chain.test")
    result = run_cli([*argv, "--preferred-chain", "No Such Root"], capsys)
    assert result.code == 0, result.err
    out = tmp_path / "out"
    assert _top_issuer(out) == _common_name(two_roots.roots(0))
    verify_chain((out / "fullchain.pem").read_bytes(), two_roots.roots(0), "absent.chain.test")
