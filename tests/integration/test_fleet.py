"""Fleets against Pebble behind the counting FaultProxy: one client per CA account, the
inventory, the metrics file, the mass-revocation case, rate limits, the order budget (ARI-
directed renewals first) and the circuit breaker of a CA account that went dark.

Every certificate tree here is issued through the proxy, so every request a fleet run sends
is counted there (``proxy.counts()``), and a fault the proxy injects (``rateLimited`` with
``Retry-After`` on the Nth newOrder, 503s) reaches the run as a real CA's would. A dark CA
is a :class:`Blackhole`: a loopback port that accepts every connection, counts it, and never
says a word.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from cryptography import x509
from prometheus_client.parser import text_string_to_metric_families

from acmelite.config import load_config, save_config
from acmelite.csr import certificate_id
from acmelite.errors import CaUnavailable
from acmelite.fleet import Fleet
from acmelite.inventory import discover, inventory
from acmelite.managed import STATE_FILE, save_state
from acmelite.renewal import RenewalState, ari_unsupported
from acmelite.testing.blackhole import Blackhole
from acmelite.testing.pebble import Pebble
from acmelite.testing.proxy import Fault, FaultProxy, On
from tests.integration.test_renew import set_renewal_info, window_in_the_past
from tests.support import issue_argv, run_cli
from tests.unit.test_renewal_unit import make_cert, pem

UTC = dt.timezone.utc


@pytest.fixture(scope="module")
def proxy(pebble: Pebble) -> Iterator[FaultProxy]:
    with FaultProxy(pebble.directory_url, upstream_ca_bundle=pebble.ca_bundle) as running:
        yield running


@pytest.fixture
def counting(proxy: FaultProxy) -> Iterator[FaultProxy]:
    proxy.clear()
    proxy.reset_counts()
    try:
        yield proxy
    finally:
        proxy.clear()


def make_tree(
    pebble: Pebble,
    proxy: FaultProxy,
    root: Path,
    capsys: pytest.CaptureFixture[str],
    n: int,
    *,
    profiles: tuple[str, ...] = (),
) -> list[Path]:
    """``n`` certificate directories ``root/certs/team-i/svc`` issued through the proxy
    (``profiles[i]``, else ``default``)."""
    dirs = []
    for i in range(n):
        out = f"certs/team-{i}/svc"
        argv = issue_argv(
            pebble,
            root,
            f"svc{i}.fleet.test",
            out=out,
            directory_url=proxy.directory_url,
            ca_bundle=proxy.ca_bundle,
        )
        profile = profiles[i] if i < len(profiles) else "default"
        result = run_cli([*argv, "--profile", profile, "-q"], capsys)
        assert result.code == 0, result.err
        dirs.append(root / out)
    proxy.reset_counts()
    return dirs


def renew(
    capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, list[dict[str, object]], str]:
    result = run_cli(["renew", "--json", *args], capsys)
    document = json.loads(result.out)
    assert document["ok"] is (result.code != 1)
    return result.code, document["certificates"], result.err


def by_dir(results: list[dict[str, object]]) -> dict[str, dict[str, object]]:
    return {str(r["dir"]): r for r in results}


def expire_ari_cache(out: Path) -> None:
    """As if the CA's Retry-After had passed: the stored ARI answer is stale now."""
    state = json.loads((out / STATE_FILE).read_text())
    past = (dt.datetime.now(UTC) - dt.timedelta(minutes=1)).isoformat()
    state["ari"]["next_fetch"] = past
    (out / STATE_FILE).write_text(json.dumps(state))


def serial(out: Path) -> int:
    return x509.load_pem_x509_certificate((out / "cert.pem").read_bytes()).serial_number


def requests_by_kind(proxy: FaultProxy) -> Counter[str]:
    return Counter(kind for (_, kind) in proxy.counts().elements())


def new_orders(proxy: FaultProxy) -> Counter[int]:
    """newOrder answers by status: 201 placed, 429 refused (Pebble's own badNonce is 400,
    and the request is sent again: counting answers keeps the tests exact all the same)."""
    return Counter(e.status for e in proxy.requests if proxy.kind_of(e.path) == "newOrder")


def test_fleet_shares_one_client_caches_ari_and_renews_on_a_moved_window(
    pebble: Pebble, counting: FaultProxy, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dirs = make_tree(pebble, counting, tmp_path, capsys, 4)
    root = str(tmp_path / "certs")

    # First pass: one directory fetch for all four (one shared client), one ARI GET each.
    code, results, err = renew(capsys, "--all-under", root, "--concurrency", "4")
    assert code == 0, err
    assert [r["status"] for r in results] == ["not-due"] * 4
    assert sorted(str(r["dir"]) for r in results) == sorted(str(d) for d in dirs)
    kinds = requests_by_kind(counting)
    assert kinds == Counter({"directory": 1, "renewalInfo": 4}), kinds
    assert "4 not-due (5 request(s))" in err

    # Second pass: the stored answers are fresh: not a single request.
    counting.reset_counts()
    code, results, _ = renew(capsys, "--all-under", root, "--concurrency", "4")
    assert code == 0 and [r["status"] for r in results] == ["not-due"] * 4
    assert counting.requests == []

    # The CA moves two windows into the past (a mass revocation). Within Retry-After the
    # run does not see it (no request); once the stored answer is stale, it does, at once.
    old = {d: serial(d) for d in dirs}
    for d in dirs[:2]:
        window_in_the_past(pebble, d)
    code, results, _ = renew(capsys, "--all-under", root)
    assert code == 0 and counting.requests == []
    for d in dirs:
        expire_ari_cache(d)
    counting.reset_counts()
    code, results, err = renew(capsys, "--all-under", root, "--concurrency", "4")
    assert code == 3, err
    found = by_dir(results)
    for d in dirs[:2]:
        assert found[str(d)]["status"] == "renewed"
        assert "the CA asked for early renewal: window now" in str(found[str(d)]["reason"])
        assert serial(d) != old[d]
    for d in dirs[2:]:
        assert found[str(d)]["status"] == "not-due"
        assert serial(d) == old[d]
    kinds = requests_by_kind(counting)
    assert kinds["directory"] == 1, kinds  # still one client for the whole run
    assert new_orders(counting)[201] == 2 and kinds["renewalInfo"] == 4
    # One nonce pool: a newNonce only for each order that found the pool empty at its start.
    assert kinds["newNonce"] <= 2
    assert "2 renewed, 2 not-due" in err


def test_list_and_metrics_describe_the_tree_without_a_request(
    pebble: Pebble, counting: FaultProxy, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dirs = make_tree(pebble, counting, tmp_path, capsys, 3)
    broken = tmp_path / "certs" / "broken"
    broken.mkdir()
    (broken / "renewal.json").write_text("{not json")
    metrics = tmp_path / "acmelite.prom"
    code, _, _ = renew(
        capsys, "--all-under", str(tmp_path / "certs"), "--metrics-file", str(metrics)
    )
    assert code == 1  # the broken directory failed; the others were looked at all the same
    counting.reset_counts()

    result = run_cli(["list", "--json", "--all-under", str(tmp_path / "certs")], capsys)
    assert result.code == 1  # an unreadable directory
    assert counting.requests == []
    records = by_dir(json.loads(result.out))
    assert records[str(broken)]["status"] == "unreadable"
    assert "cannot read" in str(records[str(broken)]["error"])
    for d in dirs:
        rec = records[str(d)]
        cert = x509.load_pem_x509_certificate((d / "cert.pem").read_bytes())
        assert rec["serial"] == format(cert.serial_number, "x")
        assert rec["not_after"] == cert.not_valid_after_utc.isoformat()
        assert rec["not_before"] == cert.not_valid_before_utc.isoformat()
        assert rec["issuer"] and "Pebble" in str(rec["issuer"])
        assert rec["profile"] == "default" and rec["status"] == "not-due"
        window = rec["renewal_window"]
        assert isinstance(window, dict) and window["source"] == "ari"
        assert window["start"] <= str(rec["renew_at"]) <= window["end"]
        assert rec["failures"] == 0 and rec["deploy_pending"] is False
        assert rec["last_renewal"] is not None

    # The text exposition, read by Prometheus' own parser.
    families = {f.name: f for f in text_string_to_metric_families(metrics.read_text())}
    not_after = {
        s.labels["dir"]: s.value for s in families["acmelite_certificate_not_after_seconds"].samples
    }
    for d in dirs:
        rec = records[str(d)]
        assert not_after[str(d)] == dt.datetime.fromisoformat(str(rec["not_after"])).timestamp()
    sample = families["acmelite_certificate_renewal_window_start_seconds"].samples[0]
    assert set(sample.labels) == {"dir", "common_name", "issuer"}
    assert sample.labels["common_name"].endswith(".fleet.test")
    run = {s.labels["result"]: s.value for s in families["acmelite_run_certificates"].samples}
    assert run["not-due"] == 3 and run["failed"] == 1 and run["renewed"] == 0
    sent = {s.labels["endpoint"]: s.value for s in families["acmelite_acme_requests"].samples}
    assert sent["renewalInfo"] == 3 and sent["directory"] == 1 and sent["newOrder"] == 0
    status = {s.labels["status"]: s.value for s in families["acmelite_certificates"].samples}
    assert status["unreadable"] == 1 and status["not-due"] == 3
    assert families["acmelite_run_timestamp_seconds"].samples[0].value > 0
    assert {s.value for s in families["acmelite_renewal_consecutive_failures"].samples} == {0}

    # list --expiring-within: quiet and 0 when nothing expires that soon; the readable
    # tree only, so the broken directory goes.
    shutil.rmtree(broken)
    quiet = run_cli(
        ["list", "--all-under", str(tmp_path / "certs"), "--expiring-within", "30"], capsys
    )
    assert quiet.code == 0 and quiet.out == ""
    loud = run_cli(
        ["list", "--all-under", str(tmp_path / "certs"), "--expiring-within", "100"], capsys
    )
    assert loud.code == 1
    assert sorted(line.split(":")[0] for line in loud.out.splitlines()) == sorted(map(str, dirs))
    assert "3 of 3 certificate(s) expire within 100 days" in loud.err


def test_rate_limited_account_stops_new_orders_for_the_run(
    pebble: Pebble, counting: FaultProxy, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dirs = make_tree(pebble, counting, tmp_path, capsys, 4)
    old = {d: serial(d) for d in dirs}
    # The CA answers rateLimited, Retry-After one hour, to every 2nd new order.
    counting.inject(
        Fault.error(
            429, retry_after=3600, on=On(method="POST", kind="newOrder", nth=2, every=2, times=None)
        )
    )
    started = dt.datetime.now(UTC)
    code, results, err = renew(capsys, *map(str, dirs), "--force", "--concurrency", "1")
    statuses = Counter(str(r["status"]) for r in results)
    placed = new_orders(counting)
    # One refusal, and not one new order after it; what was placed was renewed.
    assert placed[429] == 1, placed
    assert statuses["renewed"] == placed[201] and statuses["failed"] == 0, statuses
    assert statuses["rate-limited"] == 4 - placed[201] >= 3
    assert code == (3 if statuses["renewed"] else 0), err  # a rate limit is not a failure
    assert "rate-limited the account" in err
    for r, d in zip(results, dirs, strict=True):
        state = json.loads((d / STATE_FILE).read_text())
        if r["status"] == "renewed":
            assert serial(d) != old[d]
            continue
        assert serial(d) == old[d]
        assert state["failures"] == 0  # not counted as a failure of each certificate
        until = dt.datetime.fromisoformat(state["next_attempt"])
        assert dt.timedelta(minutes=59) < until - started < dt.timedelta(minutes=61)
        assert "rate" in state["hold_reason"]
    # The next run (no --force) waits: no request at all for the held certificates.
    counting.clear()
    counting.reset_counts()
    held = [d for r, d in zip(results, dirs, strict=True) if r["status"] == "rate-limited"]
    code, again, _ = renew(capsys, *map(str, held))
    assert code == 0
    assert {r["status"] for r in again} == {"backing-off"}
    assert all("waiting until" in str(r["reason"]) for r in again)
    assert counting.requests == []


def test_concurrent_rate_limit_bounds_orders_in_flight(
    pebble: Pebble, counting: FaultProxy, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """From the 3rd new order on, the CA refuses: with 2 threads, at most one refusal per
    thread; every other due certificate waits without a request."""
    dirs = make_tree(pebble, counting, tmp_path, capsys, 6)
    counting.inject(
        Fault.error(429, retry_after=600, on=On(method="POST", kind="newOrder", nth=3, times=None))
    )
    code, results, err = renew(capsys, *map(str, dirs), "--force", "--concurrency", "2")
    statuses = Counter(str(r["status"]) for r in results)
    placed = new_orders(counting)
    assert 1 <= placed[429] <= 2, placed
    assert statuses["renewed"] == placed[201] <= 2, (statuses, placed)
    assert statuses["renewed"] + statuses["rate-limited"] == 6 and statuses["failed"] == 0
    assert code == (3 if statuses["renewed"] else 0), err


def test_max_orders_defers_the_rest_soonest_expiry_first(
    pebble: Pebble, counting: FaultProxy, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dirs = make_tree(pebble, counting, tmp_path, capsys, 3, profiles=("shortlived",))
    for d in dirs:
        window_in_the_past(pebble, d)
    # The 6-day certificate expires first; list it last, so the order is the fleet's.
    code, results, err = renew(capsys, *map(str, reversed(dirs)), "--max-orders", "1")
    assert code == 3, err
    found = by_dir(results)
    assert found[str(dirs[0])]["status"] == "renewed"  # the soonest expiry went first
    for d in dirs[1:]:
        assert found[str(d)]["status"] == "deferred"
        assert "limit of 1 new order" in str(found[str(d)]["reason"])
        assert json.loads((d / STATE_FILE).read_text())["next_attempt"] is None
    assert new_orders(counting)[201] == 1
    # The next run renews the deferred ones: nothing held them.
    code, results, _ = renew(capsys, *map(str, dirs[1:]))
    assert code == 3 and {r["status"] for r in results} == {"renewed"}


def test_a_turn_that_places_no_order_goes_to_the_next_most_urgent(
    pebble: Pebble, counting: FaultProxy, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--max-orders 2``, one thread, account A's two 6-day certificates the most urgent: the CA
    rate-limits A's first order, so A's second places none (held back) and the run's second
    order goes to account B's certificate (before, B's was deferred with an order unused)."""
    dirs = make_tree(pebble, counting, tmp_path, capsys, 2, profiles=("shortlived",) * 2)
    other = tmp_path / "certs" / "team-2" / "svc"
    (tmp_path / "b").mkdir()
    argv = issue_argv(
        pebble, tmp_path / "b", "svc2.fleet.test", out=str(other),
        directory_url=counting.directory_url, ca_bundle=counting.ca_bundle,
    )  # fmt: skip
    assert run_cli([*argv, "-q"], capsys).code == 0
    dirs.append(other)
    for d in dirs:
        window_in_the_past(pebble, d)
    counting.reset_counts()
    counting.inject(Fault.error(429, retry_after=600, on=On(method="POST", kind="newOrder")))
    code, results, err = renew(
        capsys, "--all-under", str(tmp_path / "certs"), "--max-orders", "2", "--concurrency", "1"
    )
    assert code == 3, err
    status = {d: by_dir(results)[str(d)]["status"] for d in dirs}
    assert status == {dirs[0]: "rate-limited", dirs[1]: "rate-limited", dirs[2]: "renewed"}, err
    placed = new_orders(counting)
    assert placed[429] == 1 and placed[201] == 1, placed


def test_dry_run_over_a_fleet_orders_nothing(
    pebble: Pebble, counting: FaultProxy, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dirs = make_tree(pebble, counting, tmp_path, capsys, 2)
    now = dt.datetime.now(UTC)
    set_renewal_info(pebble, dirs[0], now - dt.timedelta(hours=3), now - dt.timedelta(hours=2))
    before = {d: sorted(p.name for p in d.iterdir()) for d in dirs}
    code, results, _ = renew(capsys, "--all-under", str(tmp_path / "certs"), "--dry-run")
    assert code == 0
    assert by_dir(results)[str(dirs[0])]["status"] == "due"
    assert by_dir(results)[str(dirs[1])]["status"] == "not-due"
    assert requests_by_kind(counting)["newOrder"] == 0
    assert {d: sorted(p.name for p in d.iterdir()) for d in dirs} == before


def test_library_fleet_and_inventory(
    pebble: Pebble, counting: FaultProxy, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dirs = make_tree(pebble, counting, tmp_path, capsys, 2)
    found = discover(roots=[tmp_path / "certs"])
    assert sorted(found) == sorted(dirs)
    window_in_the_past(pebble, dirs[1])
    report = Fleet(found, concurrency=2).renew()
    assert report.counts()["renewed"] == 1 and report.counts()["not-due"] == 1
    assert report.orders == 1 and report.requests["newOrder"] >= 1  # + Pebble's badNonce
    assert report.requests["directory"] == 1
    records = {r.path: r for r in inventory(found)}
    assert records[dirs[1]].last_renewal is not None
    assert records[dirs[1]].serial == format(serial(dirs[1]), "x")


def test_the_python_example_of_renewal_md(pebble: Pebble, tmp_path: Path) -> None:
    text = (Path(__file__).resolve().parents[2] / "docs" / "renewal.md").read_text()
    (example,) = [b for b in re.findall(r"```python\n(.*?)```", text, flags=re.S) if "Fleet(" in b]
    env = {
        **os.environ,
        "ACME_DIRECTORY": pebble.directory_url,
        "ACME_CA_BUNDLE": pebble.ca_bundle,
        "HTTP_PORT": str(pebble.http_port),
        "ROOT": str(tmp_path),
    }
    proc = subprocess.run([sys.executable, "-c", example], env=env, capture_output=True,
                          text=True, timeout=120, check=False)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("shop not-due ARI window") and lines[1].startswith("web not-due")
    assert lines[2] == "2 not due; 3 requests"  # one directory fetch, two ARI answers
    assert lines[3] == "2 certificates, 0 expiring within 14 days"
    families = {
        f.name for f in text_string_to_metric_families((tmp_path / "acmelite.prom").read_text())
    }
    assert "acmelite_certificate_not_after_seconds" in families


# -- ARI-directed renewals first ---------------------------------------------------------------


def test_max_orders_go_to_ari_directed_renewals_before_sooner_expiries(
    pebble: Pebble, counting: FaultProxy, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two certificates are due because Pebble moved their ARI windows into the past; three
    are due by the lifetime rule (their stored answer: no ARI) and expire within a week,
    much sooner. ``--max-orders 2``: the ARI-directed ones get the orders (Let's Encrypt
    exempts them from its limits); the others are deferred, although they expire first."""
    dirs = make_tree(pebble, counting, tmp_path, capsys, 5)
    directed, by_lifetime = dirs[:2], dirs[2:]
    for d in directed:
        window_in_the_past(pebble, d)
    now = dt.datetime.now(UTC)
    for i, d in enumerate(by_lifetime):
        (name,) = load_config(d).names
        cert = make_cert(days=90, start=now - dt.timedelta(days=85 + i), serial=0x7000 + i,
                         name=name)  # fmt: skip
        (d / "cert.pem").write_bytes(pem(cert))
        save_state(d, RenewalState(ari=ari_unsupported(certificate_id(cert), now=now)))
    old = {d: serial(d) for d in dirs}

    code, results, err = renew(capsys, "--all-under", str(tmp_path / "certs"), "--max-orders", "2")
    assert code == 3, err
    found = by_dir(results)
    for d in directed:
        assert found[str(d)]["status"] == "renewed", found[str(d)]
        assert "ARI window" in str(found[str(d)]["reason"])
        assert serial(d) != old[d]
    for d in by_lifetime:
        assert found[str(d)]["status"] == "deferred", found[str(d)]
        assert "limit of 2 new order" in str(found[str(d)]["reason"])
        assert serial(d) == old[d]
        assert json.loads((d / STATE_FILE).read_text())["next_attempt"] is None
    placed = new_orders(counting)
    assert placed[201] == 2, placed
    # The deferred ones were due by the lifetime rule: a dry run says so, sending nothing to
    # the CA for them (their stored answer is fresh).
    counting.reset_counts()
    code, again, _ = renew(capsys, "--dry-run", *map(str, by_lifetime))
    assert code == 0 and {r["status"] for r in again} == {"due"}
    assert all("lifetime" in str(r["reason"]) for r in again)
    assert counting.requests == []


# -- a CA account that went dark: the circuit breaker -----------------------------------------

#: renewal.json's timeout of each dark directory: what one request to a blackhole costs.
DARK_TIMEOUT = 1.0


@pytest.fixture
def blackhole() -> Iterator[Blackhole]:
    with Blackhole() as hole:
        yield hole


def dark_tree(
    template: Path, root: Path, server: str, n: int, *, ca_bundle: str, ari_stored: bool,
    timeout: float = DARK_TIMEOUT,
) -> list[Path]:  # fmt: skip
    """``n`` directories ``root/dark-i`` whose renewal.json names ``server`` (with an account
    key of their own, and ``timeout``; ``template``'s otherwise), each holding
    a certificate due by the lifetime rule (5 of its 90 days left). ``ari_stored``: a fresh
    stored answer says the CA has no ARI, so a run sends nothing before the order."""
    base = load_config(template)
    now = dt.datetime.now(UTC)
    dirs = []
    for i in range(n):
        out = root / f"dark-{i:02d}"
        out.mkdir(mode=0o700)
        name = f"dark{i}.fleet.test"
        cert = make_cert(days=90, start=now - dt.timedelta(days=85), serial=0x5000 + i,
                         name=name)  # fmt: skip
        (out / "cert.pem").write_bytes(pem(cert))
        config = replace(base, names=(name,), server=server, ca_bundle=ca_bundle,
                         account_key=str(root / "dark.key"), timeout=timeout)  # fmt: skip
        save_config(out, config)
        if ari_stored:
            save_state(out, RenewalState(ari=ari_unsupported(certificate_id(cert), now=now)))
        dirs.append(out)
    return dirs


def due_beside_dark(
    pebble: Pebble, counting: FaultProxy, blackhole: Blackhole, tmp_path: Path,
    capsys: pytest.CaptureFixture[str], *, ari_stored: bool,
) -> tuple[list[Path], Path, list[Path]]:  # fmt: skip
    """Three due directories at Pebble and ten at ``blackhole`` under ``tmp_path/certs``:
    (Pebble's, the root, the blackholed ones)."""
    good = make_tree(pebble, counting, tmp_path, capsys, 3)
    for d in good:
        window_in_the_past(pebble, d)
    root = tmp_path / "certs"
    dark = dark_tree(good[0], root, blackhole.url, 10, ca_bundle=pebble.ca_bundle,
                     ari_stored=ari_stored)  # fmt: skip
    return good, root, dark


def test_a_dark_ca_costs_a_run_three_timeouts_not_one_per_directory(
    pebble: Pebble,
    counting: FaultProxy,
    blackhole: Blackhole,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Ten due directories at a blackholed CA, three at Pebble. The ARI requests of the
    planning step open the breaker after three timeouts; the seven others decide by the
    lifetime rule without a request; all ten are held back (``ca-unavailable``, a next
    attempt, no failure counted) and Pebble's three are renewed."""
    good, root, dark = due_beside_dark(pebble, counting, blackhole, tmp_path, capsys,
                                       ari_stored=False)  # fmt: skip
    metrics = tmp_path / "acmelite.prom"
    started = dt.datetime.now(UTC)
    code, results, err = renew(capsys, "--all-under", str(root), "--concurrency", "1",
                               "--metrics-file", str(metrics))  # fmt: skip

    assert blackhole.connections == 3  # not 10: one timeout per request, three requests
    found = by_dir(results)
    for d in good:
        assert found[str(d)]["status"] == "renewed", found[str(d)]
    ari_errors = []
    for d in dark:
        result = found[str(d)]
        assert result["status"] == "ca-unavailable", result
        reason = str(result["reason"])
        assert reason.startswith(f"not tried: {blackhole.url} failed 3 requests in a row"), reason
        assert "\n" not in reason and result["failures"] == 0
        state = json.loads((d / STATE_FILE).read_text())
        assert state["failures"] == 0 and state["last_error"] is None
        until = dt.datetime.fromisoformat(state["next_attempt"])
        assert dt.timedelta(minutes=9) < until - started < dt.timedelta(minutes=11)
        assert state["hold_reason"].startswith("not tried:")
        ari_errors.append(state["ari"]["error"])
    # Three ARI requests waited out their timeout; seven were never sent.
    assert sum("not tried" not in e for e in ari_errors) == 3, ari_errors
    assert sum("not tried" in e for e in ari_errors) == 7, ari_errors
    assert code == 1, err  # due certificates left untried: the run failed at the CA
    assert "3 renewed, 10 ca-unavailable" in err
    assert f"{blackhole.url} failed 3 requests in a row" in err  # the warning, once
    assert err.count("failed 3 requests in a row (last:") == 1
    families = {f.name: f for f in text_string_to_metric_families(metrics.read_text())}
    run = {s.labels["result"]: s.value for s in families["acmelite_run_certificates"].samples}
    assert run["ca-unavailable"] == 10 and run["failed"] == 0 and run["renewed"] == 3
    failures = families["acmelite_renewal_consecutive_failures"].samples
    assert {s.value for s in failures} == {0}

    # The next run leaves them alone until the next attempt: no connection at all.
    code, again, _ = renew(capsys, *map(str, dark))
    assert code == 0 and {r["status"] for r in again} == {"backing-off"}
    assert all("waiting until" in str(r["reason"]) for r in again)
    assert blackhole.connections == 3


@pytest.mark.parametrize("concurrency", [1, 4])
def test_the_breaker_fails_the_first_orders_and_holds_back_the_rest(
    pebble: Pebble,
    counting: FaultProxy,
    blackhole: Blackhole,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    concurrency: int,
) -> None:
    """Nothing to ask before the order (the stored answers are fresh): the orders at the
    dark CA each wait out a timeout until three have failed; those three are failures of
    their certificates, the others are held back without a request. With several threads,
    a thread that spent its certificate's whole timeout waiting behind a request that
    failed is held back too: it sent nothing."""
    good, root, dark = due_beside_dark(pebble, counting, blackhole, tmp_path, capsys,
                                       ari_stored=True)  # fmt: skip
    report = Fleet(discover(roots=[root]), concurrency=concurrency).renew()

    found = {r.path: r for r in report.results}
    assert all(found[d].status == "renewed" for d in good), [found[d] for d in good]
    failed = [found[d] for d in dark if found[d].status == "failed"]
    held = [found[d] for d in dark if found[d].status == "ca-unavailable"]
    assert len(failed) + len(held) == 10, [r.status for r in report.results]
    # Each failure is one request that waited out its timeout; nothing else reached the CA.
    assert len(failed) == blackhole.connections
    if concurrency == 1:
        assert blackhole.connections == 3
    else:  # the requests in flight when the third failed may fail too
        assert 3 <= blackhole.connections <= 3 + concurrency - 1
    for result in failed:
        assert result.failures == 1 and not isinstance(result.error, CaUnavailable)
        assert json.loads((result.path / STATE_FILE).read_text())["failures"] == 1
    for result in held:
        assert result.failures == 0 and result.next_check is not None
        assert result.reason.startswith("not tried: "), result.reason
        state = json.loads((result.path / STATE_FILE).read_text())
        assert state["failures"] == 0 and state["next_attempt"] is not None
    assert report.unavailable.keys() == {(blackhole.url, str(root / "dark.key"))}
    assert report.failed and report.counts()["ca-unavailable"] == len(held)


@pytest.mark.parametrize(
    ("fault", "per_request"),
    [
        (Fault.error(503, on=On(times=None)), 1),  # 503 without Retry-After: not waited
        (Fault.reset(on=On(times=None)), 3),  # a GET is sent 3 times before it fails
    ],
    ids=["503", "reset"],
)
def test_a_failing_ca_opens_the_breaker_and_others_carry_on(
    pebble: Pebble,
    counting: FaultProxy,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    fault: Fault,
    per_request: int,
) -> None:
    """Another route to Pebble answers every request with 503, or resets every connection:
    three requests, then nothing more to that account; the account through the healthy
    proxy renews as usual."""
    (good,) = make_tree(pebble, counting, tmp_path, capsys, 1)
    window_in_the_past(pebble, good)
    root = tmp_path / "certs"
    with FaultProxy(pebble.directory_url, upstream_ca_bundle=pebble.ca_bundle) as failing:
        failing.inject(fault)
        # Time enough for every retry of a GET (the transport pauses 0.5 s, then 1 s).
        dark = dark_tree(good, root, failing.directory_url, 5, ca_bundle=failing.ca_bundle,
                         ari_stored=True, timeout=30)  # fmt: skip
        report = Fleet([good, *dark], concurrency=1).renew()
        seen, failing_url = list(failing.requests), failing.directory_url
    statuses = [r.status for r in report.results]
    assert statuses == ["renewed", "failed", "failed", "failed", *["ca-unavailable"] * 2]
    assert len(seen) == 3 * per_request, seen
    assert {e.kind for e in seen} == {"directory"}
    assert all(r.failures == 1 for r in report.results[1:4])
    assert all(r.failures == 0 and r.next_check for r in report.results[4:])
    assert report.unavailable.keys() == {(failing_url, str(root / "dark.key"))}


def test_list_through_the_index_follows_renewals(
    pebble: Pebble,
    counting: FaultProxy,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``list`` keeps ROOT/.acmelite-inventory.json: a warm list parses only what changed,
    and what it prints is what a list that reads every file prints, before and after a
    real renewal (new key, certificate and state through the .live switch)."""
    from acmelite import index as index_module
    from acmelite import inventory as inventory_module
    from acmelite.index import INDEX_FILE

    monkeypatch.setattr(index_module, "RACY_SECONDS", 0.0)  # the tree is seconds old
    root = tmp_path / "certs"
    dirs = make_tree(pebble, counting, tmp_path, capsys, 3)
    parsed: list[str] = []
    real = inventory_module.record

    def counted(path: object, **kw: object) -> object:
        parsed.append(str(path))
        return real(path, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(inventory_module, "record", counted)

    def listed() -> list[object]:
        result = run_cli(["list", "--json", "--all-under", str(root)], capsys)
        assert result.code == 0, result.err
        return json.loads(result.out)  # type: ignore[no-any-return]

    def read_all() -> list[object]:
        return [r.to_json() for r in inventory(discover(roots=[root]))]

    first = listed()
    assert sorted(parsed) == sorted(map(str, dirs)) and (root / INDEX_FILE).is_file()
    parsed.clear()
    assert listed() == first and parsed == []

    old = serial(dirs[1])
    code, results, _ = renew(capsys, "--force", str(dirs[1]))
    assert code == 3 and results[0]["status"] == "renewed"
    parsed.clear()
    counting.reset_counts()
    after = listed()
    assert parsed == [str(dirs[1])]  # only the renewed directory is read again
    assert counting.requests == []
    assert after == read_all()
    renewed = by_dir(after)[str(dirs[1])]  # type: ignore[arg-type]
    assert renewed["serial"] == format(serial(dirs[1]), "x") != format(old, "x")
