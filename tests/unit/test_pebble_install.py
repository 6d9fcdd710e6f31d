"""Finding Pebble and installing it (acmelite.testing.binaries, acmelite.testing.install).

The installer runs against a stand-in ``apt-get`` on ``PATH`` (a script that serves a .deb
built here with the real ``dpkg-deb``), so nothing is downloaded; ``dpkg-deb`` unpacks it for
real. The stand-in also records the mode of the directories apt works in.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from acmelite.testing import INSTALL_COMMAND, InstallError, PebbleNotFound, install_pebble
from acmelite.testing.__main__ import main
from acmelite.testing.binaries import default_pebble_dir, find_pebble

pytestmark = pytest.mark.skipif(
    shutil.which("dpkg-deb") is None, reason="needs dpkg-deb (Debian's dpkg package)"
)

FAKE_APT = """#!{python}
import hashlib, json, os, shutil, sys
from pathlib import Path

config = json.loads(Path(os.environ["FAKE_APT_CONFIG"]).read_text())
args = sys.argv[1:]
sources = next(a.split("=", 1)[1] for a in args if a.startswith("-oDir::Etc::SourceList="))
suite = Path(sources).read_text().split()[3]
with open(config["log"], "a") as log:
    cwd = Path.cwd()
    modes = {{str(p): oct(p.stat().st_mode & 0o777) for p in (cwd, cwd.parent, cwd.parent.parent)}}
    log.write(json.dumps({{"args": args[-3:], "suite": suite, "modes": modes}}) + "\\n")
if suite in config["failing"]:
    print("E: Failed to fetch InRelease  404  Not Found", file=sys.stderr)
    sys.exit(100)
deb = Path(config["deb"])
if args[-2:] == ["--print-uris", "pebble"]:
    digest = config.get("reported_sha256") or hashlib.sha256(deb.read_bytes()).hexdigest()
    print("'http://mirror.test/pool/main/p/pebble/" + deb.name + "' " + deb.name + " "
          + str(deb.stat().st_size) + " SHA256:" + digest)
elif args[-1] == "pebble" and args[-2] == "download":
    shutil.copy(deb, deb.name)
    if config.get("decoy"):
        shutil.copy(config["decoy"], Path(config["decoy"]).name)
"""


def build_deb(tmp: Path, version: str) -> Path:
    """A minimal ``pebble`` package with two shell scripts as its executables."""
    tree = tmp / f"tree-{version}"
    (tree / "DEBIAN").mkdir(parents=True)
    (tree / "DEBIAN" / "control").write_text(
        f"Package: pebble\nVersion: {version}\nArchitecture: amd64\n"
        "Maintainer: tests <tests@example.test>\nDescription: stand-in\n"
    )
    bin_dir = tree / "usr" / "bin"
    bin_dir.mkdir(parents=True)
    for name in ("pebble", "pebble-challtestsrv"):
        script = bin_dir / name
        script.write_text(f"#!/bin/sh\necho {name} {version}\n")
        script.chmod(0o755)
    deb = tmp / f"pebble_{version}_amd64.deb"
    subprocess.run(
        ["dpkg-deb", "--root-owner-group", "-b", str(tree), str(deb)],
        check=True,
        capture_output=True,
    )
    return deb


class FakeApt:
    def __init__(self, tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.tmp = tmp
        self.bin = tmp / "fake-bin"
        self.bin.mkdir()
        script = self.bin / "apt-get"
        script.write_text(FAKE_APT.format(python=sys.executable))
        script.chmod(0o755)
        self.log = tmp / "apt.log"
        self.log.touch()
        self.config_path = tmp / "fake-apt.json"
        self.config: dict[str, object] = {
            "log": str(self.log),
            "failing": [],
            "deb": str(build_deb(tmp, "9.9.9-1")),
        }
        self.save()
        monkeypatch.setenv("FAKE_APT_CONFIG", str(self.config_path))
        monkeypatch.setenv("PATH", f"{self.bin}{os.pathsep}{os.environ['PATH']}")

    def save(self) -> None:
        self.config_path.write_text(json.dumps(self.config))

    def calls(self) -> list[dict[str, object]]:
        return [json.loads(line) for line in self.log.read_text().splitlines()]


@pytest.fixture
def apt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeApt:
    return FakeApt(tmp_path, monkeypatch)


def test_installs_the_package_apt_downloads(apt: FakeApt, tmp_path: Path) -> None:
    dest = tmp_path / "cache" / "pebble"
    messages: list[str] = []

    binaries = install_pebble(dest, progress=messages.append)

    assert binaries.pebble == dest / "usr" / "bin" / "pebble"
    assert binaries.challtestsrv == dest / "usr" / "bin" / "pebble-challtestsrv"
    assert binaries.version == "9.9.9-1"
    assert (dest / "SUITE").read_text().strip() == "unstable"
    assert [c["args"][-1] for c in apt.calls()] == ["update", "pebble", "pebble"]
    assert messages[-1] == "install-pebble: from Debian unstable: pebble_9.9.9-1_amd64.deb"
    # the work directory is gone; only the install and its lock file are left beside it
    assert sorted(p.name for p in dest.parent.iterdir()) == [".pebble.lock", "pebble"]


def test_apt_works_in_a_private_directory(apt: FakeApt, tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        install_pebble(tmp_path / "cache" / "pebble")
    finally:
        os.umask(old)

    for call in apt.calls():
        modes = call["modes"]
        assert isinstance(modes, dict)
        private = {path: mode for path, mode in modes.items() if ".pebble.install-" in path}
        assert private, modes
        assert set(private.values()) == {"0o700"}, modes


def test_unpacks_exactly_the_reported_file_not_a_planted_one(apt: FakeApt, tmp_path: Path) -> None:
    # sorts before the real package: "the first .deb" would be this one
    apt.config["decoy"] = str(build_deb(tmp_path, "0.0.1-planted"))
    apt.save()

    binaries = install_pebble(tmp_path / "cache" / "pebble")

    assert binaries.version == "9.9.9-1"
    ran = subprocess.run([binaries.pebble], capture_output=True, text=True, check=True)
    assert ran.stdout == "pebble 9.9.9-1\n"


def test_a_file_that_differs_from_apt_report_is_refused(apt: FakeApt, tmp_path: Path) -> None:
    apt.config["reported_sha256"] = hashlib.sha256(b"something else").hexdigest()
    apt.save()
    dest = tmp_path / "cache" / "pebble"

    with pytest.raises(InstallError, match="is not the file apt reported") as failure:
        install_pebble(dest, suites=["unstable"])

    assert "pebble_9.9.9-1_amd64.deb" in str(failure.value)
    assert not dest.exists()


def test_falls_back_to_the_next_suite(apt: FakeApt, tmp_path: Path) -> None:
    apt.config["failing"] = ["unstable"]
    apt.save()
    messages: list[str] = []

    install_pebble(tmp_path / "pebble", progress=messages.append)

    assert (tmp_path / "pebble" / "SUITE").read_text().strip() == "trixie"
    assert any("could not get pebble from Debian unstable" in m and "404" in m for m in messages)


def test_every_suite_failing_is_one_error_naming_each(apt: FakeApt, tmp_path: Path) -> None:
    apt.config["failing"] = ["unstable", "trixie"]
    apt.save()

    with pytest.raises(InstallError, match="failed for every suite") as failure:
        install_pebble(tmp_path / "pebble")

    assert "unstable: apt-get update exited with 100" in str(failure.value)
    assert "trixie: apt-get update exited with 100" in str(failure.value)


def test_installed_is_a_no_op_unless_forced(apt: FakeApt, tmp_path: Path) -> None:
    dest = tmp_path / "pebble"
    install_pebble(dest)
    calls = len(apt.calls())

    install_pebble(dest)
    assert len(apt.calls()) == calls

    apt.config["deb"] = str(build_deb(tmp_path, "10.0.0-1"))
    apt.save()
    assert install_pebble(dest, force=True).version == "10.0.0-1"
    assert len(apt.calls()) == 2 * calls


def test_command_line_installs_and_prints_where(
    apt: FakeApt, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dest = tmp_path / "elsewhere"

    assert main(["install-pebble", "--dir", str(dest)]) == 0

    out, err = capsys.readouterr()
    assert f"pebble 9.9.9-1 installed: {dest}/usr/bin/pebble" in out
    assert f"ACMELITE_PEBBLE_BIN={dest}/usr/bin/pebble" in out
    assert "fetching the package index of Debian unstable" in err


def test_command_line_failure_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no apt-get

    assert main(["install-pebble", "--dir", str(tmp_path / "pebble")]) == 1

    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("install-pebble: 'apt-get' not found")
    assert "ACMELITE_PEBBLE_BIN" in err


# -- lookup -------------------------------------------------------------------------------


def fake_pebble(directory: Path, version: str | None = None) -> Path:
    bin_dir = directory / "usr" / "bin"
    bin_dir.mkdir(parents=True)
    for name in ("pebble", "pebble-challtestsrv"):
        (bin_dir / name).write_text("#!/bin/sh\necho 'Pebble version: dev'\n")
        (bin_dir / name).chmod(0o755)
    if version:
        (directory / "VERSION").write_text(version)
    return bin_dir / "pebble"


def test_lookup_order_environment_then_user_cache_then_path(tmp_path: Path) -> None:
    explicit = fake_pebble(tmp_path / "explicit", "1-explicit")
    cache = tmp_path / "xdg"
    cached = fake_pebble(cache / "acmelite" / "pebble", "2-cached")
    on_path = fake_pebble(tmp_path / "system", "3-path")
    env = {
        "ACMELITE_PEBBLE_BIN": str(explicit),
        "XDG_CACHE_HOME": str(cache),
        "PATH": str(on_path.parent),
    }

    assert find_pebble(environ=env).pebble == explicit
    del env["ACMELITE_PEBBLE_BIN"]
    assert find_pebble(environ=env).pebble == cached
    assert find_pebble(environ=env).version == "2-cached"
    env["XDG_CACHE_HOME"] = str(tmp_path / "empty")
    assert find_pebble(environ=env).pebble == on_path
    assert find_pebble(environ=env).challtestsrv == on_path.parent / "pebble-challtestsrv"


def test_not_found_names_the_install_command_and_the_cache(tmp_path: Path) -> None:
    env = {"XDG_CACHE_HOME": str(tmp_path / "xdg"), "PATH": str(tmp_path)}

    with pytest.raises(PebbleNotFound) as failure:
        find_pebble(environ=env)

    message = str(failure.value)
    assert f"`{INSTALL_COMMAND}`" in message
    assert str(tmp_path / "xdg" / "acmelite" / "pebble" / "usr" / "bin") in message
    assert ".cache/pebble" not in message.replace(str(tmp_path), "")
    assert "site-packages" not in message


def test_an_explicit_path_that_is_not_executable_is_an_error(tmp_path: Path) -> None:
    not_executable = tmp_path / "pebble"
    not_executable.write_text("")
    cached = fake_pebble(tmp_path / "xdg" / "acmelite" / "pebble")
    env = {"ACMELITE_PEBBLE_BIN": str(not_executable), "XDG_CACHE_HOME": str(tmp_path / "xdg")}

    with pytest.raises(PebbleNotFound, match="ACMELITE_PEBBLE_BIN"):
        find_pebble(environ=env)
    assert find_pebble(cached, environ=env).pebble == cached


def test_default_dir_follows_xdg_cache_home(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", "/home/someone")
    assert default_pebble_dir({"XDG_CACHE_HOME": "/var/cache/me"}) == Path(
        "/var/cache/me/acmelite/pebble"
    )
    # a relative XDG_CACHE_HOME is ignored (XDG Base Directory Specification)
    assert default_pebble_dir({"XDG_CACHE_HOME": "rel"}) == Path(
        "/home/someone/.cache/acmelite/pebble"
    )
    assert default_pebble_dir({}) == Path("/home/someone/.cache/acmelite/pebble")


def test_install_dir_modes(apt: FakeApt, tmp_path: Path) -> None:
    dest = tmp_path / "pebble"
    install_pebble(dest)
    assert stat.S_IMODE(dest.stat().st_mode) == 0o755
    assert os.access(dest / "usr" / "bin" / "pebble", os.X_OK)
