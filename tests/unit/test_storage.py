"""Atomic writes, key modes and the all-at-once output directory switch."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest

from acmelite.errors import AcmeliteError
from acmelite.storage import OutputLock, atomic_write, write_output_dir


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_atomic_write_key_mode_even_with_open_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        atomic_write(tmp_path / "key.pem", b"secret", mode=0o600)
        atomic_write(tmp_path / "cert.pem", b"public")
    finally:
        os.umask(old)
    assert _mode(tmp_path / "key.pem") == 0o600
    assert _mode(tmp_path / "cert.pem") == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cert.pem", "key.pem"]


def test_atomic_write_replaces_and_leaves_no_temp_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "f"
    atomic_write(target, b"old")
    with pytest.raises(TypeError):
        atomic_write(target, "not bytes")  # type: ignore[arg-type]
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["f"]


def test_output_dir_switches_all_files_at_once(tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = {"privkey.pem": b"k1", "cert.pem": b"c1", "chain.pem": b"i1", "fullchain.pem": b"c1i1"}
    write_output_dir(out, first)
    assert _mode(out) == 0o700
    assert _mode(out / "privkey.pem") == 0o600
    assert (out / "cert.pem").read_bytes() == b"c1"
    second = {k: v.replace(b"1", b"2") for k, v in first.items()}
    for _ in range(4):
        write_output_dir(out, second)
    assert {n: (out / n).read_bytes() for n in first} == second
    assert len(list((out / ".versions").iterdir())) == 3  # older versions pruned
    assert os.readlink(out / "cert.pem") == os.path.join(".live", "cert.pem")


def test_output_dir_replaces_plain_files_from_another_tool(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "cert.pem").write_bytes(b"from certbot")
    write_output_dir(out, {"cert.pem": b"new"})
    assert (out / "cert.pem").is_symlink()
    assert (out / "cert.pem").read_bytes() == b"new"


def test_lock_refuses_a_second_run(tmp_path: Path) -> None:
    out = tmp_path / "out"
    # flock is per open file description: a second open in this process conflicts too.
    with (
        OutputLock(out),
        pytest.raises(AcmeliteError, match="locked by another acmelite run"),
        OutputLock(out),
    ):
        pass
    with OutputLock(out):
        pass


def test_lock_waits_when_asked(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    acquired, release = threading.Event(), threading.Event()

    def holder() -> None:
        with OutputLock(out):
            acquired.set()
            release.wait(5)

    t = threading.Thread(target=holder)
    t.start()
    try:
        assert acquired.wait(5)
        timer = threading.Timer(0.3, release.set)
        timer.start()
        with OutputLock(out, wait=5):
            assert release.is_set()
        timer.join()
    finally:
        release.set()
        t.join()


def test_lock_leaves_no_trace_in_a_directory_it_created(tmp_path: Path) -> None:
    with OutputLock(tmp_path / "new"):
        pass
    assert not (tmp_path / "new").exists()
