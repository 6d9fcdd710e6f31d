"""A third-party solver plugin, end to end, as a user would install and use one.

The plugin is docs/library.md's example: its ``pyproject.toml`` and module are written to a
separate project, built and installed into a fresh virtualenv (beside the acmelite under
test), and then ``acmelite plugins``, ``acmelite issue --dns exampledns --dns-option ...`` and
``acmelite renew --force`` run as processes of that virtualenv against Pebble and the
suite's BIND — the plugin updates BIND by RFC 2136 itself, with a secret option.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from acmelite.testing.bind import BindServer
from acmelite.testing.pebble import PebbleServer
from tests.support import CliResult, verify_chain

DOCS = Path(__file__).resolve().parents[2] / "docs"


def doc_example(name: str) -> str:
    text = (DOCS / "library.md").read_text()
    match = re.search(rf"<!-- example: {re.escape(name)} -->\s*```[a-z]*\n(.*?)```", text, re.S)
    assert match, f"no example {name!r} in docs/library.md"
    return match.group(1)


@pytest.fixture(scope="module")
def plugin_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The python of a virtualenv holding the plugin, and (by a .pth) this acmelite."""
    root = tmp_path_factory.mktemp("plugin")
    project = root / "acmelite-exampledns"
    project.mkdir()
    (project / "pyproject.toml").write_text(doc_example("plugin pyproject.toml"))
    (project / "acmelite_exampledns.py").write_text(doc_example("plugin acmelite_exampledns.py"))
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True,
                   timeout=120)  # fmt: skip
    python = venv / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout.strip()  # fmt: skip
    # The acmelite under test, its dependencies, pip and setuptools: this interpreter's
    # site directories, processed as site directories (so an editable install works).
    parents = [p for p in sys.path if p.endswith("site-packages") and os.path.isdir(p)]
    lines = [f"import site; site.addsitedir({p!r})" for p in parents]
    Path(purelib, "_acmelite_under_test.pth").write_text("\n".join(lines) + "\n")
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "--no-deps", "--no-build-isolation",
         "--disable-pip-version-check", "--no-index", "-q", str(project)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert install.returncode == 0, install.stderr
    assert list(Path(purelib).glob("acmelite_exampledns-1.0.dist-info"))
    return python


def acmelite(python: Path, *argv: str, env: dict[str, str] | None = None) -> CliResult:
    proc = subprocess.run(
        [str(python), "-m", "acmelite", *argv], capture_output=True, text=True, timeout=180,
        env={**os.environ, **(env or {})}, check=False,
    )  # fmt: skip
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


def test_plugins_lists_the_third_party_solver(plugin_python: Path) -> None:
    result = acmelite(plugin_python, "plugins", "--json")
    assert result.code == 0, result.err
    listing = {p["name"]: p for p in json.loads(result.out)["solvers"]}
    plugin = listing["exampledns"]
    assert plugin["distribution"] == "acmelite-exampledns"
    assert plugin["challenge_type"] == "dns-01"
    options = {o["name"]: o for o in plugin["options"]}
    assert options["key-secret"]["secret"] is True and options["key-secret"]["required"] is True
    assert {"standalone", "webroot", "rfc2136", "hook"} <= set(listing)
    text = acmelite(plugin_python, "plugins").out
    assert "exampledns  dns-01  from acmelite-exampledns" in text
    # The acmelite outside that virtualenv does not know it: a usage error listing the solvers.
    outside = subprocess.run(
        [sys.executable, "-m", "acmelite", "issue", "-d", "x.test", "--out", "/nonexistent/x",
         "--challenge", "dns-01", "--dns", "exampledns"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert outside.returncode == 2
    assert (
        "unknown solver 'exampledns'; installed solvers: hook, lexicon, persist, powerdns, rfc2136"
    ) in outside.stderr


def test_issue_and_renew_with_the_plugin(
    plugin_python: Path,
    pebble_factory: Callable[..., PebbleServer],
    bind: BindServer,
    tmp_path: Path,
) -> None:
    pebble = pebble_factory(dns_server=bind.address)
    secret_file = tmp_path / "tsig.secret"
    secret_file.write_text(bind.key_secret + "\n")
    out = tmp_path / "out"
    base = [
        "issue", "-d", "plugin.example.test", "-d", "*.plugin.example.test",
        "--server", pebble.directory_url, "--ca-bundle", pebble.ca_bundle, "--agree-tos",
        "--account-key", str(tmp_path / "account.key"), "--out", str(out),
        "--challenge", "dns-01", "--dns", "exampledns",
        "--dns-option", f"server={bind.address}", "--dns-option", "zone=example.test",
        "--dns-option", f"key-name={bind.key_name}",
    ]  # fmt: skip
    inline = acmelite(plugin_python, *base, "--dns-option", f"key-secret={bind.key_secret}")
    assert inline.code == 2, inline.err
    assert "key-secret=@PATH" in inline.err and "$ACMELITE_DNS_KEY_SECRET" in inline.err
    assert bind.key_secret not in inline.err and not out.exists()
    missing = acmelite(plugin_python, *base, env={"ACMELITE_DNS_KEY_SECRET": ""})
    assert missing.code == 2 and "needs option 'key-secret'" in missing.err

    issued = acmelite(plugin_python, *base, "--dns-option", f"key-secret=@{secret_file}")
    assert issued.code == 0, issued.err
    verify_chain((out / "fullchain.pem").read_bytes(), pebble.roots(), "api.plugin.example.test")
    config = json.loads((out / "renewal.json").read_text())
    assert config["challenge"] == {
        "type": "dns-01",
        "solver": "exampledns",
        "options": {
            "key-name": bind.key_name,
            "key-secret": f"@{secret_file}",
            "server": bind.address,
            "zone": "example.test",
        },
    }
    assert bind.key_secret not in (out / "renewal.json").read_text()
    before = (out / "cert.pem").read_bytes()

    renewed = acmelite(plugin_python, "renew", "--force", "--json", str(out))
    assert renewed.code == 3, renewed.err
    assert json.loads(renewed.out)["certificates"][0]["status"] == "renewed"
    assert (out / "cert.pem").read_bytes() != before
    # The secret may come from the environment instead of a file, for this run only.
    env_run = acmelite(
        plugin_python, *base, "--out", str(tmp_path / "env-out"),
        env={"ACMELITE_DNS_KEY_SECRET": bind.key_secret},
    )  # fmt: skip
    assert env_run.code == 0, env_run.err
    stored = json.loads((tmp_path / "env-out" / "renewal.json").read_text())
    assert "key-secret" not in stored["challenge"]["options"]
    for result in (inline, missing, issued, renewed, env_run):
        assert bind.key_secret not in result.out + result.err


def test_the_plugin_answers_dns_account_01_and_publishes_persist_records(
    plugin_python: Path,
    pebble_factory: Callable[..., PebbleServer],
    bind: BindServer,
    tmp_path: Path,
) -> None:
    """A plugin written for dns-01 (it uses ``task.dns01_record``/``dns01_value``) works for
    the other DNS challenge types: the task names the record."""
    pebble = pebble_factory(dns_server=bind.address)
    secret_file = tmp_path / "tsig.secret"
    secret_file.write_text(bind.key_secret + "\n")
    account = ["--server", pebble.directory_url, "--ca-bundle", pebble.ca_bundle, "--agree-tos",
               "--account-key", str(tmp_path / "account.key")]  # fmt: skip
    plugin = [
        "--dns", "exampledns", "--dns-option", f"server={bind.address}",
        "--dns-option", "zone=example.test", "--dns-option", f"key-name={bind.key_name}",
        "--dns-option", f"key-secret=@{secret_file}",
    ]  # fmt: skip
    argv = ["issue", "-d", "*.plugin-acct.example.test", *account, "--out",
            str(tmp_path / "out"), "--challenge", "dns-account-01", *plugin]  # fmt: skip
    issued = acmelite(plugin_python, *argv)
    assert issued.code == 0, issued.err
    verify_chain((tmp_path / "out" / "fullchain.pem").read_bytes(), pebble.roots(),
                 "api.plugin-acct.example.test")  # fmt: skip
    record = "_validation-persist.plugin-persist.example.test"
    try:
        published = acmelite(plugin_python, "persist", "publish", "-d",
                             "plugin-persist.example.test", *account, *plugin)  # fmt: skip
        assert published.code == 0, published.err
        (value,) = bind.txt_values(record)
        assert value.startswith("pebble.letsencrypt.org; accounturi=https://127.0.0.1:")
        persisted = acmelite(plugin_python, "issue", "-d", "plugin-persist.example.test",
                             *account, "--out", str(tmp_path / "persisted"),
                             "--challenge", "dns-persist-01",
                             "--persist-option", f"lookup-server={bind.address}",
                             "--persist-option", f"nameserver-port={bind.port}")  # fmt: skip
        assert persisted.code == 0, persisted.err
    finally:
        bind.delete_txt(record)
