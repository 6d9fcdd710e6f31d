"""Start-up cost: ``acmelite --help`` and building the CLI parser import no heavy library.

requests, cryptography, josepy and dnspython cost about 0.3 s of imports on a small
machine; ``acmelite --help`` builds the whole parser, so a subcommand module that imports
one of them at its top slows it (docs/performance.md, start-up). A run builds only its own
command's parser, the same as the whole parser's (tested here too).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

import acmelite
import acmelite.testing
from acmelite.cli import SUBCOMMANDS, build_parser

HEAVY = ("requests", "urllib3", "cryptography", "josepy", "dns")
#: The commands of ``acmelite`` (the module of ``list`` is ``listing``).
COMMANDS = {"list" if m == "listing" else m for m in SUBCOMMANDS}


def _imported_after(code: str) -> list[str]:
    probe = (
        f"import sys\n{code}\n"
        f"print('HEAVY:', *sorted({{m.split('.')[0] for m in sys.modules}} & {set(HEAVY)!r}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    return out.splitlines()[-1].split()[1:]


@pytest.mark.parametrize(
    "code",
    [
        "import acmelite",
        "import acmelite.cli; acmelite.cli.build_parser()",
        "from acmelite.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass",
        # the pytest plugin is loaded by every pytest run where acmelite is installed
        "import acmelite.testing.pytest_plugin",
        "import acmelite.testing; acmelite.testing.find_pebble; acmelite.testing.ChallTestSrv",
        "from acmelite.testing.__main__ import build_parser; build_parser()",
    ],
)
def test_no_heavy_import_before_it_is_needed(code: str) -> None:
    assert _imported_after(code) == []


def test_first_use_of_a_public_name_imports_its_module() -> None:
    loaded = _imported_after("import acmelite; acmelite.AcmeClient")
    assert {"requests", "cryptography", "josepy"} <= set(loaded)


def test_every_public_name_resolves_and_is_listed() -> None:
    for name in acmelite.__all__:
        assert getattr(acmelite, name) is not None
    assert set(acmelite.__all__) <= set(dir(acmelite))
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        _ = acmelite.Nope  # type: ignore[attr-defined]


def test_star_import_gives_the_public_api() -> None:
    namespace: dict[str, object] = {}
    exec("from acmelite import *", namespace)  # noqa: S102 - the statement under test
    assert {n for n in namespace if not n.startswith("__")} | {"__version__"} == set(
        acmelite.__all__
    )


def test_every_testing_name_resolves_and_is_listed() -> None:
    for name in acmelite.testing.__all__:
        assert getattr(acmelite.testing, name) is not None
    assert set(acmelite.testing.__all__) <= set(dir(acmelite.testing))
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        _ = acmelite.testing.Nope  # type: ignore[attr-defined]


def test_a_command_builds_and_imports_only_its_own_parser(tmp_path: Path) -> None:
    """``acmelite list`` builds the parser of ``list`` alone: the modules of the other
    commands stay unimported, and so does ``importlib.metadata`` (only looking a solver up
    by name needs it, not reading the challenge part of a renewal.json)."""
    code = (
        "import sys\nfrom acmelite.cli import main\n"
        f"assert main(['list', '--all-under', {str(tmp_path)!r}]) == 0\n"
        "print(*sorted(m for m in sys.modules if m.startswith(('acmelite.', 'importlib.m'))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    loaded = set(out.splitlines()[-1].split())
    assert "acmelite.cli.listing" in loaded
    for other in ("issue", "check", "account", "persist", "revoke", "plugins", "completion"):
        assert f"acmelite.cli.{other}" not in loaded
    assert "importlib.metadata" not in loaded


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_a_commands_own_parser_is_the_one_in_the_whole_parser(command: str) -> None:
    """Its help, its options' defaults: the same either way (``build_parser(command)`` is
    what a run uses, ``build_parser()`` what ``--help`` and the completion script use)."""

    def sub(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
        (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        return action.choices[command]  # type: ignore[no-any-return]

    def defaults(parser: argparse.ArgumentParser) -> dict[str, object]:
        return {a.dest: repr(a.default) for a in parser._actions if a.dest != "help"}

    whole, own = sub(build_parser()), sub(build_parser(command))
    assert own.format_help() == whole.format_help()
    assert defaults(own) == defaults(whole)


def test_a_word_that_is_no_command_gets_the_whole_parsers_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["lsit"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'lsit'" in err and "'renew'" in err and "'list'" in err
    from acmelite.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["lsit"])
    assert exit_info.value.code == 2
    assert "'renew'" in capsys.readouterr().err
