"""contrib/systemd: the units load in systemd, are sandboxed, and their command runs.

``systemd-analyze verify`` loads the units the way systemd would (unknown keys, bad values,
a missing or non-executable ``ExecStart=`` binary are all reported) and works without
systemd running as PID 1. ``systemd-analyze security --offline=true`` scores the sandbox
from the file alone. Neither can *run* the service: that needs systemd as PID 1 with
namespaces and seccomp, which a test machine or container does not give, so the command of
``ExecStart=`` is run here in-process instead, against a certificate tree in a temporary
directory. Without systemd-analyze (Debian package ``systemd``) the test skips, and fails
under CI=true.
"""

from __future__ import annotations

import datetime as dt
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from acmelite.cli import build_parser
from tests.conftest import unavailable
from tests.support import run_cli
from tests.unit.test_fleet_unit import cert_dir, fresh_ari
from tests.unit.test_renewal_unit import make_cert

UNITS = Path(__file__).resolve().parents[2] / "contrib" / "systemd"
SERVICE, TIMER = UNITS / "acmelite-renew.service", UNITS / "acmelite-renew.timer"
INSTALLED = "/usr/local/bin/acmelite"


def parse_unit(path: Path) -> dict[str, dict[str, list[str]]]:
    """``{section: {key: [values...]}}`` (a key may be given more than once)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
            continue
        key, _, value = line.partition("=")
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


@pytest.fixture(scope="module")
def analyze() -> str:
    found = shutil.which("systemd-analyze")
    if found is None:
        unavailable("systemd-analyze not found (Debian package systemd)")
    return found


def acmelite_script() -> str:
    """The console script of this interpreter's acmelite (what ExecStart= names)."""
    script = Path(sys.executable).with_name("acmelite")
    if not script.exists():
        pytest.fail(f"{script} missing: install the package (make install)")
    return str(script)


def installed_copy(tmp_path: Path, *, edit: tuple[str, str] | None = None) -> list[Path]:
    """The units with ExecStart= pointing at this interpreter's acmelite (verify checks
    that the binary exists and is executable)."""
    out = []
    for unit in (SERVICE, TIMER):
        text = unit.read_text().replace(INSTALLED, acmelite_script())
        if edit is not None:
            text = text.replace(*edit)
        target = tmp_path / unit.name
        target.write_text(text)
        out.append(target)
    return out


def run_analyze(analyze: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([analyze, *args], capture_output=True, text=True, timeout=60, check=False)


def test_units_verify_clean(analyze: str, tmp_path: Path) -> None:
    units = installed_copy(tmp_path)
    proc = run_analyze(analyze, "verify", *map(str, units))
    # Any warning (an unknown key, a bad value) is printed: clean means silent and 0.
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")


@pytest.mark.parametrize(
    ("edit", "complaint"),
    [
        (("ProtectSystem=strict", "ProtectSytem=strict"), "Unknown key"),
        (("Type=oneshot", "Type=oneshoot"), "Failed to parse"),
        ((INSTALLED, "/nonexistent/acmelite"), "is not executable"),
    ],
)
def test_verify_would_catch_a_broken_unit(
    analyze: str, tmp_path: Path, edit: tuple[str, str], complaint: str
) -> None:
    """The check above can fail: these mistakes are reported."""
    if edit[0] == INSTALLED:
        units = [tmp_path / u.name for u in (SERVICE, TIMER)]
        for unit, target in zip((SERVICE, TIMER), units, strict=True):
            target.write_text(unit.read_text().replace(*edit))
    else:
        units = installed_copy(tmp_path, edit=edit)
    proc = run_analyze(analyze, "verify", *map(str, units))
    assert complaint in proc.stdout + proc.stderr


def test_service_is_sandboxed(analyze: str, tmp_path: Path) -> None:
    service = installed_copy(tmp_path)[0]
    # systemd's exposure score: 0 (locked down) .. 10 (UNSAFE); --threshold counts tenths.
    proc = run_analyze(analyze, "security", "--offline=true", "--threshold=20", str(service))
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr
    assert "Overall exposure level" in proc.stdout
    units = parse_unit(SERVICE)["Service"]
    assert units["ProtectSystem"] == ["strict"] and units["NoNewPrivileges"] == ["true"]
    assert units["SuccessExitStatus"] == ["3"]  # renew's "renewed" is a success
    assert units["StateDirectory"] == ["acmelite acmelite/metrics"]


def test_timer_is_hourly_spread_and_persistent() -> None:
    timer = parse_unit(TIMER)
    assert timer["Timer"] == {
        "OnCalendar": ["hourly"],
        "RandomizedDelaySec": ["15min"],
        "Persistent": ["true"],
    }
    assert timer["Install"]["WantedBy"] == ["timers.target"]


def test_exec_start_is_a_real_command_that_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (exec_start,) = parse_unit(SERVICE)["Service"]["ExecStart"]
    argv = shlex.split(exec_start)
    assert argv[0] == INSTALLED
    args = build_parser().parse_args(argv[1:])  # every option is one renew knows
    assert args.command == "renew" and args.concurrency == 4
    state_dirs = parse_unit(SERVICE)["Service"]["StateDirectory"][0].split()
    for path in (*map(str, args.all_under), str(args.metrics_file)):
        assert any(path.startswith(f"/var/lib/{d}/") for d in state_dirs), path
    # Run it on a tree here: /var/lib/acmelite -> tmp_path (nothing is due, no request).
    now = dt.datetime.now(dt.timezone.utc)
    cert = make_cert(days=90, start=now)
    tree = tmp_path / "certs"
    for name in ("web", "api"):
        cert_dir(tree, name, "https://127.0.0.1:9/dir", cert, fresh_ari(cert))
    (tmp_path / "metrics").mkdir()
    local = [a.replace("/var/lib/acmelite", str(tmp_path)) for a in argv[1:]]
    result = run_cli(local, capsys)
    assert result.code == 0, result.err
    assert result.out.count(": not-due: ") == 2
    assert (
        "acmelite_certificate_not_after_seconds"
        in (tmp_path / "metrics" / "acmelite.prom").read_text()
    )
