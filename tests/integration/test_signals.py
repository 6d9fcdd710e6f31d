"""SIGTERM, SIGHUP and SIGINT during a real run: cleanup runs, one line, 128 + the signal.

Kubernetes (pod deletion, ``activeDeadlineSeconds``), systemd and ``timeout`` stop a run with
SIGTERM; a closed terminal sends SIGHUP. Each test starts ``acmelite issue`` as a real process
against Pebble behind :class:`FaultProxy`, which holds the challenge answer — the moment the
answers are published and the CA is about to look — and sends the signal there. Afterwards:
the answers are gone (BIND holds no TXT value, the standalone port is free), the lock is
free, ``--out`` holds no file, and stderr ends with ``acmelite: interrupted by SIGTERM``.
SIGKILL is test_crash.py's.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from acmelite.storage import OutputLock
from acmelite.testing.bind import BindServer
from acmelite.testing.pebble import Pebble
from acmelite.testing.proxy import Fault, FaultProxy, Injection, On
from tests.conftest import PebbleFactory
from tests.reliability import Ledger
from tests.support import default_signals, issue_argv, without_http

EXIT = {"SIGTERM": 143, "SIGHUP": 129, "SIGINT": 130}


@pytest.fixture(scope="module")
def ledger() -> Iterator[Ledger]:
    book = Ledger("signals", "SIGTERM, SIGHUP and SIGINT during a run (test_signals.py)")
    yield book
    book.save()


def _start(argv: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "acmelite", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
        preexec_fn=default_signals,  # noqa: PLW1509 - resets signal dispositions only
    )


def _reached(held: Injection, proc: subprocess.Popen[str]) -> bool:
    """Whether the run got to the held request (False at once if it ended before)."""
    limit = time.monotonic() + 60
    while time.monotonic() < limit:
        if held.wait_hit(0.2):
            return True
        if proc.poll() is not None:
            return False
    return False


def _reap(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.communicate()


def _signal_at_the_held_answer(
    proc: subprocess.Popen[str], proxy: FaultProxy, held: Injection, signame: str
) -> tuple[int, str]:
    """Wait until the run sits at the held challenge answer, signal it, collect the end."""
    try:
        assert _reached(held, proc), f"the run never answered a challenge: {_tail(proc)}"
        time.sleep(0.2)  # the request is on the wire; the answers are published
        proc.send_signal(getattr(signal, signame))
        _, err = proc.communicate(timeout=60)
    finally:
        proxy.clear()  # release the held request in any case
        _reap(proc)
    return proc.returncode, err


def _tail(proc: subprocess.Popen[str]) -> str:
    """The end of a run that stopped early (what it said)."""
    if proc.poll() is None:
        return "still running"
    _, err = proc.communicate()
    return err.strip()[-500:]


def _lock_is_free(out: Path) -> bool:
    try:
        with OutputLock(out):
            return True
    except Exception:
        return False


def _leftovers(out: Path) -> list[str]:
    if not out.exists():
        return []
    return sorted(p.name for p in out.iterdir() if p.name != ".lock")


@pytest.fixture
def dns_pebble(pebble_factory: PebbleFactory, bind: BindServer) -> Pebble:
    return pebble_factory(dns_server=bind.address)


@pytest.mark.parametrize("signame", ["SIGTERM", "SIGHUP", "SIGINT"])
def test_a_signal_during_dns01_removes_the_txt_record(
    dns_pebble: Pebble, bind: BindServer, tmp_path: Path, signame: str, ledger: Ledger
) -> None:
    """The finding: after SIGTERM the TXT record stayed in the zone (the ``bind`` fixture
    also fails the test if any value is left)."""
    out = tmp_path / "out"
    with FaultProxy(dns_pebble.directory_url, upstream_ca_bundle=dns_pebble.ca_bundle) as proxy:
        held = proxy.inject(Fault.delay(120, on=On(kind="challenge")))
        argv = [
            "issue", "-d", "signal.example.test", "--server", proxy.directory_url,
            "--ca-bundle", proxy.ca_bundle, "--agree-tos",
            "--account-key", str(tmp_path / "account.key"), "--out", str(out),
            "--challenge", "dns-01", "--dns", "rfc2136", "--dns-server", bind.address,
            "--tsig-key-name", bind.key_name, "--dns-resolver", bind.address,
            "--dns-propagation-timeout", "10",
        ]  # fmt: skip
        proc = _start(argv, env={"ACMELITE_TSIG_SECRET": bind.key_secret})
        published = bind.all_txt() if _reached(held, proc) else {}
        code, err = _signal_at_the_held_answer(proc, proxy, held, signame)
    left = bind.all_txt()
    ledger.record(
        f"{signame} while the dns-01 answer is published",
        injected=1,
        failed_cleanly=int(code == EXIT[signame] and not left),
        data_lost=len(left),
        message=err.strip().splitlines()[-1] if err.strip() else "",
    )
    assert published, "the TXT value was in the zone when the signal came"
    assert left == {}, f"{signame} left TXT values in the zone: {left}"
    assert code == EXIT[signame], err
    assert err.strip().splitlines()[-1] == f"acmelite: interrupted by {signame}", err
    assert "Traceback" not in err
    assert _leftovers(out) == [] and _lock_is_free(out)


def test_sigterm_stops_the_standalone_server_and_leaves_no_file(
    pebble: Pebble, tmp_path: Path, ledger: Ledger
) -> None:
    out = tmp_path / "out"
    with FaultProxy(pebble.directory_url, upstream_ca_bundle=pebble.ca_bundle) as proxy:
        held = proxy.inject(Fault.delay(120, on=On(kind="challenge")))
        argv = issue_argv(
            pebble,
            tmp_path,
            "signal.acmelite.test",
            directory_url=proxy.directory_url,
            ca_bundle=proxy.ca_bundle,
        )
        proc = _start(argv)
        code, err = _signal_at_the_held_answer(proc, proxy, held, "SIGTERM")
    with socket.create_server(("127.0.0.1", pebble.http_port)):
        pass  # the port is free again: the server was stopped
    ledger.record("SIGTERM while the standalone server answers", injected=1,
                  failed_cleanly=int(code == 143))  # fmt: skip
    assert code == 143, err
    assert err.strip().splitlines()[-1] == "acmelite: interrupted by SIGTERM", err
    assert _leftovers(out) == [] and _lock_is_free(out)


def test_a_second_sigterm_does_not_cut_the_cleanup_short(
    pebble: Pebble, bind: BindServer, tmp_path: Path, ledger: Ledger
) -> None:
    """Kubernetes may signal again before its grace period ends; the first cleanup goes on."""
    published = tmp_path / "published"
    hook = tmp_path / "hook.py"
    hook.write_text(
        "import pathlib, sys, time\n"
        f"book = pathlib.Path({str(published)!r})\n"
        "action, record, value = sys.argv[1:4]\n"
        "if action == 'present':\n"
        "    book.write_text(value)\n"
        "else:\n"
        "    time.sleep(2)\n"
        "    book.unlink()\n"
    )
    with FaultProxy(pebble.directory_url, upstream_ca_bundle=pebble.ca_bundle) as proxy:
        held = proxy.inject(Fault.delay(120, on=On(kind="challenge")))
        base = issue_argv(
            pebble,
            tmp_path,
            "hook.acmelite.test",
            directory_url=proxy.directory_url,
            ca_bundle=proxy.ca_bundle,
        )
        argv = [
            *without_http(base), "--challenge", "dns-01", "--dns", "hook",
            "--dns-hook", f"{sys.executable} {hook}", "--dns-propagation-timeout", "0",
            "--dns-resolver", bind.address,
        ]  # fmt: skip
        proc = _start(argv)
        try:
            assert _reached(held, proc), "the run never answered a challenge"
            time.sleep(0.2)
            proc.send_signal(signal.SIGTERM)
            time.sleep(0.7)  # the cleanup hook is sleeping now
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=60)
        finally:
            proxy.clear()
            _reap(proc)
    ledger.record("a second SIGTERM during the cleanup", injected=2,
                  failed_cleanly=int(not published.exists()))  # fmt: skip
    assert not published.exists(), "the cleanup hook was cut short"
    assert proc.returncode == 143, err
    assert "SIGTERM again: still cleaning up" in err
    assert err.strip().splitlines()[-1] == "acmelite: interrupted by SIGTERM"
    assert _leftovers(tmp_path / "out") == [] and _lock_is_free(tmp_path / "out")
