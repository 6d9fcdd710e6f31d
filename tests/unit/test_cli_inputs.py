"""Bad input to ``acmelite issue``: one clear line, non-zero exit, nothing written, no network.

The server URL points at a closed loopback port: had acmelite sent anything, the error
would be "cannot reach", not the validation message each case expects.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from acmelite.csr import make_csr
from acmelite.keys import generate_private_key
from acmelite.models import Identifier
from tests.support import run_cli


@pytest.fixture
def closed_server() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"https://127.0.0.1:{port}/dir"


def _argv(tmp: Path, server: str, *names: str) -> list[str]:
    argv = [
        "issue",
        "--server",
        server,
        "--agree-tos",
        "--account-key",
        str(tmp / "acct.key"),
        "--out",
        str(tmp / "out"),
        "--http-port",
        "0",  # the standalone server binds before any request: never port 80 in a unit test
    ]
    return argv + [f"--domain={n}" for n in names]


CASES = [
    (["a..b.test"], "empty label"),
    ([("x" * 64) + ".test"], "63"),
    ([".".join(["abcdefghi"] * 26) + ".test"], "253"),
    (["bad_name!.test"], "character"),
    (["-lead.test"], "hyphen"),
    (["trail-.test"], "hyphen"),
    (["a.*.test"], "whole leftmost label"),
    (["f*.test"], "whole leftmost label"),
    (["*.wild.test"], "dns-01"),
    ([f"n{i}.many.test" for i in range(101)], "100"),
]
#: A wildcard with http-01, or more names than an order takes: options that cannot work (exit 2).
USAGE = {"dns-01", "100"}


@pytest.mark.parametrize(("names", "expected"), CASES)
def test_bad_names(
    tmp_path: Path,
    closed_server: str,
    capsys: pytest.CaptureFixture[str],
    names: list[str],
    expected: str,
) -> None:
    result = run_cli(_argv(tmp_path, closed_server, *names), capsys)
    assert result.code == (2 if expected in USAGE else 1)
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    assert lines[0].startswith("acmelite: error: ")
    assert expected in lines[0]
    assert "cannot reach" not in lines[0]
    assert list(tmp_path.iterdir()) == []


def _assert_clean_failure(
    result: object, tmp_path: Path, expected: str, keep: tuple[str, ...] = (), exit_code: int = 1
) -> None:
    code, err = result.code, result.err  # type: ignore[attr-defined]
    assert code == exit_code, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("acmelite: error: ")
    assert expected in last, last
    assert "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(keep)


def test_wildcard_with_http01_says_dns01(
    tmp_path: Path, closed_server: str, capsys: pytest.CaptureFixture[str]
) -> None:
    result = run_cli(_argv(tmp_path, closed_server, "*.example.test"), capsys)
    _assert_clean_failure(result, tmp_path, "--challenge dns-01", exit_code=2)


def test_unreadable_and_invalid_account_key(
    tmp_path: Path, closed_server: str, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "acct.key").write_text("not a key")
    result = run_cli(_argv(tmp_path, closed_server, "a.test"), capsys)
    _assert_clean_failure(result, tmp_path, "not a PEM or DER private key", keep=("acct.key",))
    (tmp_path / "acct.key").unlink()
    (tmp_path / "acct.key").mkdir()
    result = run_cli(_argv(tmp_path, closed_server, "a.test"), capsys)
    _assert_clean_failure(result, tmp_path, "cannot read account key", keep=("acct.key",))


def test_invalid_csr_and_mismatched_names(
    tmp_path: Path, closed_server: str, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "bad.csr").write_text("-----BEGIN CERTIFICATE REQUEST-----\nnope\n")
    result = run_cli(
        [*_argv(tmp_path, closed_server, "a.test"), "--csr", str(tmp_path / "bad.csr")], capsys
    )
    _assert_clean_failure(
        result, tmp_path, "not a PEM or DER certificate signing request", keep=("bad.csr",)
    )
    (tmp_path / "bad.csr").unlink()
    csr = make_csr(generate_private_key(), [Identifier(type="dns", value="other.test")])
    from cryptography.hazmat.primitives import serialization

    (tmp_path / "req.pem").write_bytes(csr.public_bytes(serialization.Encoding.PEM))
    result = run_cli(
        [*_argv(tmp_path, closed_server, "a.test"), "--csr", str(tmp_path / "req.pem")], capsys
    )
    _assert_clean_failure(result, tmp_path, "differ from -d", keep=("req.pem",))
    result = run_cli(
        [*_argv(tmp_path, closed_server), "--csr", str(tmp_path / "missing.pem")], capsys
    )
    _assert_clean_failure(result, tmp_path, "cannot read --csr", keep=("req.pem",))


def test_missing_out_no_names_bad_server(
    tmp_path: Path, closed_server: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = _argv(tmp_path, closed_server, "a.test")
    i = argv.index("--out")
    result = run_cli(argv[:i] + argv[i + 2 :], capsys)
    _assert_clean_failure(result, tmp_path, "--out DIR is required", exit_code=2)
    result = run_cli(_argv(tmp_path, closed_server), capsys)
    _assert_clean_failure(result, tmp_path, "no names", exit_code=2)
    result = run_cli(_argv(tmp_path, "letsencrypt-prod", "a.test"), capsys)
    _assert_clean_failure(result, tmp_path, "neither a URL nor an alias", exit_code=2)
    argv = [a for a in _argv(tmp_path, closed_server, "a.test") if a not in ("--http-port", "0")]
    result = run_cli([*argv, "--webroot", str(tmp_path / "nope")], capsys)
    _assert_clean_failure(result, tmp_path, "is not a directory", exit_code=2)


def test_idn_is_converted_and_said(
    tmp_path: Path, closed_server: str, capsys: pytest.CaptureFixture[str]
) -> None:
    result = run_cli(_argv(tmp_path, closed_server, "bücher.example.test"), capsys)
    assert "xn--bcher-kva.example.test" in result.err
    assert "A-label" in result.err
    # It got as far as the network (closed port), proving the name itself was accepted.
    assert "cannot reach 127.0.0.1" in result.err.strip().splitlines()[-1]


def test_usage_error_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    result = run_cli(["issue", "--key-type", "dsa", "-d", "a.test"], capsys)
    assert result.code == 2
    assert "invalid choice" in result.err
