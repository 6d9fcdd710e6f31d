"""One client, many orders at once: shared solvers and the connection pool (issue 7)."""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path

import pytest

from acmelite import AccountKey, AcmeClient
from acmelite.challenges import ChallengeTask
from acmelite.models import Challenge, Identifier
from acmelite.solvers.http01 import StandaloneSolver, WebrootSolver
from acmelite.testing import free_port
from acmelite.transport import Transport


def _task(token: str) -> ChallengeTask:
    return ChallengeTask(
        identifier=Identifier(type="dns", value=f"{token.lower()}.example.test"),
        challenge=Challenge(
            type="http-01", url=f"https://ca.test/chal/{token}", status="pending", token=token
        ),
        key_authorization=f"{token}.thumbprint",
    )


def _fetch(port: int, token: str) -> str:
    url = f"http://127.0.0.1:{port}/.well-known/acme-challenge/{token}"
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return str(resp.read().decode())
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code}"


def test_standalone_solver_serves_two_orders_until_the_last_cleanup() -> None:
    solver = StandaloneSolver(port=free_port("tcp"), address="127.0.0.1")
    first, second = [_task("AAAA")], [_task("BBBB")]
    solver.perform(first)
    solver.perform(second)
    try:
        port = solver.bound_port
        assert _fetch(port, "AAAA") == "AAAA.thumbprint"
        solver.cleanup(first)
        assert _fetch(port, "AAAA") == "HTTP 404", "a finished order's answer is withdrawn"
        assert _fetch(port, "BBBB") == "BBBB.thumbprint", "the other order still validates"
    finally:
        solver.cleanup(second)
    with pytest.raises(urllib.error.URLError, match="refused"):
        _fetch(port, "BBBB")  # the last cleanup stopped the server


def test_webroot_solver_cleanup_removes_only_its_own_files(tmp_path: Path) -> None:
    solver = WebrootSolver(tmp_path)
    first, second = [_task("AAAA")], [_task("BBBB")]
    solver.perform(first)
    solver.perform(second)
    challenges = tmp_path / ".well-known" / "acme-challenge"
    solver.cleanup(first)
    assert sorted(p.name for p in challenges.iterdir()) == ["BBBB"]
    solver.cleanup(second)
    assert not (tmp_path / ".well-known").exists()


def test_connection_pool_is_as_large_as_the_concurrency() -> None:
    transport = Transport(max_connections=32)
    try:
        adapter = transport._session.get_adapter("https://ca.test/")
        assert adapter._pool_maxsize == 32  # type: ignore[attr-defined]
    finally:
        transport.close()
    with AcmeClient("https://ca.test/dir", AccountKey.generate(), max_concurrency=24) as client:
        adapter = client.transport._session.get_adapter("https://ca.test/")
        assert adapter._pool_maxsize == 24  # type: ignore[attr-defined]
        assert client.max_concurrency == 24


def test_issue_many_runs_at_most_max_concurrency_orders_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import threading
    import time

    running = peak = 0
    lock = threading.Lock()

    def fake_issue(self: AcmeClient, **kwargs: object) -> object:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.02)
        with lock:
            running -= 1
        return kwargs["names"]

    monkeypatch.setattr(AcmeClient, "issue", fake_issue)
    with AcmeClient("https://ca.test/dir", AccountKey.generate(), max_concurrency=3) as client:
        results = client.issue_many([{"names": [f"n{i}.test"]} for i in range(12)])
    assert results == [[f"n{i}.test"] for i in range(12)]
    assert peak == 3
