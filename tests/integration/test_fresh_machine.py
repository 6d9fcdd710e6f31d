"""What `make demo` and `make test` do on a fresh machine: the virtualenv and the system packages.

The whole path — a fresh clone, `make demo` with Debian's /usr/bin/python3 and no pyenv — is a
step of .ci/run; these tests pin its parts: which interpreter the Makefile picks, how
scripts/ensure-venv makes and remakes `.venv`, and what scripts/install-system-packages tells a
user who is not root.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SYSTEM_PYTHON = Path("/usr/bin/python3")


def base_python() -> str:
    """An interpreter that is not a virtualenv: Debian's, else the one this venv was made from."""
    if SYSTEM_PYTHON.is_file():
        return str(SYSTEM_PYTHON)
    return str(Path(sys.base_prefix) / "bin" / "python3")


def make_dry_run(target: str, python: str, **env: str) -> str:
    clean = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "CONDA_PREFIX")}
    proc = subprocess.run(
        ["make", "-n", "--no-print-directory", "-C", str(ROOT), target, f"PYTHON={python}"],
        capture_output=True,
        text=True,
        env={**clean, **env},
        timeout=60,
        check=True,
    )
    return proc.stdout


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_makefile_uses_a_project_venv_outside_any_virtualenv() -> None:
    python = base_python()

    outside = make_dry_run("python-packages", python)
    inside = make_dry_run("python-packages", sys.executable)
    conda = make_dry_run("python-packages", python, CONDA_PREFIX=str(Path(python).parent.parent))

    assert f"scripts/ensure-venv {python} .venv" in outside
    assert ".venv/bin/python -m pip install" in outside
    assert "ensure-venv" not in inside
    assert f"{sys.executable} -m pip install" in inside
    assert "ensure-venv" not in conda


def test_ensure_venv_makes_reuses_and_remakes(tmp_path: Path) -> None:
    venv = tmp_path / ".venv"
    command = [str(ROOT / "scripts" / "ensure-venv"), base_python(), str(venv)]

    subprocess.run(command, check=True, capture_output=True, timeout=120)
    marker = venv / ".acmelite-venv"
    first = marker.read_text()
    identity = first.splitlines()[0]
    is_venv = subprocess.run(
        [venv / "bin" / "python", "-c", "import sys; print(sys.prefix != sys.base_prefix)"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert is_venv.stdout.strip() == "True"
    expected = subprocess.run(
        [
            base_python(),
            "-c",
            'import sys; print(sys.executable, "%d.%d.%d" % sys.version_info[:3])',
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert identity == expected.stdout.strip()

    again = subprocess.run(command, check=True, capture_output=True, text=True, timeout=60)
    assert again.stderr == ""
    assert marker.read_text() == first  # the same venv: the Makefile keeps its packages

    marker.write_text("/some/other/python 3.99.0\nold\n")  # made by another interpreter
    remade = subprocess.run(command, check=True, capture_output=True, text=True, timeout=120)
    assert f"creating {venv}" in remade.stderr
    assert marker.read_text().splitlines()[0] == identity
    assert marker.read_text() != first


def test_ensure_venv_refuses_an_interpreter_it_cannot_run(tmp_path: Path) -> None:
    proc = subprocess.run(
        [str(ROOT / "scripts" / "ensure-venv"), str(tmp_path / "python9"), str(tmp_path / "v")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 1
    assert "cannot run" in proc.stderr
    assert "PYTHON=" in proc.stderr
    assert not (tmp_path / "v").exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="simulating a non-root user without BIND needs root")
def test_install_system_packages_tells_a_non_root_user_what_to_install(tmp_path: Path) -> None:
    """As nobody, with /usr/sbin hidden (no named) in a private mount namespace."""
    if shutil.which("unshare") is None or shutil.which("setpriv") is None:
        pytest.skip("needs unshare and setpriv (util-linux)")
    empty = tmp_path / "empty"
    empty.mkdir()
    script = ROOT / "scripts" / "install-system-packages"
    inner = (
        f"mount --bind {empty} /usr/sbin && exec setpriv --reuid=65534 --regid=65534 "
        "--clear-groups env PATH=/usr/bin:/bin bash -s bind"
    )
    with script.open("rb") as source:  # read through stdin: nobody may not enter the checkout
        proc = subprocess.run(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c", inner],
            stdin=source,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    if "mount" in proc.stderr and proc.returncode != 1:
        pytest.skip(f"no private mount namespace here: {proc.stderr.strip()}")

    assert proc.returncode == 1, proc.stderr
    assert "missing named/nsupdate (BIND 9, for the dns-01 tests)" in proc.stderr
    assert "not root, so nothing was installed" in proc.stderr
    assert "apt-get install bind9 bind9-utils bind9-dnsutils" in proc.stderr
