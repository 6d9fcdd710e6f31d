"""The examples in docs/ run against a real Pebble, so they never rot."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from acmelite.testing import PebbleBinaries
from acmelite.testing.pebble import Pebble
from tests.support import verify_chain

DOCS = Path(__file__).resolve().parents[2] / "docs"


def _python_blocks(doc: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", (DOCS / doc).read_text(), flags=re.S)


def test_library_example_issues_a_certificate(pebble: Pebble, tmp_path: Path) -> None:
    example = _python_blocks("library.md")[0]
    env = {
        **os.environ,
        "ACME_DIRECTORY": pebble.directory_url,
        "ACME_CA_BUNDLE": pebble.ca_bundle,
        "HTTP_PORT": str(pebble.http_port),
        "OUT": str(tmp_path / "out"),
    }
    proc = subprocess.run(
        [sys.executable, "-c", example],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "docs.acmelite.test" in proc.stdout
    verify_chain(
        (tmp_path / "out" / "fullchain.pem").read_bytes(), pebble.roots(), "www.docs.acmelite.test"
    )


def test_testing_example_without_pytest_runs(pebble_binaries: PebbleBinaries) -> None:
    (example,) = [b for b in _python_blocks("testing.md") if "with PebbleServer(" in b]
    probe = example + "\nprint('registered', c.account_url)\n"
    env = {**os.environ, "ACMELITE_PEBBLE_BIN": str(pebble_binaries.pebble)}
    proc = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=120,
        check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert re.fullmatch(r"registered https://127\.0\.0\.1:\d+/my-account/\w+\n", proc.stdout)
