"""SIGKILL at every step of a re-issue into an existing --out, and two runs on one --out.

Each case starts ``python -m acmelite issue`` into a directory that already holds a
certificate, holds it at one exact step and kills it with SIGKILL: no handler runs, no
``finally``, no flush. Afterwards the live files must be one consistent set (the key matches
the certificate; fullchain = cert + chain) — the old set when the kill came before the switch
to the new version, the new set after it — and a second run must succeed.

Network steps are held by :class:`FaultProxy` (a request that is never answered, or a
certificate download cut off half-way); file steps by a wrapper around the real ``main`` that
pauses inside ``acmelite.storage`` (before each file, before its rename, before and after the
switch of ``.live``). Nothing in the library knows about these tests.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509

from acmelite.cli import main
from acmelite.testing.pebble import Pebble
from acmelite.testing.proxy import Fault, FaultProxy, Injection, On
from tests.reliability import Ledger
from tests.support import issue_argv, key_matches_cert, tree_snapshot

NAME = "crash.acmelite.test"
LIVE_FILES = ("privkey.pem", "cert.pem", "chain.pem", "fullchain.pem")
HOLD = 120.0
STEP_TIMEOUT = 30.0

#: Runs ``acmelite`` and stops for ever at ``$ACMELITE_CRASH_AT`` (``<step>:<n>``: the n-th time
#: that step is reached), after creating the file ``$ACMELITE_CRASH_MARK``.
CHILD = """
import os, sys, time
import acmelite.storage as storage
point, mark, seen = os.environ["ACMELITE_CRASH_AT"], os.environ["ACMELITE_CRASH_MARK"], {}

def step(name):
    seen[name] = seen.get(name, 0) + 1
    if f"{name}:{seen[name]}" == point:
        open(mark, "w").close()
        time.sleep(600)

def before(name, fn):
    def wrapped(*args, **kwargs):
        step(name)
        return fn(*args, **kwargs)
    return wrapped

storage.atomic_write = before("write", storage.atomic_write)
storage._swap_link = before("link", storage._swap_link)
storage._prune = before("prune", storage._prune)
real_replace = os.replace

def replace(src, dst, *args, **kwargs):
    if ".versions" in os.fspath(dst):
        step("rename")
    return real_replace(src, dst, *args, **kwargs)

os.replace = replace
from acmelite.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.fixture(scope="module")
def ledger() -> Iterator[Ledger]:
    book = Ledger("crash", "SIGKILL during a re-issue, and concurrent runs (test_crash.py)")
    yield book
    book.save()


@pytest.fixture(scope="module")
def proxy(pebble: Pebble) -> Iterator[FaultProxy]:
    with FaultProxy(pebble.directory_url, upstream_ca_bundle=pebble.ca_bundle) as running:
        yield running


@pytest.fixture(scope="module")
def seed(proxy: FaultProxy, pebble: Pebble, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("crash-seed")
    assert main(_argv(proxy, pebble, root, "-q")) == 0
    return root


@pytest.fixture
def root(seed: Path, proxy: FaultProxy, tmp_path: Path) -> Iterator[Path]:
    proxy.clear()
    work = tmp_path / "w"
    shutil.copytree(seed, work, symlinks=True)
    try:
        yield work
    finally:
        proxy.clear()


def _argv(proxy: FaultProxy, pebble: Pebble, root: Path, *extra: str) -> list[str]:
    argv = issue_argv(
        pebble, root, NAME, directory_url=proxy.directory_url, ca_bundle=proxy.ca_bundle
    )
    return [*argv, *extra]


#: The commands killed, with the exit status of a successful run ("renew" exits 3: renewed).
COMMANDS = {"issue": 0, "renew": 3}


def _command(command: str, proxy: FaultProxy, pebble: Pebble, root: Path) -> list[str]:
    """``issue`` again into --out, or ``renew --force`` of it (from its renewal.json)."""
    if command == "renew":
        return ["renew", str(root / "out"), "--force"]
    return _argv(proxy, pebble, root)


@dataclass
class Child:
    proc: subprocess.Popen[bytes]
    log: Path

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        assert self.proc.wait(timeout=10) == -signal.SIGKILL

    def finish(self, timeout: float = 60) -> tuple[int, str]:
        code = self.proc.wait(timeout=timeout)
        return code, self.log.read_text(errors="replace")


def _spawn(
    argv: list[str], log: Path, *, child_code: str | None = None, env: dict[str, str] | None = None
) -> Child:
    code = ["-c", child_code] if child_code else ["-m", "acmelite"]
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, *code, *argv],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
        )
    return Child(proc, log)


def _live(out: Path) -> dict[str, bytes]:
    return {name: (out / name).read_bytes() for name in LIVE_FILES}


def _consistent(files: dict[str, bytes]) -> bool:
    try:
        return (
            key_matches_cert(files["privkey.pem"], files["cert.pem"])
            and files["fullchain.pem"] == files["cert.pem"] + files["chain.pem"]
        )
    except ValueError:
        return False


def _serial(files: dict[str, bytes]) -> int:
    return x509.load_pem_x509_certificate(files["cert.pem"]).serial_number


def _wait_for(predicate: object, what: str, child: Child) -> None:
    deadline = time.monotonic() + STEP_TIMEOUT
    while not predicate():  # type: ignore[operator]
        if child.proc.poll() is not None:
            pytest.fail(
                f"acmelite exited ({child.proc.returncode}) before {what}:\n"
                + child.log.read_text(errors="replace")
            )
        if time.monotonic() > deadline:
            child.kill()
            pytest.fail(f"acmelite never reached {what}:\n" + child.log.read_text())
        time.sleep(0.02)


def _after_kill(
    ledger: Ledger,
    command: str,
    case: str,
    root: Path,
    before: dict[str, bytes],
    *,
    switched: bool,
    proxy: FaultProxy,
    pebble: Pebble,
    tmp_path: Path,
) -> None:
    """The live set is whole (old or new as ``switched`` says), and a re-run succeeds."""
    out = root / "out"
    after = _live(out)
    whole = _consistent(after) and (after != before) == switched
    proxy.clear()
    rerun = _spawn(_command(command, proxy, pebble, root), tmp_path / "rerun.log")
    code, log = rerun.finish()
    final = _live(out)
    recovered = (
        code == COMMANDS[command] and _consistent(final) and _serial(final) != _serial(after)
    )
    ledger.record(
        f"{command}: {case}", injected=1, recovered=int(recovered), data_lost=0 if whole else 1
    )
    assert _consistent(after), f"{case}: the live key and certificate do not match"
    if switched:
        assert after != before, f"{case}: killed after the switch, the new set must be live"
    else:
        assert after == before, f"{case}: killed before the switch, the old set must be live"
    assert code == COMMANDS[command], log
    assert recovered
    versions = [p for p in (out / ".versions").iterdir() if p.is_dir()]
    assert len(versions) <= 3, f"old versions are pruned: {sorted(p.name for p in versions)}"


# -- network steps, held by the proxy -------------------------------------------------------

NETWORK_STEPS = {
    "after newOrder, before the authorizations are fetched": Fault.delay(
        HOLD, forward=False, on=On(kind="authz")
    ),
    "while the CA validates the challenge": Fault.delay(
        HOLD, forward=False, on=On(kind="challenge")
    ),
    "before finalize": Fault.delay(HOLD, forward=False, on=On(kind="finalize")),
    "after finalize, before the CA answered it": Fault.delay(
        HOLD, forward=True, on=On(kind="finalize")
    ),
    "during the certificate download (half the PEM received)": Fault.reset_mid_body(
        stall=HOLD, on=On(kind="certificate")
    ),
}


@pytest.mark.parametrize("case", list(NETWORK_STEPS))
@pytest.mark.parametrize("command", list(COMMANDS))
def test_sigkill_at_a_network_step(
    command: str,
    case: str,
    root: Path,
    proxy: FaultProxy,
    pebble: Pebble,
    tmp_path: Path,
    ledger: Ledger,
) -> None:
    before = _live(root / "out")
    injection: Injection = proxy.inject(NETWORK_STEPS[case])
    child = _spawn(_command(command, proxy, pebble, root), tmp_path / "child.log")
    _wait_for(lambda: injection.hits > 0, case, child)
    child.kill()
    _after_kill(
        ledger,
        command,
        case,
        root,
        before,
        switched=False,
        proxy=proxy,
        pebble=pebble,
        tmp_path=tmp_path,
    )


# -- file steps, held inside acmelite.storage -----------------------------------------------

#: (step, killed after the switch of .live?) — files go in the order cert, chain, fullchain,
#: privkey; "write:n" is before the n-th file, "rename:n" between writing it and renaming it.
FILE_STEPS = {
    "before the first file of the new version": ("write:1", False),
    "between writing cert.pem and renaming it into place": ("rename:1", False),
    "before the 2nd file (chain.pem)": ("write:2", False),
    "before the 4th file (privkey.pem)": ("write:4", False),
    "between writing privkey.pem and renaming it into place": ("rename:4", False),
    "with every file written, before the switch of .live": ("link:1", False),
    "right after the switch of .live": ("prune:1", True),
}


@pytest.mark.parametrize("case", list(FILE_STEPS))
@pytest.mark.parametrize("command", list(COMMANDS))
def test_sigkill_during_the_file_writes(
    command: str,
    case: str,
    root: Path,
    proxy: FaultProxy,
    pebble: Pebble,
    tmp_path: Path,
    ledger: Ledger,
) -> None:
    point, switched = FILE_STEPS[case]
    before = _live(root / "out")
    mark = tmp_path / "paused"
    env = {"ACMELITE_CRASH_AT": point, "ACMELITE_CRASH_MARK": str(mark)}
    argv = _command(command, proxy, pebble, root)
    child = _spawn(argv, tmp_path / "child.log", child_code=CHILD, env=env)
    _wait_for(mark.exists, case, child)
    child.kill()
    _after_kill(
        ledger,
        command,
        case,
        root,
        before,
        switched=switched,
        proxy=proxy,
        pebble=pebble,
        tmp_path=tmp_path,
    )


# -- two runs on one --out ------------------------------------------------------------------


@pytest.mark.parametrize("command", list(COMMANDS))
def test_second_run_fails_clearly_on_the_lock(
    command: str, root: Path, proxy: FaultProxy, pebble: Pebble, tmp_path: Path, ledger: Ledger
) -> None:
    """While an issue holds --out (stalled at finalize), a second issue fails at once and a
    renew skips the directory, saying why; neither touches it."""
    before = tree_snapshot(root / "out")
    held = proxy.inject(Fault.delay(HOLD, forward=True, on=On(kind="finalize")))
    first = _spawn(_argv(proxy, pebble, root), tmp_path / "first.log")
    _wait_for(lambda: held.hits > 0, "finalize", first)
    start = time.monotonic()
    second = _spawn(_command(command, proxy, pebble, root), tmp_path / "second.log")
    code, log = second.finish(timeout=30)
    took = time.monotonic() - start
    untouched = tree_snapshot(root / "out") == before
    held.release()
    first_code, first_log = first.finish()
    lines = log.strip().splitlines()
    said = [line for line in lines if "locked by another acmelite run" in line]
    if command == "issue":
        clean = code == 1 and lines[-1].startswith("acmelite: error: ") and said == lines[-1:]
    else:
        clean = code in (0, 1) and len(said) == 1
    clean = clean and "Traceback" not in log
    final = _live(root / "out")
    ledger.record(
        f"{command} on an --out locked by a running issue",
        injected=1,
        failed_cleanly=int(clean),
        data_lost=0 if untouched and _consistent(final) else 1,
        message=said[0] if said else "",
    )
    assert clean, log
    assert took < 20, f"the second run waited {took:.0f} s instead of failing at once"
    assert untouched, "the second run must not touch --out while the first holds it"
    assert first_code == 0, first_log
    assert _consistent(final)


def test_simultaneous_runs_never_interleave(
    root: Path, proxy: FaultProxy, pebble: Pebble, tmp_path: Path, ledger: Ledger
) -> None:
    """Two runs started together: each succeeds or fails on the lock; the result is whole."""
    for attempt in range(3):
        runs = [
            _spawn(_argv(proxy, pebble, root), tmp_path / f"r{attempt}-{i}.log") for i in range(2)
        ]
        results = [run.finish() for run in runs]
        locked = [log for code, log in results if code == 1 and "locked by another" in log]
        succeeded = [log for code, log in results if code == 0]
        final = _live(root / "out")
        ledger.record(
            f"two simultaneous runs, round {attempt + 1}",
            injected=1,
            recovered=len(succeeded),
            failed_cleanly=len(locked),
            data_lost=0 if _consistent(final) else 1,
        )
        assert len(locked) + len(succeeded) == 2, results
        assert succeeded
        assert _consistent(final)
