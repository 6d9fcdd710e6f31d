"""A local unprivileged user where root runs acmelite (threat model: docs/reliability.md).

acmelite runs as root from cron and holds keys; another account on the same host may create
files and directories wherever it is allowed to, and wait. Each test plays that user (files
chowned to ``nobody``, or a process running as ``nobody``), then runs acmelite as root and
checks that it refused, with one line, and touched nothing the attacker pointed it at.
"""

from __future__ import annotations

import base64
import json
import os
import pwd
import re
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from acmelite.challenges import ChallengeTask
from acmelite.cli import main
from acmelite.errors import InvalidInput
from acmelite.models import Challenge, Identifier
from acmelite.solvers.http01 import WebrootSolver
from acmelite.storage import check_trusted, write_output_dir
from acmelite.testing.pebble import Pebble
from tests.conftest import PebbleFactory
from tests.reliability import Ledger
from tests.support import issue_argv, key_matches_cert, run_cli, serve_directory, without_http

NAME = "local.acmelite.test"
NOBODY = pwd.getpwnam("nobody")

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="plays another user: needs root")


@pytest.fixture(scope="module")
def ledger() -> Iterator[Ledger]:
    book = Ledger(
        "local-user", "A local unprivileged user against root's runs (test_local_user.py)"
    )
    yield book
    book.save()


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def _give_to_nobody(*paths: Path) -> None:
    for path in paths:
        os.chown(path, NOBODY.pw_uid, NOBODY.pw_gid, follow_symlinks=False)


@pytest.fixture
def umask() -> Iterator[None]:
    """The test sets the umask it wants; the old one comes back afterwards."""
    old = os.umask(0o022)
    os.umask(old)
    try:
        yield
    finally:
        os.umask(old)


# -- finding 2: every directory acmelite creates has an explicit mode ---------------------------


@pytest.mark.parametrize("mask", [0o000, 0o077], ids=["umask-000", "umask-077"])
def test_created_directories_have_explicit_modes_whatever_the_umask(
    pebble: Pebble,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    umask: None,
    mask: int,
    ledger: Ledger,
) -> None:
    """Missing parents 0755, the directories that hold keys 0700 — under umask 000 and 077."""
    argv = issue_argv(pebble, tmp_path, NAME, out="srv/certs/web")
    key = tmp_path / "home" / "config" / "acmelite" / "account.key"
    argv[argv.index("--account-key") + 1] = str(key)
    os.umask(mask)
    result = run_cli([*argv, "-q"], capsys)
    assert result.code == 0, result.err
    modes = {
        str(p.relative_to(tmp_path)): oct(_mode(p))
        for p in (
            tmp_path / "srv",
            tmp_path / "srv" / "certs",
            tmp_path / "srv" / "certs" / "web",
            tmp_path / "srv" / "certs" / "web" / ".versions",
            *(tmp_path / "srv" / "certs" / "web" / ".versions").iterdir(),
            tmp_path / "home",
            tmp_path / "home" / "config",
            key.parent,
        )
    }
    private = {"srv/certs/web", "home/config/acmelite"}
    wanted = {
        name: oct(0o700 if name in private or "/.versions" in name else 0o755) for name in modes
    }
    ledger.record(
        f"directories created under umask {mask:03o}",
        bad_inputs=1,
        recovered=int(modes == wanted),
        data_lost=int(modes != wanted),
    )
    assert modes == wanted


def test_output_parents_are_0755_in_the_library_too(tmp_path: Path, umask: None) -> None:
    os.umask(0)
    write_output_dir(tmp_path / "a" / "b" / "out", {"cert.pem": b"c"})
    assert [oct(_mode(p)) for p in (tmp_path / "a", tmp_path / "a" / "b")] == ["0o755"] * 2
    assert _mode(tmp_path / "a" / "b" / "out") == 0o700


@pytest.mark.parametrize("which", ["--out", "account key directory"])
def test_a_key_directory_owned_by_another_user_is_refused(
    pebble: Pebble,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    which: str,
    ledger: Ledger,
) -> None:
    argv = issue_argv(pebble, tmp_path, NAME, out="out")
    target = tmp_path / "out" if which == "--out" else tmp_path / "keys"
    target.mkdir(mode=0o700)
    _give_to_nobody(target)
    if which != "--out":
        argv[argv.index("--account-key") + 1] = str(target / "account.key")
    result = run_cli([*argv, "-q"], capsys)
    left = sorted(p.name for p in target.iterdir())
    ledger.record(
        f"{which} owned by nobody",
        bad_inputs=1,
        failed_cleanly=int(result.code == 1),
        data_lost=len(left),
        message=result.err.strip(),
    )
    assert result.code == 1, result.err
    assert result.err.count("\n") == 1, result.err
    assert f"{target} belongs to nobody (uid {NOBODY.pw_uid})" in result.err
    assert "another user" in result.err
    assert left == [], "nothing was written into the other user's directory"


def test_the_refusal_leaves_a_working_setup_alone(
    pebble: Pebble, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The owner check does not get in the way of root's own directories."""
    argv = issue_argv(pebble, tmp_path, NAME)
    assert run_cli([*argv, "-q"], capsys).code == 0
    assert run_cli([*argv, "-q"], capsys).code == 0
    out = tmp_path / "out"
    assert key_matches_cert((out / "privkey.pem").read_bytes(), (out / "cert.pem").read_bytes())


# -- findings 4 and 13: the webroot solver walks down without following links -------------------


@pytest.mark.parametrize("link", [".well-known", ".well-known/acme-challenge"])
def test_a_symlinked_webroot_component_is_refused(
    pebble: Pebble,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    link: str,
    ledger: Ledger,
) -> None:
    """The site belongs to a local user, who links part of the challenge path to a root-only
    directory (``/etc/sudoers.d`` in the finding); root's run must not create a file there."""
    webroot = tmp_path / "www"
    webroot.mkdir()
    (webroot / "index.html").write_text("hello")
    victim = tmp_path / "root-only"
    victim.mkdir(mode=0o700)
    planted = webroot / link
    planted.parent.mkdir(exist_ok=True)
    planted.symlink_to(victim)
    _give_to_nobody(webroot, planted.parent, planted)
    argv = [*without_http(issue_argv(pebble, tmp_path, NAME)), "--webroot", str(webroot), "-q"]
    with serve_directory(webroot, pebble.http_port):
        result = run_cli(argv, capsys)
    touched = sorted(str(p.relative_to(victim)) for p in victim.rglob("*"))
    ledger.record(
        f"webroot {link} planted as a symlink to a root-only directory",
        bad_inputs=1,
        failed_cleanly=int(result.code == 1),
        data_lost=len(touched),
        message=result.err.strip(),
    )
    assert touched == [], "root's run wrote into the directory the link points at"
    assert result.code == 1, result.err
    assert f"{planted} is a symbolic link: refusing" in result.err
    assert result.err.count("\n") == 1, result.err
    assert not (tmp_path / "out" / "cert.pem").exists()


def test_webroot_files_are_readable_by_the_web_server_under_umask_077(
    pebble: Pebble,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    umask: None,
    ledger: Ledger,
) -> None:
    """Files 0644 and the directories acmelite creates 0755, whatever the umask: a web
    server running as another user (``www-data``) must be able to serve them."""
    webroot = tmp_path / "www"
    webroot.mkdir(mode=0o755)
    seen: dict[str, str] = {}
    solver = WebrootSolver(webroot)
    task = _http01_task()
    os.umask(0o077)
    solver.perform([task])
    try:
        for path in (webroot / ".well-known", solver.directory, solver.directory / task.token):
            seen[str(path.relative_to(webroot))] = oct(_mode(path))
        served = _read_as_nobody(solver.directory / task.token)
    finally:
        solver.cleanup([task])
    wanted = {
        ".well-known": "0o755",
        ".well-known/acme-challenge": "0o755",
        f".well-known/acme-challenge/{task.token}": "0o644",
    }
    ledger.record("webroot files under umask 077", bad_inputs=1, recovered=int(seen == wanted))
    assert seen == wanted
    assert served == task.key_authorization
    assert list(webroot.iterdir()) == []


def _http01_task() -> ChallengeTask:
    token = "evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA"
    challenge = Challenge(type="http-01", url="https://ca.test/c/1", status="pending", token=token)
    return ChallengeTask(
        identifier=Identifier(type="dns", value=NAME),
        challenge=challenge,
        key_authorization=f"{token}.thumbprint",
    )


def _read_as_nobody(path: Path) -> str:
    """Read ``path`` as a process running as nobody (the web server of this test).

    Every directory above it gets the search bit for others for the time of the read: the
    test's temporary directory is root's and 0700.
    """
    opened = [p for p in path.parents if not _mode(p) & 0o001]
    for parent in opened:
        os.chmod(parent, _mode(parent) | 0o001)
    try:
        done = subprocess.run(
            ["setpriv", f"--reuid={NOBODY.pw_uid}", f"--regid={NOBODY.pw_gid}", "--clear-groups",
             "cat", str(path)],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
    finally:
        for parent in opened:
            os.chmod(parent, _mode(parent) & ~0o001)
    assert done.returncode == 0, done.stderr
    return done.stdout


# -- finding 1: renewal.json is executable configuration -----------------------------------------

#: How the planted directory is set up, as the attacker could: (what, which paths to chown to
#: nobody, which to make writable by others), relative to the tree.
PLANTS = {
    "a certificate directory owned by nobody": (("evil", "evil/renewal.json",
                                                 "evil/.renewal-state.json", "evil/cert.pem"), ()),
    "renewal.json owned by nobody": (("evil/renewal.json",), ()),
    "renewal.json writable by others": ((), ("evil/renewal.json",)),
    ".renewal-state.json owned by nobody": (("evil/.renewal-state.json",), ()),
    "a certificate directory writable by others": ((), ("evil",)),
    "a directory above it owned by nobody": (("team",), ()),
}  # fmt: skip


def _plant(good: Path, evil: Path, marker: Path) -> None:
    """A certificate directory whose deploy hook is pending: the next renew runs it first."""
    evil.mkdir(parents=True, mode=0o700)
    config = json.loads((good / "renewal.json").read_text())
    config["deploy_hook"] = f"touch {marker}"
    (evil / "renewal.json").write_text(json.dumps(config))
    (evil / ".renewal-state.json").write_text(json.dumps({"version": 1, "deploy_pending": True}))
    (evil / "cert.pem").write_bytes((good / "cert.pem").read_bytes())
    for path in (evil / "renewal.json", evil / ".renewal-state.json", evil / "cert.pem"):
        path.chmod(0o600)


@pytest.mark.parametrize("plant", list(PLANTS))
def test_renew_refuses_configuration_another_user_could_write(
    pebble: Pebble,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    plant: str,
    ledger: Ledger,
) -> None:
    """root renews a tree with --all-under; a local user planted a directory in it whose
    renewal.json has a deploy hook, pending since "the last renewal"."""
    tree = tmp_path / "certs"
    tree.mkdir(mode=0o755)
    assert run_cli([*issue_argv(pebble, tmp_path, NAME, out="certs/good"), "-q"], capsys).code == 0
    good = tree / "good"
    parent = tree / "team" if "above" in plant else tree
    parent.mkdir(exist_ok=True, mode=0o755)
    evil, marker = parent / "evil", tmp_path / "pwned"
    _plant(good, evil, marker)
    chowned, opened = PLANTS[plant]
    _give_to_nobody(*(tree / p if p == "team" else parent / p for p in chowned))
    for name in opened:
        path = parent / name
        path.chmod(_mode(path) | 0o022 | (0o755 if path.is_dir() else 0o644))
    result = run_cli(["renew", "--all-under", str(tree)], capsys)
    lines = result.out.splitlines()
    evil_lines = [line for line in lines if line.startswith(f"{evil}:")]
    ledger.record(
        f"renew --all-under: {plant}",
        bad_inputs=1,
        failed_cleanly=int(not marker.exists()),
        data_lost=int(marker.exists()),
        message=evil_lines[0] if evil_lines else "",
    )
    assert not marker.exists(), "root ran the planted deploy hook"
    assert len(evil_lines) == 1, result.out
    assert "refusing the configuration in" in evil_lines[0], evil_lines[0]
    assert "owner nobody (uid 65534)" in evil_lines[0] or "mode 0" in evil_lines[0]
    assert re.search(r"mode 0[0-7]{3}", evil_lines[0]), evil_lines[0]
    assert any(line.startswith(f"{good}: not-due") for line in lines), result.out
    assert result.code == 1


def test_a_refused_directory_named_on_the_command_line(
    pebble: Pebble, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_cli([*issue_argv(pebble, tmp_path, NAME, out="good"), "-q"], capsys).code == 0
    evil, marker = tmp_path / "evil", tmp_path / "pwned"
    _plant(tmp_path / "good", evil, marker)
    _give_to_nobody(evil / "renewal.json")
    result = run_cli(["renew", str(evil), str(tmp_path / "good")], capsys)
    assert not marker.exists()
    assert f"{evil / 'renewal.json'} belongs to another user (owner nobody" in result.out
    assert f"{tmp_path / 'good'}: not-due" in result.out


def test_check_trusted_accepts_root_and_the_running_user(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    (tree / "a" / "b").mkdir(parents=True)
    (tree / "a" / "b" / "renewal.json").write_text("{}")
    check_trusted(tree / "a" / "b", files=("renewal.json", "missing.json"), up_to=tree)
    os.chmod(tree, 0o777)  # noqa: S103 - the mode under test
    with pytest.raises(InvalidInput, match=rf"{tree} is writable by others .*mode 0777"):
        check_trusted(tree / "a" / "b", files=("renewal.json",), up_to=tree)
    check_trusted(tree / "a" / "b", files=("renewal.json",))  # the tree root is not asked


# -- finding 11: the EAB HMAC key from a file, not from argv -------------------------------------

EAB_KEY = base64.urlsafe_b64encode(bytes(range(32))).rstrip(b"=").decode()


@pytest.fixture
def eab_pebble(pebble_factory: PebbleFactory) -> Pebble:
    return pebble_factory(eab_required=True, eab_mac_keys={"kid-local": EAB_KEY})


@pytest.mark.parametrize("mode", [0o600, 0o644], ids=["0600", "0644"])
def test_the_eab_hmac_key_can_come_from_a_file(
    eab_pebble: Pebble,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    mode: int,
    ledger: Ledger,
) -> None:
    """Any local user can read another's command line (``ps``, /proc/PID/cmdline)."""
    secret = tmp_path / "eab.key"
    secret.write_text(EAB_KEY + "\n")
    secret.chmod(mode)
    argv = [
        "account", "register", "--server", eab_pebble.directory_url, "--ca-bundle",
        eab_pebble.ca_bundle, "--account-key", str(tmp_path / "account.key"), "--agree-tos",
        "--eab-kid", "kid-local", "--eab-hmac-key-file", str(secret), "-vv",
    ]  # fmt: skip
    result = run_cli(argv, capsys)
    ledger.record(
        f"EAB HMAC key from a {mode:04o} file", bad_inputs=0, recovered=int(result.code == 0)
    )
    assert result.code == 0, result.err
    assert EAB_KEY not in result.out + result.err and EAB_KEY not in " ".join(argv)
    warned = f"{secret} can be read by other users (mode 0644): chmod 600 it" in result.err
    assert warned == (mode == 0o644), result.err


def test_the_eab_options_say_what_others_can_see(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["account", "register", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--eab-hmac-key-file PATH" in text
    assert "visible to other users in the process list" in text


def test_an_empty_eab_key_file_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "empty").write_text("\n")
    argv = ["account", "register", "--server", "https://127.0.0.1:9/dir", "--account-key",
            str(tmp_path / "k"), "--agree-tos", "--eab-kid", "k",
            "--eab-hmac-key-file", str(tmp_path / "empty")]  # fmt: skip
    result = run_cli(argv, capsys)
    assert result.code == 1
    assert result.err.strip().splitlines() == [
        f"acmelite: error: --eab-hmac-key-file {tmp_path / 'empty'} is empty"
    ]
