"""The package as an index and its users get it.

The sdist and the wheel are built once per session (``python -m build``, the wheel from the
sdist, so the sdist is known to be complete), checked with ``twine check --strict``, and the
wheel is installed into a fresh virtualenv — offline: its dependencies come from wheels of the
test environment's own packages (``tests/wheelhouse.py``), never from an index. That
virtualenv then runs ``acmelite`` and, in a separate temporary project that has only the wheel
and pytest, the complete example test file of docs/testing.md against a real Pebble and BIND.
"""

from __future__ import annotations

import configparser
import email.parser
import json
import os
import re
import subprocess
import sys
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

import acmelite
from acmelite.testing import BindNotFound, PebbleBinaries, find_named
from acmelite.testing.pytest_plugin import server_missing
from tests.wheelhouse import wheelhouse

ROOT = Path(__file__).resolve().parents[2]
VERSION = acmelite.__version__
RUNTIME = ("josepy", "cryptography", "requests", "dnspython")


@dataclass(frozen=True)
class Built:
    sdist: Path
    wheel: Path
    venv: Path

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"


def run(args: list[str | Path], *, timeout: float = 300, **kwargs: object) -> str:
    proc = subprocess.run(
        [str(a) for a in args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        **kwargs,  # type: ignore[arg-type]
    )
    assert proc.returncode == 0, f"{args} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def offline_env() -> dict[str, str]:
    """This environment without pip's configuration and with no index at all."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_") and k != "PYTHONPATH"}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
    return env


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    scratch = tmp_path_factory.mktemp("packaging")
    dist = scratch / "dist"
    run([sys.executable, "-m", "build", "--no-isolation", "--outdir", dist, ROOT])
    (sdist,) = dist.glob("*.tar.gz")
    (wheel,) = dist.glob("*.whl")
    house = scratch / "wheelhouse"
    wheelhouse([*RUNTIME, "pytest"], house)
    venv = scratch / "venv"
    run([sys.executable, "-m", "venv", venv])
    pip = [venv / "bin" / "python", "-m", "pip", "install", "-q", "--find-links", house]
    run([*pip, wheel, "pytest"], env=offline_env())
    return Built(sdist=sdist, wheel=wheel, venv=venv)


def wheel_metadata(wheel: Path) -> email.message.Message:
    with zipfile.ZipFile(wheel) as archive:
        text = archive.read(f"acmelite-{VERSION}.dist-info/METADATA").decode()
    return email.parser.Parser().parsestr(text)


def test_twine_check_passes(built: Built) -> None:
    out = run([sys.executable, "-m", "twine", "check", "--strict", built.sdist, built.wheel])

    assert out.count("PASSED") == 2, out


def test_wheel_has_the_package_typed_and_licensed_and_nothing_else(built: Built) -> None:
    with zipfile.ZipFile(built.wheel) as archive:
        names = archive.namelist()

    assert "acmelite/py.typed" in names
    assert f"acmelite-{VERSION}.dist-info/licenses/LICENSE" in names
    assert "acmelite/testing/pytest_plugin.py" in names
    tops = {n.split("/")[0] for n in names}
    assert tops == {"acmelite", f"acmelite-{VERSION}.dist-info"}
    assert not [n for n in names if re.search(r"(^|/)(tests?|bench)(/|_[^/]*\.py$)", n)]
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]


def test_wheel_metadata_is_complete(built: Built) -> None:
    meta = wheel_metadata(built.wheel)

    assert meta["Version"] == VERSION
    assert meta["License-Expression"] == "Apache-2.0"
    assert meta["Requires-Python"] == ">=3.10"
    assert meta["Description-Content-Type"] == "text/markdown"
    urls = dict(u.split(", ", 1) for u in meta.get_all("Project-URL", []))
    assert set(urls) == {"Documentation", "Changelog", "Source", "Issues"}
    classifiers = set(meta.get_all("Classifier", []))
    for expected in (
        *(f"Programming Language :: Python :: 3.{minor}" for minor in range(10, 14)),
        "Operating System :: POSIX",
        "Environment :: Console",
        "Intended Audience :: System Administrators",
        "Intended Audience :: Developers",
        "Topic :: Internet :: WWW/HTTP",
        "Topic :: Security",
    ):
        assert expected in classifiers
    assert any(c.startswith("Development Status :: ") for c in classifiers)
    runtime = [r for r in meta.get_all("Requires-Dist", []) if "extra ==" not in r]
    assert sorted(re.split(r"[<>=!~ ]", r)[0] for r in runtime) == sorted(RUNTIME)


def test_readme_on_the_index_has_no_relative_link(built: Built) -> None:
    description = wheel_metadata(built.wheel).get_payload()
    assert isinstance(description, str)
    links = re.findall(r"\]\(([^)]+)\)", description)

    assert links, "the README links to the docs"
    relative = [link for link in links if not re.match(r"https?://|#", link)]
    assert relative == []
    source = dict(u.split(", ", 1) for u in wheel_metadata(built.wheel).get_all("Project-URL", []))[
        "Source"
    ]
    for link in links:
        if link.startswith(f"{source}/blob/main/"):
            path = link.removeprefix(f"{source}/blob/main/").split("#")[0]
            assert (ROOT / path).exists(), f"the README links to a missing file: {link}"


def test_sdist_has_what_a_rebuild_and_its_tests_need(built: Built) -> None:
    with tarfile.open(built.sdist) as archive:
        names = {n.split("/", 1)[1] for n in archive.getnames() if "/" in n}

    for expected in ("LICENSE", "README.md", "CHANGELOG.md", "pyproject.toml",
                     "acmelite/py.typed", "docs/testing.md", "tests/conftest.py"):  # fmt: skip
        assert expected in names
    assert not [n for n in names if n.startswith((".cache/", ".venv/", "demo-output/"))]


def test_installed_wheel_runs_lists_its_solvers_and_exports_its_names(built: Built) -> None:
    version = run([built.venv / "bin" / "acmelite", "--version"], env=offline_env())
    probe = (
        "import acmelite, acmelite.testing\n"
        "for module in (acmelite, acmelite.testing):\n"
        "    for name in module.__all__:\n"
        "        assert getattr(module, name) is not None, name\n"
        "print(acmelite.__file__)\n"
    )
    where = run([built.python, "-c", probe], env=offline_env(), cwd=built.venv)

    plugins = run([built.venv / "bin" / "acmelite", "plugins", "--json"], env=offline_env())

    assert version.strip() == f"acmelite {VERSION}"
    assert Path(where.strip()).is_relative_to(built.venv)
    listing = json.loads(plugins)
    assert listing["ok"] is True
    solvers = {p["name"]: p for p in listing["solvers"]}
    entry_points = configparser.ConfigParser()
    with zipfile.ZipFile(built.wheel) as archive:
        entry_points.read_string(
            archive.read(f"acmelite-{VERSION}.dist-info/entry_points.txt").decode()
        )
    assert set(solvers) == set(entry_points["acmelite.solvers"]) >= {"standalone", "rfc2136"}
    assert entry_points["pytest11"]["acmelite"] == "acmelite.testing.pytest_plugin"
    assert {p["distribution"] for p in solvers.values()} == {"acmelite"}


def test_docs_example_runs_in_a_project_that_only_installed_the_wheel(
    built: Built, tmp_path: Path, request: pytest.FixtureRequest, pebble_binaries: PebbleBinaries
) -> None:
    try:
        find_named()
    except BindNotFound as exc:
        server_missing(request.config, "bind", str(exc))
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "docs" / "testing.md").read_text(), re.S)
    project = tmp_path / "their-project"
    (project / "tests").mkdir(parents=True)
    (project / "tests" / "test_provisioning.py").write_text(blocks[0])
    (project / "pyproject.toml").write_text(
        '[tool.pytest.ini_options]\naddopts = "--strict-markers"\nfilterwarnings = ["error"]\n'
    )
    env = {**offline_env(), "ACMELITE_PEBBLE_BIN": str(pebble_binaries.pebble)}
    env.pop("ACMELITE_TEST_PEBBLE_URL", None)

    out = run(
        [built.python, "-m", "pytest", "-p", "no:cacheprovider", "-v",
         "--acme-require-pebble", "--acme-require-bind"],
        env=env, cwd=project, timeout=240,
    )  # fmt: skip

    assert f"plugins: acmelite-{VERSION}" in out
    assert re.search(r"\b4 passed\b", out), out
    for test in ("verifiable_certificate", "cannot_be_validated", "external_account", "dns01"):
        assert re.search(rf"test_\w*{test}\w* PASSED", out), test
