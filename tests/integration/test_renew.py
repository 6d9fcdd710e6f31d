"""acmelite renew against Pebble: ARI windows, ``replaces``, back-off, dry runs, key reuse.

Pebble 2.10 serves ``renewalInfo`` with a window of ``notAfter - lifetime/3 ± 1 day`` and
``Retry-After: 21600``; its management interface (``POST /set-renewal-info/``) replaces the
answer for one certificate, which is how these tests put a window in the past: a certificate
that is due now, without waiting or touching clocks.
"""

from __future__ import annotations

import datetime as dt
import json
import socket
from collections.abc import Sequence
from pathlib import Path

import pytest
import requests
from cryptography import x509

from acmelite import AccountKey, AcmeClient
from acmelite.csr import certificate_id
from acmelite.errors import ProblemError
from acmelite.keys import b64url
from acmelite.managed import STATE_FILE
from acmelite.renewal import refused_replaces
from acmelite.solvers.http01 import StandaloneSolver
from acmelite.testing.pebble import Pebble
from tests.support import (
    issue_argv,
    key_matches_cert,
    pebble_finds_for_replaces,
    run_cli,
    run_cli_subprocess,
    tree_snapshot,
    verify_chain,
)

UTC = dt.timezone.utc


def set_renewal_info(pebble: Pebble, out: Path, start: dt.datetime, end: dt.datetime) -> None:
    """Have Pebble answer this window for the certificate in ``out`` (Pebble >= 2.8)."""
    ari = {"suggestedWindow": {"start": start.isoformat(), "end": end.isoformat()}}
    body = {"Certificate": (out / "cert.pem").read_text(), "ARIResponse": json.dumps(ari)}
    with requests.Session() as session:
        session.trust_env = False
        resp = session.post(
            f"{pebble.management_url}/set-renewal-info/",
            data=json.dumps(body),
            verify=pebble.ca_bundle,
            timeout=10,
        )
    assert resp.status_code == 200, resp.text


def window_in_the_past(pebble: Pebble, out: Path) -> None:
    now = dt.datetime.now(UTC)
    set_renewal_info(pebble, out, now - dt.timedelta(hours=2), now - dt.timedelta(hours=1))


def issue(
    pebble: Pebble, tmp: Path, capsys: pytest.CaptureFixture[str], name: str, *extra: str,
    out: str = "out",
) -> Path:  # fmt: skip
    argv = issue_argv(pebble, tmp, name, out=out)
    if "--profile" not in extra:
        argv += ["--profile", "default"]  # Pebble picks a random profile without one
    result = run_cli([*argv, *extra], capsys)
    assert result.code == 0, result.err
    return tmp / out


def renew(
    capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, list[dict[str, object]], str]:
    result = run_cli(["renew", "--json", *args], capsys)
    doc = json.loads(result.out)
    assert doc["ok"] is (result.code != 1), doc
    return result.code, doc["certificates"], result.err


def cert_of(out: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate((out / "cert.pem").read_bytes())


def when(value: object) -> dt.datetime:
    assert isinstance(value, str)
    return dt.datetime.fromisoformat(value)


def files(out: Path) -> dict[str, bytes]:
    """The served files (what a web server reads), not the state beside them."""
    names = ("privkey.pem", "cert.pem", "chain.pem", "fullchain.pem")
    return {n: (out / n).read_bytes() for n in names}


def account_client(pebble: Pebble, tmp: Path) -> AcmeClient:
    client = AcmeClient(
        pebble.directory_url, AccountKey.load(tmp / "account.key"), ca_bundle=pebble.ca_bundle
    )
    client.register(only_return_existing=True)
    return client


def test_nothing_due_and_repeated_runs_agree(
    pebble: Pebble, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = issue(pebble, tmp_path, capsys, "calm.renew.test")
    before = files(out)
    cert = cert_of(out)
    code, (first,), _ = renew(capsys, str(out))
    assert code == 0
    assert first["status"] == "not-due"
    window = first["ari_window"]
    assert isinstance(window, dict)
    start, end = when(window["start"]), when(window["end"])
    # Pebble's default window: notAfter - lifetime/3, one day either side.
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert lifetime == dt.timedelta(days=90) - dt.timedelta(seconds=1)
    middle = cert.not_valid_after_utc - lifetime / 3
    assert abs(start - (middle - dt.timedelta(days=1))) < dt.timedelta(seconds=2)
    assert abs(end - (middle + dt.timedelta(days=1))) < dt.timedelta(seconds=2)
    renew_at = when(first["renew_at"])
    assert start <= renew_at <= end
    # Look again after Retry-After (6 h), long before the moment picked.
    next_check = when(first["next_check"])
    now = dt.datetime.now(UTC)
    assert dt.timedelta(hours=5.9) < next_check - now < dt.timedelta(hours=6.1)
    state = json.loads((out / STATE_FILE).read_text())
    fetched = state["ari"]["fetched"]

    code, (second,), _ = renew(capsys, str(out))
    assert code == 0
    assert second["renew_at"] == first["renew_at"]
    # Within Retry-After the stored answer is used: no second renewalInfo request.
    assert json.loads((out / STATE_FILE).read_text())["ari"]["fetched"] == fetched
    assert files(out) == before


def test_shortlived_certificate_window(
    pebble: Pebble, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A 6-day certificate: ARI's window (days 3-5) is what counts, not a 90-day guess."""
    out = issue(pebble, tmp_path, capsys, "short.renew.test", "--profile", "shortlived")
    cert = cert_of(out)
    code, (decision,), _ = renew(capsys, str(out))
    assert code == 0
    assert decision["status"] == "not-due"
    window = decision["ari_window"]
    assert isinstance(window, dict)
    start, end = when(window["start"]), when(window["end"])
    assert cert.not_valid_before_utc + dt.timedelta(days=2.9) < start
    assert end < cert.not_valid_after_utc - dt.timedelta(hours=23)
    assert start <= when(decision["renew_at"]) <= end


def test_ari_window_in_the_past_renews_with_replaces(
    pebble: Pebble, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = issue(pebble, tmp_path, capsys, "due.renew.test")
    old = cert_of(out)
    old_files = files(out)
    window_in_the_past(pebble, out)
    code, (decision,), err = renew(capsys, str(out))
    assert code == 3, err
    assert decision["status"] == "renewed"
    assert "has come" in str(decision["reason"])
    found = pebble_finds_for_replaces(old)
    if found:
        assert decision["replaces"] == certificate_id(old)
    else:  # Pebble's defect with serials that need a leading zero: refused, ordered without
        assert decision["replaces"] is None and "refused replaces" in err, err
    new = cert_of(out)
    assert new.serial_number != old.serial_number
    assert decision["serial"] == format(new.serial_number, "x")
    verify_chain((out / "fullchain.pem").read_bytes(), pebble.roots(), "due.renew.test")
    assert key_matches_cert((out / "privkey.pem").read_bytes(), (out / "cert.pem").read_bytes())
    assert (out / "privkey.pem").read_bytes() != old_files["privkey.pem"]
    # The order really carried replaces: ask the CA for it.
    with account_client(pebble, tmp_path) as client:
        order = client.get_order(str(decision["order_url"]))
    assert order.replaces == (certificate_id(old) if found else None)
    assert order.profile == "default"
    # The state starts over for the new certificate; the next run finds nothing due.
    state = json.loads((out / STATE_FILE).read_text())
    assert state["failures"] == 0 and state["ari"] is None and state["last_renewal"]
    code, (again,), _ = renew(capsys, str(out))
    assert code == 0 and again["status"] == "not-due"


def test_pebble_files_serials_without_their_leading_zero(
    pebble: Pebble, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The Pebble defect of ``pebble_finds_for_replaces``, pinned: the certID of a known
    certificate with a 0x00 before its serial's minimal bytes (what RFC 9773 sends for a
    serial whose top bit is set) is "not found", which renew takes for a refusal of
    ``replaces``; the minimal form names the same certificate and is accepted."""
    out = issue(pebble, tmp_path, capsys, "zero.renew.test")
    old = cert_of(out)
    aki = certificate_id(old).split(".")[0]
    minimal = old.serial_number.to_bytes((old.serial_number.bit_length() + 7) // 8, "big")
    padded = bytes(1) + minimal
    solver = StandaloneSolver(port=pebble.http_port, address="127.0.0.1")
    with account_client(pebble, tmp_path) as client:
        with pytest.raises(ProblemError) as refused:
            client.issue(["zero.renew.test"], solver=solver,
                         replaces=f"{aki}.{b64url(padded)}")  # fmt: skip
        assert "could not find an order for the given certificate" in str(refused.value)
        assert refused_replaces(refused.value)
        accepted = client.issue(["zero.renew.test"], solver=solver,
                                replaces=f"{aki}.{b64url(minimal)}")  # fmt: skip
    assert accepted.certificate.serial_number != old.serial_number


def test_refused_replaces_is_retried_without_it(
    pebble: Pebble, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Pebble answers alreadyReplaced once a certificate has a replacement; renew recovers."""
    out = issue(pebble, tmp_path, capsys, "twice.renew.test")
    old = cert_of(out)
    with account_client(pebble, tmp_path) as client:
        solver = StandaloneSolver(port=pebble.http_port, address="127.0.0.1")
        client.issue(["twice.renew.test"], solver=solver, replaces=certificate_id(old))
    code, (decision,), err = renew(capsys, str(out), "--force")
    assert code == 3, err
    assert decision["status"] == "renewed"
    assert decision["replaces"] is None
    assert "refused replaces" in err and "alreadyReplaced" in err
    assert cert_of(out).serial_number != old.serial_number


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _set_challenge_port(out: Path, port: int, *, add_name: str | None = None) -> None:
    """Point the stored standalone server at ``port``; ``add_name`` adds a name this account
    never validated: Pebble reuses a valid authorization 1% of the time even with
    PEBBLE_AUTHZREUSE=0 (wfe.go: ``rand.Intn(100) > percent``), which would skip the
    validation a test means to fail."""
    config = json.loads((out / "renewal.json").read_text())
    config["challenge"]["options"]["port"] = str(port)
    if add_name is not None:
        config["names"].append(add_name)
    (out / "renewal.json").write_text(json.dumps(config))


def _end_backoff(out: Path) -> None:
    state = json.loads((out / STATE_FILE).read_text())
    state["next_attempt"] = (dt.datetime.now(UTC) - dt.timedelta(seconds=1)).isoformat()
    (out / STATE_FILE).write_text(json.dumps(state))


def test_failure_keeps_old_files_and_backs_off(
    pebble: Pebble, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = issue(pebble, tmp_path, capsys, "broken.renew.test")
    before = files(out)
    window_in_the_past(pebble, out)
    # Pebble's validator dials http_port; the solver listens elsewhere: connection refused.
    _set_challenge_port(out, 0, add_name="never.broken.renew.test")

    started = dt.datetime.now(UTC)
    code, (first,), err = renew(capsys, str(out))
    assert code == 1
    assert first["status"] == "failed"
    assert "validation failed for" in str(first["reason"])
    assert "never.broken.renew.test" in str(first["reason"])
    assert first["failures"] == 1
    wait = when(first["next_check"]) - started
    assert dt.timedelta(seconds=55) < wait < dt.timedelta(seconds=70)
    assert "renewal failed (attempt 1); the old files stay" in err
    assert files(out) == before

    code, (second,), err = renew(capsys, str(out))
    assert code == 0
    assert second["status"] == "backing-off"
    assert "validation failed" in str(second["reason"])
    assert "order" not in err  # not a single request to the CA

    _end_backoff(out)
    started = dt.datetime.now(UTC)
    code, (third,), _ = renew(capsys, str(out))
    assert code == 1 and third["failures"] == 2
    wait = when(third["next_check"]) - started
    assert dt.timedelta(minutes=9.9) < wait < dt.timedelta(minutes=10.1)
    assert files(out) == before

    _set_challenge_port(out, pebble.http_port)
    _end_backoff(out)
    code, (fourth,), err = renew(capsys, str(out))
    assert code == 3, err
    assert fourth["status"] == "renewed" and fourth["failures"] == 0
    assert files(out)["cert.pem"] != before["cert.pem"]
    assert json.loads((out / STATE_FILE).read_text())["failures"] == 0


def test_dry_run_changes_nothing_and_agrees_with_the_real_run(
    pebble: Pebble, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = issue(pebble, tmp_path, capsys, "dry.renew.test")
    window_in_the_past(pebble, out)
    before = tree_snapshot(out)
    listing = sorted(p.name for p in out.iterdir())
    code, (dry,), _ = renew(capsys, str(out), "--dry-run")
    assert code == 0
    assert dry["status"] == "due"
    assert tree_snapshot(out) == before
    assert sorted(p.name for p in out.iterdir()) == listing
    code, (real,), _ = renew(capsys, str(out))
    assert code == 3
    assert real["renew_at"] == dry["renew_at"]


def test_reuse_key(pebble: Pebble, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = issue(pebble, tmp_path, capsys, "samekey.renew.test")
    key = (out / "privkey.pem").read_bytes()
    serial = cert_of(out).serial_number
    code, _, err = renew(capsys, str(out), "--force", "--reuse-key")
    assert code == 3, err
    assert (out / "privkey.pem").read_bytes() == key
    assert cert_of(out).serial_number != serial
    assert key_matches_cert(key, (out / "cert.pem").read_bytes())
    code, _, err = renew(capsys, str(out), "--force")
    assert code == 3, err
    assert (out / "privkey.pem").read_bytes() != key


def test_all_under_renews_only_what_is_due(
    pebble: Pebble, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    calm = issue(pebble, tmp_path, capsys, "calm.all.renew.test", out="certs/calm")
    due = issue(pebble, tmp_path, capsys, "due.all.renew.test", out="certs/site/due")
    window_in_the_past(pebble, due)
    code, decisions, err = renew(capsys, "--all-under", str(tmp_path / "certs"))
    assert code == 3, err
    by_dir = {d["dir"]: d["status"] for d in decisions}
    assert by_dir == {str(calm): "not-due", str(due): "renewed"}


def test_renew_as_cron_runs_it(
    pebble: Pebble, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A real process, as cron starts it: one line per certificate on stdout."""
    out = issue(pebble, tmp_path, capsys, "cron.renew.test")
    result = run_cli_subprocess(["renew", "-q", str(out)])
    assert result.code == 0, result.err
    assert result.err == ""
    lines: Sequence[str] = result.out.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"{out}: not-due: ARI window ")


def test_a_certificate_without_an_aki_is_renewed_without_replaces(
    pebble: Pebble, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A cert.pem put there by hand (self-signed, no Authority Key Identifier, so no ARI
    certificate id) and due: a plain new order, not a crash."""
    from tests.unit.test_renewal_unit import make_cert, pem

    out = issue(pebble, tmp_path, capsys, "noaki.renew.test")
    start = dt.datetime.now(UTC) - dt.timedelta(days=80)
    stand_in = make_cert(days=85, start=start, aki=None, name="noaki.renew.test")
    target = (out / "cert.pem").resolve()
    target.write_bytes(pem(stand_in))
    code, (result,), err = renew(capsys, str(out))
    assert code == 3, err
    assert result["status"] == "renewed" and result["replaces"] is None
    assert cert_of(out).serial_number != stand_in.serial_number
    assert "crashed" not in err
