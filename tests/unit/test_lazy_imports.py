"""Start-up cost: ``acmelite --help`` and building the CLI parser import no heavy library.

requests, cryptography, josepy and dnspython cost about 0.3 s of imports on a small
machine; every ``acmelite`` command builds the whole parser first, so a subcommand module
that imports one of them at its top slows every command (docs/performance.md, start-up).
"""

from __future__ import annotations

import subprocess
import sys

import pytest

import acmelite
import acmelite.testing

HEAVY = ("requests", "urllib3", "cryptography", "josepy", "dns")


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
