"""Fleets without a CA: jitter, early-renewal notice, holds, the inventory, the metrics text,
the CLI's checks before the first request, the random delay and the order of urgency.

Certificates are made here; the CA, where one is named, is a closed port, so any request a
run tried would fail, and the checks show that none was needed.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import socket
from pathlib import Path

import pytest
from cryptography import x509
from prometheus_client.parser import text_string_to_metric_families

from acmelite import metrics
from acmelite.client_pool import endpoint_name
from acmelite.config import CertificateConfig, save_config
from acmelite.csr import certificate_id
from acmelite.fleet import Fleet, FleetReport, _urgency
from acmelite.inventory import discover, inventory, record
from acmelite.managed import RenewalResult, load_state, save_state
from acmelite.models import Directory, RenewalInfo
from acmelite.renewal import (
    AriRecord,
    RenewalState,
    ari_answered,
    ari_unsupported,
    decide,
    lifetime_window,
)
from acmelite.transport import Transport, deadline_scope
from tests.support import run_cli
from tests.unit.test_renewal_unit import make_cert, pem

UTC = dt.timezone.utc
NOW = dt.datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
def closed_server() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"https://127.0.0.1:{port}/dir"


def cert_dir(
    root: Path,
    name: str,
    server: str,
    cert: x509.Certificate,
    state: RenewalState | None = None,
    *,
    dns: str = "",
) -> Path:
    out = root / name
    out.mkdir(parents=True)
    (out / "cert.pem").write_bytes(pem(cert))
    config = CertificateConfig(
        server=server, names=(dns or f"{name}.example.test",), account_key=str(root / "a.key")
    )
    save_config(out, config)
    if state is not None:
        save_state(out, state)
    return out


def fresh_ari(cert: x509.Certificate) -> RenewalState:
    """A state whose stored answer says: this CA has no ARI, ask again tomorrow."""
    return RenewalState(ari=ari_unsupported(certificate_id(cert), now=NOW))


# -- jitter and the early-renewal notice ---------------------------------------------------------


def test_lifetime_moments_spread_a_fleet_with_one_expiry_second() -> None:
    """ZeroSSL gives a day's certificates one expiry second: their moments still spread."""
    certs = [make_cert(days=90, start=NOW, serial=1000 + i) for i in range(200)]
    window = lifetime_window(certs[0])
    moments = [decide(c, now=NOW).renew_at for c in certs]
    assert all(m is not None and window.start <= m <= window.end for m in moments)
    assert len(set(moments)) == 200
    span = (window.end - window.start).total_seconds()
    offsets = sorted((m - window.start).total_seconds() / span for m in moments if m)
    assert offsets[0] < 0.1 and offsets[-1] > 0.9 and 0.3 < offsets[100] < 0.7
    # Stable per certificate: every run agrees.
    assert [decide(c, now=NOW).renew_at for c in certs[:5]] == moments[:5]
    assert window.end - window.start == dt.timedelta(days=7.5)


def test_a_window_moved_earlier_is_an_early_renewal_request() -> None:
    cert = make_cert(days=90, start=NOW - dt.timedelta(days=10))
    usual = RenewalInfo(start=NOW + dt.timedelta(days=49), end=NOW + dt.timedelta(days=51))
    first = ari_answered("x.y", usual, retry_after=21600, previous=None, now=NOW)
    assert first.moved_from is None
    assert not decide(cert, now=NOW, ari=first).due
    moved = RenewalInfo(
        start=NOW - dt.timedelta(hours=2),
        end=NOW - dt.timedelta(hours=1),
        explanation_url="https://ca.test/incident",
    )
    later = NOW + dt.timedelta(hours=6)
    second = ari_answered("x.y", moved, retry_after=3600, previous=first, now=later)
    assert second.moved_from == usual
    decision = decide(cert, now=later, ari=second)
    assert decision.due
    assert decision.reason.startswith("the CA asked for early renewal: window now")
    assert "(was " in decision.reason and "see https://ca.test/incident" in decision.reason
    # The same window again keeps the notice; the record survives the state file.
    third = ari_answered("x.y", moved, retry_after=3600, previous=second, now=later)
    assert third.moved_from == usual and third.renew_at == second.renew_at
    assert AriRecord.from_json(third.to_json(), source="t") == third
    # A window moved later is no early renewal.
    pushed = RenewalInfo(
        start=usual.start + dt.timedelta(days=3), end=usual.end + dt.timedelta(days=3)
    )
    assert ari_answered("x.y", pushed, retry_after=None, previous=first, now=NOW).moved_from is None


def test_a_hold_is_not_a_failure_and_survives_the_state_file() -> None:
    failed = RenewalState().failed("validation failed", now=NOW)
    held = failed.held(NOW + dt.timedelta(hours=3), "rate limited by the CA")
    assert held.failures == 1 and held.next_attempt == NOW + dt.timedelta(hours=3)
    assert RenewalState.from_json(held.to_json(), source="t") == held
    # A hold never shortens a back-off that ends later.
    assert failed.held(NOW, "x").next_attempt == failed.next_attempt
    assert held.failed("again", now=NOW).hold_reason == ""


# -- the inventory and the metrics file ---------------------------------------------------------


def test_inventory_from_files_alone(tmp_path: Path, closed_server: str) -> None:
    soon = make_cert(days=6, start=NOW - dt.timedelta(days=5), name="soon.example.test")
    calm = make_cert(days=90, start=NOW, serial=0xABC)
    root = tmp_path / "tree"
    a = cert_dir(root, "a", closed_server, soon)
    b = cert_dir(root / "deep" / "er", "b", closed_server, calm, fresh_ari(calm))
    failing = RenewalState(deploy_pending=True).failed("validation failed for c", now=NOW)
    c = cert_dir(root, "c", closed_server, calm, failing)
    hidden = root / ".versions" / "x"
    hidden.mkdir(parents=True)
    (hidden / "renewal.json").write_text("{}")
    (root / "junk").mkdir()
    (root / "junk" / "renewal.json").write_text("[]")
    found = discover(roots=[root])
    assert found == [a, c, b, root / "junk"]  # sorted walk; hidden directories skipped

    records = {r.path: r for r in inventory(found, now=NOW)}
    assert records[a].status == "due" and records[a].window_source == "lifetime"
    assert records[a].expires_within(2, now=NOW) and not records[b].expires_within(2, now=NOW)
    assert (
        records[a].common_name == "soon.example.test"
        and records[a].issuer == records[a].common_name
    )
    assert records[b].status == "not-due" and records[b].serial == "abc"
    assert records[b].window == lifetime_window(calm)
    assert records[b].not_before == calm.not_valid_before_utc
    assert records[c].status == "backing-off" and records[c].failures == 1
    assert records[c].deploy_pending and records[c].last_error == "validation failed for c"
    assert records[root / "junk"].status == "unreadable"
    assert "not a JSON object" in records[root / "junk"].error
    as_json = records[c].to_json()
    assert as_json["next_attempt"] == (NOW + dt.timedelta(minutes=1)).isoformat()
    assert json.loads(json.dumps(as_json))["renewal_window"]["source"] == "lifetime"


def test_metrics_text_parses_and_escapes_labels(tmp_path: Path, closed_server: str) -> None:
    calm = make_cert(days=90, start=NOW)
    odd = cert_dir(
        tmp_path, 'we"ird\\dir\nx', closed_server, calm, fresh_ari(calm), dns="odd.example.test"
    )
    records = [record(odd, now=NOW), record(tmp_path / "missing", now=NOW)]
    report = FleetReport(
        results=(RenewalResult(path=odd, status="not-due", reason=""),),
        started=NOW,
        finished=NOW + dt.timedelta(seconds=2),
        requests={"renewalInfo": 1},
    )
    text = metrics.render(records, report=report)
    families = {f.name: f for f in text_string_to_metric_families(text)}
    (sample,) = families["acmelite_certificate_not_after_seconds"].samples
    assert sample.labels == {
        "dir": str(odd),
        "common_name": "www.example.test",
        "issuer": "www.example.test",
    }
    assert sample.value == calm.not_valid_after_utc.timestamp()
    (start,) = families["acmelite_certificate_renewal_window_start_seconds"].samples
    assert start.value == lifetime_window(calm).start.timestamp()
    assert families["acmelite_run_duration_seconds"].samples[0].value == 2
    run = {s.labels["result"]: s.value for s in families["acmelite_run_certificates"].samples}
    assert run["not-due"] == 1 and run["renewed"] == 0 and run["rate-limited"] == 0
    sent = {s.labels["endpoint"]: s.value for s in families["acmelite_acme_requests"].samples}
    assert sent == {
        "directory": 0,
        "newNonce": 0,
        "newAccount": 0,
        "newOrder": 0,
        "renewalInfo": 1,
        "order": 0,
    }
    assert families["acmelite_acme_requests"].type == "counter"
    by_status = {s.labels["status"]: s.value for s in families["acmelite_certificates"].samples}
    assert by_status["unreadable"] == 1 and by_status["not-due"] == 1
    # No last success known: no sample rather than a made-up 0.
    assert "acmelite_renewal_last_success_timestamp_seconds" not in families
    path = metrics.write(tmp_path / "a.prom", records, report=report)
    assert path.read_text() == text and oct(path.stat().st_mode & 0o777) == "0o644"


def test_endpoint_names() -> None:
    directory = Directory.from_json(
        {
            "newNonce": "https://ca/n",
            "newAccount": "https://ca/a",
            "newOrder": "https://ca/o",
            "renewalInfo": "https://ca/ari/",
        }
    )
    name = lambda m, u: endpoint_name(m, u, "https://ca/dir", directory)  # noqa: E731
    assert name("GET", "https://ca/dir") == "directory"
    assert name("HEAD", "https://ca/n") == "newNonce"
    assert name("POST", "https://ca/o") == "newOrder"
    assert name("GET", "https://ca/ari/abc.def") == "renewalInfo"
    assert name("POST", "https://ca/order/17") == "order"
    assert endpoint_name("GET", "https://ca/x", "https://ca/dir", None) == "other"


def test_deadline_scope_is_per_thread_and_nests() -> None:
    transport = Transport()
    assert transport._deadline(None) is None
    with deadline_scope(100):
        outer = transport._deadline(None)
        assert outer is not None
        with deadline_scope(1000):
            assert transport._deadline(None) == outer  # the earlier end stays
        with deadline_scope(1):
            inner = transport._deadline(None)
            assert inner is not None and inner < outer
        seen: list[float | None] = []
        import threading

        thread = threading.Thread(target=lambda: seen.append(transport._deadline(None)))
        thread.start()
        thread.join()
        assert seen == [None]  # another thread is not bound by this scope
    assert transport._deadline(None) is None
    transport.close()


# -- the fleet run without requests ------------------------------------------------------------


def test_nothing_due_with_fresh_answers_sends_nothing_and_never_waits(
    tmp_path: Path, closed_server: str
) -> None:
    calm = make_cert(days=90, start=NOW)
    dirs = [cert_dir(tmp_path, f"d{i}", closed_server, calm, fresh_ari(calm)) for i in range(5)]
    slept: list[float] = []
    report = Fleet(dirs, random_delay=30, sleep=slept.append).renew()
    assert [r.status for r in report.results] == ["not-due"] * 5
    assert slept == [] and report.requests == {} and report.orders == 0
    # Nothing changed, so nothing was written either.
    assert all(load_state(d) == fresh_ari(calm) for d in dirs)


def test_random_delay_is_slept_once_before_the_first_request(
    tmp_path: Path, closed_server: str
) -> None:
    calm = make_cert(days=90, start=NOW)
    dirs = [cert_dir(tmp_path, f"d{i}", closed_server, calm) for i in range(3)]  # no ARI stored
    slept: list[float] = []
    report = Fleet(dirs, random_delay=30, sleep=slept.append, rng=random.Random(7)).renew()  # noqa: S311
    assert len(slept) == 1 and 0 <= slept[0] <= 30
    # The CA is unreachable: the lifetime rule decides, nothing fails.
    assert [r.status for r in report.results] == ["not-due"] * 3
    assert all("ARI failed" in r.reason for r in report.results)


def test_ari_directed_renewals_go_first_then_the_soonest_expiry() -> None:
    window = RenewalInfo(start=NOW, end=NOW + dt.timedelta(days=1))
    later, sooner = NOW + dt.timedelta(days=20), NOW + dt.timedelta(days=2)
    results = [
        RenewalResult(path=Path("/lifetime-sooner"), status="due", reason="", not_after=sooner),
        RenewalResult(
            path=Path("/ari-later"), status="due", reason="", not_after=later, window=window
        ),
        RenewalResult(path=Path("/no-cert"), status="due", reason=""),
        RenewalResult(
            path=Path("/ari-sooner"), status="due", reason="", not_after=sooner, window=window
        ),
    ]
    ordered = [str(r.path) for r in sorted(results, key=_urgency)]
    assert ordered == ["/ari-sooner", "/ari-later", "/no-cert", "/lifetime-sooner"]


def test_fleet_refuses_bad_settings() -> None:
    for bad in ({"concurrency": 0}, {"max_orders": -1}, {"random_delay": -1.0}):
        with pytest.raises(ValueError, match="must be"):
            Fleet([], **bad)  # type: ignore[arg-type]


# -- the command line ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--concurrency", "0"], "--concurrency: must be 1 or more, not 0"),
        (["--concurrency", "two"], "--concurrency: 'two' is not a whole number"),
        (["--max-orders", "-1"], "--max-orders: must be 0 or more, not -1"),
        (["--random-delay", "-5"], "--random-delay: must be 0 or more seconds"),
        (["--random-delay", "nan"], "--random-delay: must be 0 or more seconds"),
    ],
)
def test_renew_usage_errors(
    argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    result = run_cli(["renew", str(tmp_path), *argv], capsys)
    assert result.code == 2
    assert message in result.err


def test_metrics_file_checked_before_the_first_request(
    tmp_path: Path, closed_server: str, capsys: pytest.CaptureFixture[str]
) -> None:
    out = cert_dir(tmp_path, "d", closed_server, make_cert(days=90, start=NOW))
    for command in ("renew", "list"):
        target = tmp_path / "no" / "such" / "m.prom"
        result = run_cli([command, str(out), "--metrics-file", str(target)], capsys)
        assert result.code == 1
        assert result.err.strip().splitlines() == [
            f"acmelite: error: --metrics-file {target}: the directory {target.parent} does"
            " not exist"
        ]
        result = run_cli([command, str(out), "--metrics-file", str(tmp_path)], capsys)
        assert result.code == 1 and "is a directory" in result.err
    assert load_state(out) == RenewalState()  # renew never started
    result = run_cli(["renew", "--all-under", str(tmp_path / "nowhere")], capsys)
    assert result.code == 1 and "--all-under" in result.err and "no such directory" in result.err


def test_list_text_json_and_expiring_within(
    tmp_path: Path, closed_server: str, capsys: pytest.CaptureFixture[str]
) -> None:
    soon = cert_dir(
        tmp_path, "soon", closed_server, make_cert(days=6, start=NOW - dt.timedelta(days=5))
    )
    calm_cert = make_cert(days=90, start=NOW)
    calm = cert_dir(tmp_path, "calm", closed_server, calm_cert, fresh_ari(calm_cert))
    result = run_cli(["list", "--all-under", str(tmp_path)], capsys)
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert lines[0].startswith(f"{calm}: not-due: calm.example.test; expires ")
    assert "(in 90 days)" in lines[0] and "lifetime window" in lines[0]
    assert lines[1].startswith(f"{soon}: due: soon.example.test; expires ")
    as_json = run_cli(["list", "--json", str(soon)], capsys)
    (only,) = json.loads(as_json.out)
    assert only["dir"] == str(soon) and only["status"] == "due"
    expiring = run_cli(["list", "--all-under", str(tmp_path), "--expiring-within", "7"], capsys)
    assert expiring.code == 1
    assert [line.split(":")[0] for line in expiring.out.splitlines()] == [str(soon)]
    assert "1 of 2 certificate(s) expire within 7 days" in expiring.err
    fine = run_cli(["list", str(calm), "--expiring-within", "7", "-q"], capsys)
    assert (fine.code, fine.out, fine.err) == (0, "", "")
    nothing = run_cli(["list"], capsys)
    assert nothing.code == 2 and "nothing to list" in nothing.err  # a usage error
    bad = run_cli(["list", str(calm), "--expiring-within", "-1"], capsys)
    assert bad.code == 2


def test_list_escapes_control_characters(
    tmp_path: Path, closed_server: str, capsys: pytest.CaptureFixture[str]
) -> None:
    cert = make_cert(days=90, start=NOW)
    out = cert_dir(
        tmp_path,
        "d",
        closed_server,
        cert,
        RenewalState().failed("CA said:\x1b[31m boom\nfake line", now=NOW),
    )
    result = run_cli(["list", str(out)], capsys)
    assert "\x1b" not in result.out and len(result.out.splitlines()) == 1
    assert "\\x1b[31m boom\\nfake line" in result.out
