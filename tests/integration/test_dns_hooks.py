"""The hook solver: what a hook is told, one hook at a time per zone, batch mode, and a
failed cleanup that makes the run fail (the certificate installed all the same).

The hooks here are small Python scripts; the provider API behind them is the real PowerDNS
of the session (tests/integration/conftest.py), driven by the hook of docs/dns-01.md.
"""

from __future__ import annotations

import itertools
import json
import re
import shlex
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from acmelite.dns.propagation import PropagationSettings
from acmelite.errors import CleanupFailed
from acmelite.solvers.hook import HookSolver
from acmelite.testing.bind import BindServer
from acmelite.testing.dns_conformance import make_dns_task
from acmelite.testing.pebble import PebbleServer
from acmelite.testing.powerdns import PowerDnsServer
from tests.support import issue_argv, run_cli, verify_chain, without_http

DOCS = Path(__file__).resolve().parents[2] / "docs" / "dns-01.md"

#: Writes one JSON line per run: argv, the ACMELITE_DNS_* variables, stdin, start and end.
RECORDER = """
import json, os, sys, time
start = time.monotonic()
data = sys.stdin.read() if len(sys.argv) == 2 else None
time.sleep(float(os.environ.get("HOOK_SLEEP", "0")))
env = {k: v for k, v in os.environ.items() if k.startswith("ACMELITE_DNS_")}
with open(os.environ["HOOK_LOG"], "a") as log:
    log.write(json.dumps({"argv": sys.argv[1:], "env": env, "stdin": data,
                          "start": start, "end": time.monotonic()}) + "\\n")
"""


def doc_example(name: str) -> str:
    text = DOCS.read_text()
    match = re.search(rf"<!-- example: {re.escape(name)} -->\s*```[a-z]*\n(.*?)```", text, re.S)
    assert match, f"no example {name!r} in {DOCS}"
    return match.group(1)


@dataclass
class Recorder:
    command: list[str]
    log: Path

    def __call__(self) -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]


@pytest.fixture
def recorder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Recorder:
    """A hook that records each of its runs (see RECORDER)."""
    script = tmp_path / "recorder.py"
    script.write_text(RECORDER)
    log = tmp_path / "hook.log"
    monkeypatch.setenv("HOOK_LOG", str(log))
    return Recorder([sys.executable, str(script)], log)


def test_the_hook_is_told_the_zone_and_the_ttl(bind: BindServer, recorder: Recorder) -> None:
    task = make_dns_task("*.team-ns.svc.clusterset.local")
    solver = HookSolver(
        recorder.command, ttl=120, propagation=PropagationSettings(timeout=0, resolver=bind.address)
    )
    solver.perform([task])
    solver.cleanup([task])
    record = "_acme-challenge.team-ns.svc.clusterset.local."
    assert [(r["argv"], r["env"]) for r in recorder()] == [
        (
            ["present", record, task.dns01_value],
            {
                "ACMELITE_DNS_ACTION": "present",
                "ACMELITE_DNS_RECORD": record,
                "ACMELITE_DNS_VALUE": task.dns01_value,
                "ACMELITE_DNS_IDENTIFIER": task.name,
                "ACMELITE_DNS_ZONE": "svc.clusterset.local.",
                "ACMELITE_DNS_TTL": "120",
            },
        ),
        (
            ["cleanup", record, task.dns01_value],
            {
                "ACMELITE_DNS_ACTION": "cleanup",
                "ACMELITE_DNS_RECORD": record,
                "ACMELITE_DNS_VALUE": task.dns01_value,
                "ACMELITE_DNS_IDENTIFIER": task.name,
                "ACMELITE_DNS_ZONE": "svc.clusterset.local.",
                "ACMELITE_DNS_TTL": "120",
            },
        ),
    ]


def test_batch_mode_runs_once_per_zone_with_json_on_stdin(
    bind: BindServer, recorder: Recorder
) -> None:
    tasks = [
        make_dns_task(n)
        for n in (
            "example.test",
            "*.example.test",
            "a.example.test",
            "x.acme-dns.test",
            "delegated.example.test",
        )
    ]
    solver = HookSolver(
        recorder.command,
        batch=True,
        propagation=PropagationSettings(timeout=0, resolver=bind.address),
    )
    solver.perform(tasks)
    solver.cleanup(tasks)
    runs = recorder()
    assert sorted((r["argv"][0], r["env"]["ACMELITE_DNS_ZONE"]) for r in runs) == [
        ("cleanup", "acme-dns.test."),
        ("cleanup", "example.test."),
        ("present", "acme-dns.test."),
        ("present", "example.test."),
    ]
    assert all(len(r["argv"]) == 1 and "ACMELITE_DNS_RECORD" not in r["env"] for r in runs)
    present = {
        r["env"]["ACMELITE_DNS_ZONE"]: json.loads(r["stdin"])
        for r in runs
        if r["argv"] == ["present"]
    }
    by_value = {t.dns01_value: t for t in tasks}
    assert sorted(e["value"] for e in present["example.test."]) == sorted(
        t.dns01_value for t in tasks[:3]
    )
    # the delegated name's record is in acme-dns.test, at the end of its CNAME
    assert sorted((e["record"], by_value[e["value"]].name) for e in present["acme-dns.test."]) == [
        ("_acme-challenge.delegated.acme-dns.test.", "delegated.example.test"),
        ("_acme-challenge.x.acme-dns.test.", "x.acme-dns.test"),
    ]
    entry = present["example.test."][0]
    assert set(entry) == {"record", "value", "identifier", "zone", "ttl"}
    assert entry["zone"] == "example.test." and entry["ttl"] == 60


def test_hooks_of_one_zone_run_one_at_a_time_and_zones_at_once(
    bind: BindServer, recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOOK_SLEEP", "0.3")
    names = [
        "a.example.test",
        "b.example.test",
        "*.a.example.test",
        "x.acme-dns.test",
        "y.acme-dns.test",
        "ns1.svc.clusterset.local",
    ]
    solver = HookSolver(
        recorder.command, propagation=PropagationSettings(timeout=0, resolver=bind.address)
    )
    tasks = [make_dns_task(n) for n in names]
    solver.perform(tasks)
    runs = recorder()
    solver.cleanup(tasks)
    by_zone: dict[str, list[tuple[float, float]]] = {}
    for run in runs:
        by_zone.setdefault(run["env"]["ACMELITE_DNS_ZONE"], []).append((run["start"], run["end"]))
    assert sorted(len(v) for v in by_zone.values()) == [1, 2, 3]
    for zone, spans in by_zone.items():
        spans.sort()
        for (_, end), (start, _) in itertools.pairwise(spans):
            assert start >= end, f"two hooks of zone {zone} ran at once"
    firsts = sorted(spans[0] for spans in by_zone.values())
    # the zones started together: each zone's first hook began before another's ended
    assert firsts[-1][0] < firsts[0][1], f"zones ran one after the other: {firsts}"


def test_a_failed_cleanup_names_the_records_left(bind: BindServer, tmp_path: Path) -> None:
    script = tmp_path / "half.py"
    script.write_text(
        "import sys\nif sys.argv[1] == 'cleanup':\n    sys.exit('the API token expired')\n"
    )
    tasks = [make_dns_task("example.test"), make_dns_task("x.acme-dns.test")]
    solver = HookSolver(
        [sys.executable, str(script)],
        propagation=PropagationSettings(timeout=0, resolver=bind.address),
    )
    solver.perform(tasks)
    with pytest.raises(CleanupFailed) as caught:
        solver.cleanup(tasks)
    left = sorted(f'{t.dns01_record} TXT "{t.dns01_value}"' for t in tasks)
    assert sorted(caught.value.records) == left
    assert caught.value.code == "cleanup-failed"
    message = str(caught.value)
    assert "failed (exit status 1): the API token expired" in message
    assert message.endswith(", ".join(caught.value.records))


# -- through the CLI, against Pebble and PowerDNS ---------------------------------------------


def _pdns_hook(tmp_path: Path, powerdns: PowerDnsServer, monkeypatch: pytest.MonkeyPatch) -> Path:
    hook = tmp_path / "pdns-hook.py"
    hook.write_text(doc_example("pdns-hook.py"))
    monkeypatch.setenv("PDNS_API_URL", powerdns.api_url)
    monkeypatch.setenv("PDNS_API_KEY", powerdns.api_key)
    return hook


def _hook_argv(
    pebble: PebbleServer, powerdns: PowerDnsServer, tmp_path: Path, hook: str, *names: str
) -> list[str]:
    return [
        *without_http(issue_argv(pebble, tmp_path, *names)),
        "--challenge",
        "dns-01",
        "--dns",
        "hook",
        "--dns-hook",
        hook,
        "--dns-resolver",
        powerdns.address,
        "--dns-propagation-timeout",
        "10",
    ]


def test_cli_issues_with_the_documented_powerdns_hook_in_batch_mode(
    pebble_factory: Callable[..., PebbleServer],
    powerdns: PowerDnsServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pebble = pebble_factory(dns_server=powerdns.address)
    hook = shlex.join([sys.executable, str(_pdns_hook(tmp_path, powerdns, monkeypatch))])
    names = ["hooked.example.test", "*.hooked.example.test"]
    result = run_cli(
        [*_hook_argv(pebble, powerdns, tmp_path, hook, *names), "--dns-hook-batch"], capsys
    )
    assert result.code == 0, result.err
    verify_chain(
        (tmp_path / "out/fullchain.pem").read_bytes(), pebble.roots(), "a.hooked.example.test"
    )
    stored = json.loads((tmp_path / "out/renewal.json").read_text())
    assert stored["challenge"]["options"]["batch"] == "true"


def test_cli_exits_non_zero_when_cleanup_fails_but_installs_the_certificate(
    pebble_factory: Callable[..., PebbleServer],
    powerdns: PowerDnsServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """So cron mail shows it: exit 1, the records left named; the certificate is there."""
    pebble = pebble_factory(dns_server=powerdns.address)
    real = _pdns_hook(tmp_path, powerdns, monkeypatch)
    broken = tmp_path / "broken-cleanup.py"
    broken.write_text(
        "import os, sys\n"
        "if sys.argv[1] == 'cleanup':\n"
        "    sys.exit('PowerDNS API: 503 maintenance')\n"
        f"os.execv(sys.executable, [sys.executable, {str(real)!r}, *sys.argv[1:]])\n"
    )
    hook = shlex.join([sys.executable, str(broken)])
    try:
        result = run_cli(_hook_argv(pebble, powerdns, tmp_path, hook, "left.example.test"), capsys)
        assert result.code == 1, result.err
        error = result.err.strip().splitlines()[-1]
        assert error.startswith(
            f"acmelite: error: the certificate is installed in {tmp_path / 'out'}, but the"
            " challenge cleanup failed: DNS hook cleanup for _acme-challenge.left.example.test."
            " (left.example.test) failed (exit status 1): PowerDNS API: 503 maintenance; could"
            ' not remove: _acme-challenge.left.example.test. TXT "'
        ), result.err
        verify_chain(
            (tmp_path / "out/fullchain.pem").read_bytes(), pebble.roots(), "left.example.test"
        )
        assert powerdns.txt_values("_acme-challenge.left.example.test")  # really left behind

        renewed = run_cli(["renew", "--force", str(tmp_path / "out")], capsys)
        assert renewed.code == 1, renewed.err
        assert f"{tmp_path / 'out'}: renewed: " in renewed.out
        assert "but the challenge cleanup failed: DNS hook cleanup" in renewed.out
    finally:
        powerdns.delete_txt("_acme-challenge.left.example.test")
