"""docs/renewal.md and docs/kubernetes.md on fleets stay true: the alert rules use metrics
acmelite writes, the units shown are the shipped ones, every documented command line parses.

(The Python example of renewal.md runs against Pebble in tests/integration/test_fleet.py.)
"""

from __future__ import annotations

import datetime as dt
import re
import shlex
from pathlib import Path

import pytest

from acmelite import metrics
from acmelite.cli import build_parser
from acmelite.fleet import FleetReport
from acmelite.inventory import CertificateRecord
from acmelite.models import RenewalInfo

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
COMMANDS = ("issue", "renew", "list", "check", "account", "revoke", "plugins", "completion")


def blocks(doc: str, lang: str) -> list[str]:
    """The fenced blocks of ``doc`` whose info string is ``lang`` ("" for bare fences)."""
    found, current, info = [], [], None
    for line in (DOCS / doc).read_text().splitlines(keepends=True):
        if line.startswith("```"):
            if info is None:
                info, current = line[3:].strip(), []
            else:
                if info == lang:
                    found.append("".join(current))
                info = None
        elif info is not None:
            current.append(line)
    return found


def written_metric_names() -> set[str]:
    """Every metric name acmelite writes, from a file with every sample present."""
    now = dt.datetime.now(dt.timezone.utc)
    rec = CertificateRecord(
        path=Path("/c"), status="not-due", names=("a.test",), not_before=now, not_after=now,
        window=RenewalInfo(start=now, end=now), renew_at=now, last_renewal=now,
        next_attempt=now, failures=1, deploy_pending=True,
    )  # fmt: skip
    report = FleetReport(results=(), started=now, finished=now)
    text = metrics.render([rec], report=report)
    return {line.split()[2] for line in text.splitlines() if line.startswith("# TYPE")}


def test_alert_rules_use_only_metrics_acmelite_writes() -> None:
    yaml = pytest.importorskip("yaml")
    (rules_text,) = [b for b in blocks("renewal.md", "yaml") if "alert:" in b]
    rules = yaml.safe_load(rules_text)["groups"][0]["rules"]
    assert len(rules) >= 4
    written = written_metric_names()
    used = set()
    for rule in rules:
        assert {"alert", "expr", "annotations"} <= set(rule)
        used |= set(re.findall(r"acmelite_[a-z_]+", rule["expr"]))
    assert used and used <= written, used - written
    assert "acmelite_certificate_not_after_seconds" in used
    assert "acmelite_run_timestamp_seconds" in used


def test_the_units_shown_are_the_shipped_ones() -> None:
    shown = blocks("renewal.md", "ini")
    for unit in ("acmelite-renew.service", "acmelite-renew.timer"):
        assert (ROOT / "contrib" / "systemd" / unit).read_text() in shown, unit


def _argv(line: str) -> list[str]:
    """The arguments after the ``acmelite`` that runs a subcommand (cron lines name the
    user first)."""
    words = shlex.split(line)
    if "|" in words:  # `acmelite list --json ... | jq ...`
        words = words[: words.index("|")]
    start = max(i for i, w in enumerate(words[:-1]) if w == "acmelite" and words[i + 1] in COMMANDS)
    return words[start + 1 :]


def test_documented_command_lines_parse() -> None:
    parser = build_parser()
    lines = [
        line
        for block in blocks("renewal.md", "")
        for line in block.splitlines()
        if re.match(r"^\S+ \* \* \* \*|^0 8 \* \* \*", line)
    ]
    assert any(" list " in line for line in lines) and any(" renew " in line for line in lines)
    for line in lines:
        args = parser.parse_args(_argv(line))
        assert args.command in ("list", "renew")
    console = [
        line[2:]
        for block in blocks("renewal.md", "console")
        for line in block.splitlines()
        if line.startswith(("$ acmelite renew ", "$ acmelite list ")) and not line.endswith("\\")
    ]
    assert any("--max-orders" in c for c in console)
    for line in console:
        parser.parse_args(_argv(line.split(";")[0]))


def test_the_cronjob_writes_and_pushes_metrics() -> None:
    yaml = pytest.importorskip("yaml")
    docs = [d for block in blocks("kubernetes.md", "yaml") for d in yaml.safe_load_all(block)]
    cronjob = next(d for d in docs if d["kind"] == "CronJob")
    assert cronjob["spec"]["concurrencyPolicy"] == "Forbid"
    (container,) = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    script = container["args"][0]
    renew = script[script.index("acmelite renew") :].split("status=$?")[0].replace("\\\n", " ")
    args = build_parser().parse_args(shlex.split(renew)[1:])
    assert args.metrics_file == Path("/var/lib/acmelite/metrics/acmelite.prom")
    assert args.concurrency == 4 and args.max_orders == 90
    assert "mkdir -p /var/lib/acmelite/metrics" in script
    push = script[script.index("python3 -c ") :].split("' \\")[0]
    code = shlex.split(push + "'")[2]
    compile(code, "push", "exec")  # the one-line push is valid Python
