"""The solver registry and the CLI's challenge options, without a network.

One place builds solvers from a configuration (``solver_for``); these tests pin how option
values are found (inline, ``@PATH``, the environment, defaults), what is refused (unknown
solvers and options, secrets inline) and that the CLI's shorthand flags are only that.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from acmelite.cli import build_parser
from acmelite.cli.challenge_options import challenge_config
from acmelite.dns.propagation import PropagationSettings
from acmelite.dns.query import Server
from acmelite.errors import InvalidInput
from acmelite.solvers import (
    ChallengeConfig,
    SolverConfigError,
    available_solvers,
    check_config,
    solver_for,
    solver_info,
)
from acmelite.solvers.hook import HookSolver
from acmelite.solvers.http01 import StandaloneSolver, WebrootSolver
from acmelite.solvers.registry import BUILTIN_SOLVERS
from acmelite.solvers.rfc2136 import Rfc2136Solver, parse_tsig_key
from tests.support import run_cli

SECRET = "c3VwZXItc2VjcmV0LXRzaWcta2V5LW1hdGVyaWFsLTEyMzQ="
ROOT = Path(__file__).resolve().parents[2]


def rfc2136(**options: str) -> ChallengeConfig:
    return ChallengeConfig(type="dns-01", solver="rfc2136", options=options)


def test_builtins_are_registered_as_pyproject_says() -> None:
    text = (ROOT / "pyproject.toml").read_text()
    section = text.split('[project.entry-points."acmelite.solvers"]', 1)[1].split("\n[", 1)[0]
    registered = dict(re.findall(r'^([\w-]+) = "([^"]+)"$', section, flags=re.M))
    assert registered == dict(BUILTIN_SOLVERS)
    assert set(BUILTIN_SOLVERS) <= set(available_solvers())
    assert solver_info("hook").challenge_type == "dns-01"
    assert solver_info("standalone").distribution == "acmelite"


def test_rfc2136_from_inline_environment_and_file(tmp_path: Path) -> None:
    base = {"server": "127.0.0.1:5353", "tsig-key-name": "k", "zone": "example.test"}
    solver = solver_for(
        rfc2136(**base, **{"propagation-timeout": "0", "resolver": "127.0.0.1:5353"}),
        environ={"ACMELITE_DNS_TSIG_SECRET": SECRET},
    )
    assert isinstance(solver, Rfc2136Solver)
    assert solver.server == Server("127.0.0.1", 5353)
    assert solver.zone == "example.test."
    assert solver.propagation == PropagationSettings(timeout=0, resolver="127.0.0.1:5353")
    # The 0.1.0 variable still works; the new one is named in the error.
    legacy = solver_for(rfc2136(**base), environ={"ACMELITE_TSIG_SECRET": SECRET})
    assert isinstance(legacy, Rfc2136Solver)
    with pytest.raises(SolverConfigError) as caught:
        solver_for(rfc2136(**base), environ={})
    assert "tsig-secret=@PATH or $ACMELITE_DNS_TSIG_SECRET" in str(caught.value)
    # A BIND key file names key and algorithm; @PATH is read at build time.
    key_file = tmp_path / "acme.key"
    key_file.write_text(
        'key "other" {\n\talgorithm hmac-sha256;\n\tsecret "b3RoZXI=";\n};\n'
        f'key "acmelite-example" {{\n\talgorithm hmac-sha512;\n\tsecret "{SECRET}";\n}};\n'
    )
    from_file = solver_for(
        rfc2136(server="ns1.example.test", **{"tsig-key-name": "acmelite-example",
                                               "tsig-secret": f"@{key_file}"}),
        environ={},
    )  # fmt: skip
    assert isinstance(from_file, Rfc2136Solver)
    assert (from_file.tsig_key_name, from_file.tsig_algorithm) == (
        "acmelite-example.",
        "hmac-sha512",
    )
    first = solver_for(rfc2136(server="ns1.test", **{"tsig-secret": f"@{key_file}"}), environ={})
    assert isinstance(first, Rfc2136Solver)
    assert first.tsig_key_name == "other."


def test_parse_tsig_key_forms() -> None:
    assert parse_tsig_key(SECRET + "\n") == ("", "", SECRET)
    with pytest.raises(InvalidInput, match="neither a base64 secret nor a key"):
        parse_tsig_key("two words")
    with pytest.raises(InvalidInput, match="no key 'missing'"):
        parse_tsig_key('key "a" { secret "eA=="; };', "missing")


def test_refusals_name_the_choices_and_never_the_secret(tmp_path: Path) -> None:
    with pytest.raises(SolverConfigError, match="unknown solver 'route53'; installed solvers:"):
        solver_for(ChallengeConfig(type="dns-01", solver="route53"))
    with pytest.raises(SolverConfigError, match="has no option 'colour'; its options: command"):
        check_config(ChallengeConfig(type="dns-01", solver="hook", options={"colour": "x"}))
    with pytest.raises(SolverConfigError) as caught:
        check_config(rfc2136(server="x", **{"tsig-secret": SECRET}))
    assert SECRET not in str(caught.value)
    assert "tsig-secret=@PATH" in str(caught.value)
    assert "$ACMELITE_DNS_TSIG_SECRET" in str(caught.value)
    with pytest.raises(SolverConfigError, match="answers http-01, not dns-01"):
        check_config(ChallengeConfig(type="dns-01", solver="standalone"))
    with pytest.raises(InvalidInput, match="cannot read option 'tsig-secret'"):
        solver_for(rfc2136(server="x", **{"tsig-secret": f"@{tmp_path / 'none'}"}), environ={})


def test_other_builtins_and_literal_at_sign(tmp_path: Path) -> None:
    hook = solver_for(
        ChallengeConfig(type="dns-01", solver="hook", options={"command": "/bin/hook --flag"}),
        environ={},
    )
    assert isinstance(hook, HookSolver)
    assert hook.command == ("/bin/hook", "--flag")
    standalone = solver_for(ChallengeConfig(), environ={"ACMELITE_HTTP_PORT": "8080"})
    assert isinstance(standalone, StandaloneSolver)
    assert standalone.port == 8080
    with pytest.raises(InvalidInput, match="option port='x' is not a TCP port"):
        solver_for(ChallengeConfig(options={"port": "x"}), environ={})
    webroot = solver_for(
        ChallengeConfig(solver="webroot", options={"path": str(tmp_path)}), environ={}
    )
    assert isinstance(webroot, WebrootSolver)
    literal = solver_for(
        ChallengeConfig(type="dns-01", solver="hook", options={"command": "@@echo"}), environ={}
    )
    assert isinstance(literal, HookSolver)
    assert literal.command == ("@echo",)


def test_absolute_makes_references_and_path_options_absolute(tmp_path: Path) -> None:
    config = ChallengeConfig(solver="webroot", options={"path": "www"}).absolute(
        tmp_path, paths=["path"]
    )
    assert config.options["path"] == str(tmp_path / "www")
    ref = rfc2136(**{"tsig-secret": "@key", "server": "ns1"}).absolute(tmp_path)
    assert ref.options == {"server": "ns1", "tsig-secret": f"@{tmp_path / 'key'}"}


# -- the CLI's flags --------------------------------------------------------------------------


def parse_issue(*argv: str) -> tuple[argparse.Namespace, argparse.ArgumentParser]:
    args = build_parser().parse_args(["issue", "-d", "x.test", *argv])
    return args, args.parser


def test_shorthands_become_options() -> None:
    args, parser = parse_issue(
        "--challenge", "dns-01", "--dns", "rfc2136", "--dns-server", "127.0.0.1:53",
        "--tsig-key-name", "k", "--tsig-secret-file", "key", "--dns-option", "ttl=30",
    )  # fmt: skip
    config, runtime = challenge_config(args, parser)
    assert config == rfc2136(
        server="127.0.0.1:53", ttl="30", **{"tsig-key-name": "k", "tsig-secret": "@key"}
    )
    assert runtime == {}
    args, parser = parse_issue("--webroot", "/srv/www")
    assert challenge_config(args, parser)[0] == ChallengeConfig(
        solver="webroot", options={"path": "/srv/www"}
    )
    # --tsig-secret inline is a value for this run only, never part of the configuration.
    args, parser = parse_issue(
        "--challenge", "dns-01", "--dns", "rfc2136", "--dns-server", "a", "--tsig-secret", SECRET
    )
    config, runtime = challenge_config(args, parser)
    assert SECRET not in repr(config)
    assert runtime == {"ACMELITE_DNS_TSIG_SECRET": SECRET}


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--dns", "rfc2136"], "--dns go with --challenge dns-01, not http-01"),
        (["--challenge", "dns-01"], "--challenge dns-01 needs --dns NAME"),
        (["--challenge", "dns-01", "--dns", "nosuch"], "unknown solver 'nosuch'"),
        (["--challenge", "dns-01", "--dns", "hook", "--dns-server", "x"],
         "--dns-server is not an option of solver 'hook'"),
        (["--challenge", "dns-01", "--dns", "hook", "--dns-option", "tsig-secret=x"],
         "solver 'hook' has no option 'tsig-secret'"),
        (["--challenge", "dns-01", "--dns", "rfc2136", "--dns-option", f"tsig-secret={SECRET}"],
         "is secret and is not taken inline"),
        (["--webroot", "/w", "--http-port", "80"], "--http-port is not an option of solver"),
        (["--http-option", "nope"], "expected KEY=VALUE"),
    ],
)  # fmt: skip
def test_usage_errors_exit_2(
    argv: list[str], expected: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    result = run_cli(["issue", "-d", "x.test", "--out", str(tmp_path / "o"), *argv], capsys)
    assert result.code == 2, result.err
    assert expected in result.err
    assert SECRET not in result.err
    assert not (tmp_path / "o").exists()


def test_plugins_lists_builtins_with_secret_marked(capsys: pytest.CaptureFixture[str]) -> None:
    import json

    result = run_cli(["plugins", "--json"], capsys)
    assert result.code == 0, result.err
    listing = {p["name"]: p for p in json.loads(result.out)["solvers"]}
    assert {"standalone", "webroot", "rfc2136", "hook"} <= set(listing)
    secret = {o["name"]: o["secret"] for o in listing["rfc2136"]["options"]}
    assert secret["tsig-secret"] is True
    assert secret["server"] is False
    text = run_cli(["plugins"], capsys).out
    assert "tsig-secret [required, secret]" in text
