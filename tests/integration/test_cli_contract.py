"""The command line's contract: the exit codes of docs/cli.md (every row run), one error
path with the same prefix for every command, ``--json`` on failure, checks before the first
request, and the rough edges a newcomer met (each pinned here)."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from acmelite import AccountKey, AcmeClient, InvalidInput
from acmelite.cli import build_parser
from acmelite.constants import CHALLENGE_TYPES
from acmelite.testing.blackhole import Blackhole
from acmelite.testing.pebble import Pebble
from tests.integration.test_renew import window_in_the_past
from tests.support import CliResult, default_signals, issue_argv, run_cli, run_cli_subprocess

DOCS = Path(__file__).resolve().parents[2] / "docs"


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def closed_url() -> str:
    return f"https://127.0.0.1:{closed_port()}/dir"


def json_doc(result: CliResult) -> dict[str, object]:
    """stdout must be exactly one JSON object."""
    doc = json.loads(result.out)
    assert isinstance(doc, dict), result.out
    return doc


def error_line(result: CliResult) -> str:
    lines = result.err.strip().splitlines()
    assert lines, "no error line"
    assert lines[-1].startswith("acmelite: error: "), result.err
    assert "Traceback" not in result.err
    return lines[-1]


def self_signed(tmp: Path, name: str, *, days: float = 30, start_days: float = -1) -> Path:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now + dt.timedelta(days=start_days))
        .not_valid_after(now + dt.timedelta(days=start_days + days))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    path = tmp / f"{name}-{days}-{start_days}.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


@pytest.fixture
def silent_tls_port() -> Iterator[int]:
    """A port that accepts connections and never says a word (a hung TLS handshake)."""
    with Blackhole() as hole:
        yield hole.port


# -- every row of the exit-code table --------------------------------------------------------


def documented_exit_codes() -> dict[int, str]:
    text = (DOCS / "cli.md").read_text()
    section = text.split("## Exit codes", 1)[1].split("\n## ", 1)[0]
    return {int(code): meaning for code, meaning in re.findall(r"^\| (\d+) \| (.+) \|$",
                                                                 section, flags=re.M)}  # fmt: skip


def test_every_documented_exit_code_happens(
    pebble: Pebble,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    silent_tls_port: int,
) -> None:
    documented = documented_exit_codes()
    seen: dict[int, str] = {}

    def expect(code: int, why: str, result: CliResult) -> None:
        assert result.code == code, (why, result.err)
        seen[code] = why

    ok = run_cli([*issue_argv(pebble, tmp_path, "exit0.contract.test"), "--profile", "default"],
                 capsys)  # fmt: skip
    expect(0, "issued", ok)
    failing = issue_argv(pebble, tmp_path, "exit1.contract.test", out="o1")
    failing[failing.index("--http-port") + 1] = "0"  # Pebble dials a port nobody listens on
    expect(1, "validation failed", run_cli(failing, capsys))
    expect(2, "usage", run_cli(["issue", "-d", "a.test", "--dns", "rfc2136"], capsys))
    window_in_the_past(pebble, tmp_path / "out")
    expect(3, "renewed", run_cli(["renew", str(tmp_path / "out")], capsys))
    verify = [*issue_argv(pebble, tmp_path, "exit4.contract.test", out="o4"), "--verify",
              f"127.0.0.1:{closed_port()}", "--verify-timeout", "0"]  # fmt: skip
    expect(4, "not served", run_cli(verify, capsys))
    cert = self_signed(tmp_path, "www.contract.test")
    expect(
        10,
        "name mismatch",
        run_cli(["check", "--cert", str(cert), "--name", "other.contract.test"], capsys),
    )
    expired = self_signed(tmp_path, "www.contract.test", days=1, start_days=-3)
    expect(11, "expired",
           run_cli(["check", "--cert", str(expired), "--name", "www.contract.test",
                    "--ca-bundle", str(expired)], capsys))  # fmt: skip
    expect(12, "untrusted",
           run_cli(["check", "--cert", str(cert), "--name", "www.contract.test",
                    "--ca-bundle", pebble.ca_bundle], capsys))  # fmt: skip
    expect(13, "unreachable", run_cli(["check", f"127.0.0.1:{closed_port()}"], capsys))
    for code, sig in ((130, signal.SIGINT), (143, signal.SIGTERM), (129, signal.SIGHUP)):
        proc = subprocess.Popen(
            [sys.executable, "-m", "acmelite", "check", f"127.0.0.1:{silent_tls_port}",
             "--timeout", "60"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            preexec_fn=default_signals,  # noqa: PLW1509 - resets signal dispositions only
        )  # fmt: skip
        time.sleep(1.5)  # python has started and is waiting in the handshake
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=30)
        expect(code, f"interrupted by {sig.name}", CliResult(proc.returncode, out, err))
        assert err.strip().splitlines()[-1] == f"acmelite: interrupted by {sig.name}", err
        assert "Traceback" not in err
    assert set(seen) == set(documented), (documented, seen)


# -- one error path, JSON on failure -----------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["issue", "--bogus"],
        ["renew", "--bogus"],
        ["check", "--bogus"],
        ["account", "show", "--bogus"],
        ["account", "show", "--email", "a@b.test"],  # options that do nothing there: refused
        ["revoke", "--bogus"],
        ["plugins", "--bogus"],
        ["completion", "fish"],
        ["issue", "-d", "a.test", "--out", "o", "--timeout", "-1"],
        ["renew", "x", "--timeout", "0"],
    ],
)
def test_usage_errors_share_one_prefix_and_json(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    result = run_cli([*argv, "--json"], capsys)
    assert result.code == 2, result.err
    line = error_line(result)
    assert not line.startswith(("acmelite issue:", "acmelite check:"))
    doc = json_doc(result)
    assert doc["ok"] is False and doc["exit_code"] == 2
    error = doc["error"]
    assert isinstance(error, dict) and error["type"] == "UsageError"
    assert isinstance(error["message"], str) and error["message"] in line


def test_json_on_failure_carries_the_problem_document(
    pebble: Pebble, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = issue_argv(pebble, tmp_path, "json.contract.test")
    failing = list(argv)
    failing[failing.index("--http-port") + 1] = "0"
    result = run_cli([*failing, "--json"], capsys)
    assert result.code == 1
    doc = json_doc(result)
    error = doc["error"]
    assert isinstance(error, dict)
    assert doc["ok"] is False and error["type"] == "AuthorizationFailed"
    assert error["identifier"] == "json.contract.test"
    problem = error["problem"]
    assert isinstance(problem, dict) and problem["type"].startswith("urn:ietf:params:acme:error:")
    assert error["message"] in error_line(result)
    # Success has "ok": true with the usual fields.
    good = json_doc(run_cli([*argv, "--json"], capsys))
    assert good["ok"] is True and good["names"] == ["json.contract.test"]
    # Issued but the deploy hook failed: still exactly one object, the error.
    hooked = run_cli([*argv, "--json", "--deploy-hook", "exit 7"], capsys)
    assert hooked.code == 1
    assert json_doc(hooked)["error"]["type"] == "DeployFailed"  # type: ignore[index]
    # An account that does not exist, without --agree-tos: the CLI's hint, in JSON too.
    fresh = [a for a in argv if a != "--agree-tos"]
    fresh[fresh.index("--account-key") + 1] = str(tmp_path / "new.key")
    missing = run_cli([*fresh, "--json"], capsys)
    assert missing.code == 1
    assert error_line(missing).endswith("; pass --agree-tos to create one")
    assert json_doc(missing)["error"]["type"] == "AccountNotFound"  # type: ignore[index]
    for command in (["account", "show"], ["revoke", "--cert", str(tmp_path / "none.pem")]):
        other = run_cli([*command, "--server", pebble.directory_url, "--ca-bundle",
                         pebble.ca_bundle, "--account-key", str(tmp_path / "nokey"), "--json"],
                        capsys)  # fmt: skip
        assert other.code == 1 and json_doc(other)["ok"] is False, other.err


def test_verbose_errors_show_the_causes_and_no_traceback(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    argv = ["issue", "-d", "a.test", "--server", closed_url(), "--account-key",
            str(tmp_path / "k"), "--out", str(tmp_path / "o"), "--http-port", "0",
            "--agree-tos"]  # fmt: skip
    quiet = run_cli(argv, capsys)
    loud = run_cli([*argv, "-v"], capsys)
    assert quiet.code == loud.code == 1
    line = error_line(loud)
    assert re.search(r"cannot reach 127\.0\.0\.1:\d+ \(Connection refused \(errno 111\)\);"
                     r" check --server and the network$", line), line  # fmt: skip
    assert "caused by: ConnectionError" in loud.err and "caused by" not in quiet.err
    assert "urllib3" not in line and "object at 0x" not in line


# -- checks before the first request ---------------------------------------------------------


def test_busy_port_and_bad_address_fail_before_any_request_or_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        base = ["issue", "-d", "a.test", "--server", closed_url(), "--agree-tos",
                "--account-key", str(tmp_path / "acct.key"),
                "--out", str(tmp_path / "out")]  # fmt: skip
        result = run_cli([*base, "--http-port", str(port), "--http-address", "127.0.0.1"], capsys)
    # The server URL is a closed port: a request would have said "cannot reach".
    assert result.code == 1
    assert error_line(result) == (
        f"acmelite: error: port {port} on 127.0.0.1 is already in use; stop the server holding"
        " it, use --webroot DIR, or pick --http-port"
    )
    for address, expected in (("192.0.2.1", "cannot listen on 192.0.2.1"),
                              ("not an address", "cannot listen on not an address")):  # fmt: skip
        bad = run_cli([*base, "--http-port", "0", "--http-address", address], capsys)
        assert bad.code == 1 and expected in error_line(bad), bad.err
    assert list(tmp_path.iterdir()) == []  # no account key, no --out: nothing written


def test_dns_options_without_dns01_and_ports_out_of_range_are_usage(
    capsys: pytest.CaptureFixture[str],
) -> None:
    for argv, expected in (
        (["--dns", "hook", "--dns-hook", "x"], "go with --challenge dns-01"),
        (["--http-port", "99999"], "port 99999 is not a TCP port"),
        (["--challenge", "dns-01", "--dns", "rfc2136"], "needs option 'server'"),
        (["--server", "letsencrpyt"], "neither a URL nor an alias"),
    ):
        result = run_cli(["issue", "-d", "a.test", "--out", "o", *argv], capsys)
        assert result.code == 2, (argv, result.err)
        assert expected in error_line(result)


# -- the rough edges ----------------------------------------------------------------------------


def test_renew_all_under_an_empty_or_missing_tree(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    result = run_cli(["renew", "--all-under", str(tmp_path)], capsys)
    assert result.code == 0
    assert result.out.strip() == f"no certificates under {tmp_path} yet"
    result = run_cli(["renew", "--all-under", str(tmp_path), "--json"], capsys)
    assert json_doc(result) == {"ok": True, "certificates": []}
    result = run_cli(["renew", "--all-under", str(tmp_path / "nope")], capsys)
    assert result.code == 1
    assert "no such directory" in error_line(result)


def test_refresh_ari_asks_again_at_once(
    pebble: Pebble, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [*issue_argv(pebble, tmp_path, "ari.contract.test"), "--profile", "default"]
    assert run_cli(argv, capsys).code == 0
    out = tmp_path / "out"
    first = run_cli(["renew", "--json", str(out)], capsys)
    assert json_doc(first)["certificates"][0]["status"] == "not-due"  # type: ignore[index]
    window_in_the_past(pebble, out)  # the CA moved the window (a mass revocation, say)
    cached = run_cli(["renew", "--json", str(out)], capsys)
    assert json_doc(cached)["certificates"][0]["status"] == "not-due"  # type: ignore[index]
    fresh = run_cli(["renew", "--json", "--refresh-ari", str(out)], capsys)
    assert fresh.code == 3, fresh.err
    assert json_doc(fresh)["certificates"][0]["status"] == "renewed"  # type: ignore[index]


def test_check_plain_http_and_url_targets(capsys: pytest.CaptureFixture[str]) -> None:
    import http.server

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        port = server.server_address[1]
        result = run_cli(["check", f"127.0.0.1:{port}", "--timeout", "5"], capsys)
        assert result.code == 13
        assert "does not speak TLS" in error_line(result)
        assert "plain HTTP port" in error_line(result)
        url = run_cli(["check", f"https://127.0.0.1:{port}/healthz", "--timeout", "5"], capsys)
        assert url.code == 13 and "does not speak TLS" in error_line(url)
        wrong = run_cli(["check", f"http://127.0.0.1:{port}/"], capsys)
        assert wrong.code == 2 and "only https:// URLs" in error_line(wrong)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_a_url_that_is_no_acme_directory(
    pebble: Pebble, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    typo = pebble.directory_url.replace("/dir", "/directroy")
    argv = issue_argv(pebble, tmp_path, "typo.contract.test")
    argv[argv.index("--server") + 1] = typo
    result = run_cli(argv, capsys)
    assert result.code == 1
    line = error_line(result)
    assert f"{typo} does not serve an ACME directory" in line
    assert "is --server the CA's ACME directory URL" in line
    plain = pebble.directory_url.replace("https://", "http://")
    argv[argv.index("--server") + 1] = plain
    result = run_cli(argv, capsys)
    assert result.code == 2, "plain HTTP needs --insecure (issue 11, finding 5)"
    assert f"--server {plain} is plain HTTP" in error_line(result), result.err
    assert "--insecure allows it for a test CA" in error_line(result)


def test_idn_note_names_the_input_it_converted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["issue", "-d", "a.test", "-d", "A.test", "-d", "bücher.test", "--server",
            closed_url(), "--account-key", str(tmp_path / "k"), "--out", str(tmp_path / "o"),
            "--http-port", "0"]  # fmt: skip
    result = run_cli(argv, capsys)
    notes = [line for line in result.err.splitlines() if "A-label" in line]
    assert len(notes) == 1, result.err
    assert "bücher.test is written xn--bcher-kva.test" in notes[0]


def test_email_on_an_existing_account_is_said_not_dropped(
    pebble: Pebble, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = issue_argv(pebble, tmp_path, "email.contract.test")
    assert run_cli(argv, capsys).code == 0
    again = run_cli([*argv, "--email", "ops@contract.test"], capsys)
    assert again.code == 0
    assert "exists already: its contact is not changed" in again.err
    (tmp_path / "account.key.accounts.json").unlink()  # looked up by key this time
    third = run_cli([*argv, "--email", "ops@contract.test"], capsys)
    assert "exists already with contact (none): it is not changed" in third.err


def test_library_edges(pebble: Pebble, tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        key = AccountKey.generate()
        key.save(tmp_path / "keys" / "a.key")
    finally:
        os.umask(old)
    assert (tmp_path / "keys" / "a.key").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "keys").stat().st_mode & 0o777 == 0o700
    assert AccountKey.load(tmp_path / "keys" / "a.key").thumbprint() == key.thumbprint()
    with pytest.raises(InvalidInput, match=r"CA bundle /nonexistent\.pem: no such file"):
        AcmeClient(pebble.directory_url, key, ca_bundle="/nonexistent.pem")
    client = AcmeClient(pebble.directory_url, key, ca_bundle=pebble.ca_bundle)
    client.register(agree_tos=True)
    from acmelite.solvers.http01 import StandaloneSolver

    with pytest.raises(TypeError, match="not one string"):
        client.issue("one.contract.test", solver=StandaloneSolver(port=0))  # type: ignore[arg-type]
    client.close()


# -- help, docs and completion --------------------------------------------------------------


def _issue_flags() -> set[str]:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    issue = sub.choices["issue"]  # type: ignore[index]
    return {o for a in issue._actions for o in a.option_strings if o.startswith("--")}


def test_docs_cli_md_matches_the_parser() -> None:
    text = (DOCS / "cli.md").read_text()
    section = text.split("## `acmelite issue`", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"`(--[a-z][a-z0-9-]*)", section))
    flags = _issue_flags() - {"--help"}
    assert flags - documented == set(), "options missing from docs/cli.md"
    assert documented - flags == set(), "docs/cli.md lists options that do not exist"
    commands = set(re.findall(r"^\| `acmelite ([a-z]+)", text, flags=re.M))
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert commands == set(sub.choices), "docs/cli.md's command table"  # type: ignore[arg-type]


def test_every_help_ends_with_examples() -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert "examples:" in parser.format_help()
    for name, command in sub.choices.items():  # type: ignore[union-attr]
        if name == "account":  # its actions carry the examples
            actions = next(a for a in command._actions if a.dest == "action")
            for action, parser in actions.choices.items():  # type: ignore[union-attr]
                assert f"acmelite account {action}" in parser.format_help(), action
            continue
        text = command.format_help()
        assert "examples:" in text, name
        assert f"acmelite {name}" in text.split("examples:", 1)[1], name


def test_bash_completion_completes_commands_options_and_choices(tmp_path: Path) -> None:
    bash = shutil.which("bash")
    assert bash is not None
    script = tmp_path / "acmelite.bash"
    script.write_text(run_cli_subprocess(["completion", "bash"]).out)

    def complete(*words: str) -> list[str]:
        probe = (
            f"source {script}; COMP_WORDS=({' '.join(repr(w) for w in words)});"
            f" COMP_CWORD={len(words) - 1}; _acmelite; printf '%s\\n' \"${{COMPREPLY[@]}}\""
        )
        proc = subprocess.run([bash, "-c", probe], capture_output=True, text=True, timeout=30,
                              check=True)  # fmt: skip
        return proc.stdout.split()

    assert complete("acmelite", "iss") == ["issue"]
    assert "--dns-option" in complete("acmelite", "issue", "--dns-o")
    assert complete("acmelite", "issue", "--challenge", "") == list(CHALLENGE_TYPES)
    assert complete("acmelite", "persist", "ch") == ["check"]
    assert complete("acmelite", "account", "ro") == ["rollover"]
    assert "--yes-deactivate" in complete("acmelite", "account", "deactivate", "--yes")
    zsh = run_cli_subprocess(["completion", "zsh"]).out
    assert zsh.startswith("#compdef acmelite\nautoload -U +X bashcompinit && bashcompinit\n")
    assert zsh.endswith(script.read_text())
