"""bench/install-peers unpacks exactly the lego package apt named, from a 0700 directory.

A stand-in ``apt-get`` on PATH plays Debian's: ``update`` does nothing, ``download
--print-uris`` names a file with its size and SHA-256, ``download`` writes it (and, in the
hostile cases, a planted or a swapped file too). The package itself is a real .deb built
with ``dpkg-deb -b``. No network is used.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "bench" / "install-peers"


def build_deb(tmp: Path, name: str, version: str, *, binary: str = "lego") -> Path:
    tmp.mkdir(parents=True, exist_ok=True)
    tree = tmp / f"tree-{name}-{version}-{binary}"
    (tree / "DEBIAN").mkdir(parents=True)
    (tree / "DEBIAN" / "control").write_text(
        f"Package: {name}\nVersion: {version}\nArchitecture: all\nMaintainer: t <t@t>\n"
        "Description: stand-in\n"
    )
    (tree / "usr" / "bin").mkdir(parents=True)
    exe = tree / "usr" / "bin" / binary
    exe.write_text("#!/bin/sh\necho lego\n")
    exe.chmod(0o755)
    deb = tmp / f"{name}_{version}_all.deb"
    subprocess.run(["dpkg-deb", "-b", "--root-owner-group", str(tree), str(deb)], check=True,
                   capture_output=True, timeout=60)  # fmt: skip
    return deb


def fake_apt(tmp: Path, named: Path, written: list[Path]) -> Path:
    """A PATH directory with an apt-get that names ``named`` and writes ``written``."""
    bindir = tmp / "bin"
    bindir.mkdir()
    size = named.stat().st_size
    digest = hashlib.sha256(named.read_bytes()).hexdigest()
    copies = "\n".join(f'    cp "{p}" "./{p.name}"' for p in written)
    script = f"""#!/bin/sh
for arg; do last=$arg; done
case "$*" in
  *--print-uris*) echo "'http://deb.test/pool/{named.name}' {named.name} {size} SHA256:{digest}";;
  *download*)
    mode=$(stat -c %a .); echo "$mode" > "{tmp}/deb-dir-mode"
{copies}
    ;;
  *) ;;
esac
"""
    apt = bindir / "apt-get"
    apt.write_text(script)
    apt.chmod(0o755)
    return bindir


def run_script(tmp: Path, bindir: Path) -> subprocess.CompletedProcess[str]:
    cache = tmp / "cache"
    venv_bin = cache / "bench-venv" / "bin"
    venv_bin.mkdir(parents=True)
    for tool, text in (("certbot", "echo certbot 5.8"), ("acme-tiny", "true"),
                       ("pip", "echo Version: 5.0")):  # fmt: skip
        path = venv_bin / tool
        path.write_text(f"#!/bin/sh\n{text}\n")
        path.chmod(0o755)
    env = {**os.environ, "PATH": f"{bindir}:{os.environ['PATH']}", "ACMELITE_CACHE_DIR": str(cache)}
    return subprocess.run([str(SCRIPT)], capture_output=True, text=True, env=env, timeout=120,
                          check=False)  # fmt: skip


def test_the_named_file_is_unpacked_from_a_private_directory(tmp_path: Path) -> None:
    good = build_deb(tmp_path, "lego", "4.35.0-1")
    result = run_script(tmp_path, fake_apt(tmp_path, good, [good]))
    assert result.returncode == 0, result.stderr
    assert "lego 4.35.0-1 in" in result.stdout
    assert (tmp_path / "deb-dir-mode").read_text().strip() == "700"
    lego = tmp_path / "cache" / "lego" / "usr" / "bin" / "lego"
    assert lego.is_file() and stat.S_IMODE(lego.stat().st_mode) & 0o111


def test_a_planted_earlier_package_is_not_the_one_unpacked(tmp_path: Path) -> None:
    good = build_deb(tmp_path, "lego", "4.35.0-1")
    evil = build_deb(tmp_path / "planted", "lego", "0.0.1-evil")
    # "lego_0.0.1-evil_all.deb" sorts before the real one: the old script took it.
    result = run_script(tmp_path, fake_apt(tmp_path, good, [evil, good]))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "cache" / "lego" / "VERSION").read_text().strip() == "4.35.0-1"


def test_a_swapped_package_is_refused(tmp_path: Path) -> None:
    good = build_deb(tmp_path, "lego", "4.35.0-1")
    other = build_deb(tmp_path / "other", "lego", "4.35.0-1", binary="lego-evil")
    swapped = tmp_path / "swapped"
    swapped.mkdir()
    shutil.copy(other, swapped / good.name)  # same name, other bytes
    result = run_script(tmp_path, fake_apt(tmp_path, good, [swapped / good.name]))
    assert result.returncode == 1
    assert "is not the file apt named" in result.stderr
    assert not (tmp_path / "cache" / "lego").exists()
