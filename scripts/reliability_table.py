"""Render the reliability figures the test suite recorded into docs/reliability.md.

    make reliability                               # runs the suites, then this script
    python scripts/reliability_table.py            # rewrites the generated parts of the doc
    python scripts/reliability_table.py --print    # only prints them

The tests write one ledger per module to .cache/reliability/<suite>.json (tests/reliability.py).
Three parts of docs/reliability.md are generated: the failure messages of the fault tests
(between the ``messages`` markers), the cases of the threat model (``threats``) and the
figures table at the end (between the ``figures`` markers). Exits 1 when a ledger is
missing or any case lost data.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LEDGERS = ROOT / ".cache" / "reliability"
DOC = ROOT / "docs" / "reliability.md"
#: The suites, in table order, with the test module that writes each.
SUITES = {
    "faults": "tests/integration/test_faults.py",
    "crash": "tests/integration/test_crash.py",
    "http01": "tests/integration/test_http01_server.py",
    "parsing": "tests/unit/test_parsing_properties.py",
    "secrets": "tests/integration/test_secrets.py",
    "hostile-ca": "tests/integration/test_hostile_ca.py",
    "probed-host": "tests/integration/test_probed_host.py",
    "local-user": "tests/integration/test_local_user.py",
    "signals": "tests/integration/test_signals.py",
}
#: The threat-model suites (docs/reliability.md, "Threat model"), with who is hostile in each.
THREATS = {
    "hostile-ca": "the CA, or the network with a certificate the client trusts",
    "probed-host": "a stranger on the HTTP-01 port, or a host that check/verify probes",
    "local-user": "a local unprivileged user",
    "signals": "the system stopping the run (SIGTERM, SIGHUP, SIGINT)",
}
COLUMNS = ("injected", "recovered", "failed_cleanly", "bad_inputs", "data_lost")
HEADERS = ("faults injected", "recovered", "failed cleanly", "bad inputs tried", "data lost")


def load() -> tuple[dict[str, dict[str, object]], list[str]]:
    ledgers, missing = {}, []
    for suite in SUITES:
        path = LEDGERS / f"{suite}.json"
        if path.is_file():
            ledgers[suite] = json.loads(path.read_text(encoding="utf-8"))
        else:
            missing.append(suite)
    return ledgers, missing


def _cases(ledger: dict[str, object]) -> list[dict[str, object]]:
    cases = ledger.get("cases", [])
    return [c for c in cases if isinstance(c, dict)] if isinstance(cases, list) else []


def _sum(cases: list[dict[str, object]], column: str) -> int:
    return sum(int(str(c.get(column) or 0)) for c in cases)


def figures(ledgers: dict[str, dict[str, object]]) -> str:
    lines = [
        "| suite | cases | " + " | ".join(HEADERS) + " |",
        "|---|---:|" + "---:|" * len(HEADERS),
    ]
    totals = dict.fromkeys(COLUMNS, 0)
    count = 0
    for suite, module in SUITES.items():
        if suite not in ledgers:
            lines.append(f"| {suite} (`{module}`) | not run |" + " |" * len(HEADERS))
            continue
        cases = _cases(ledgers[suite])
        count += len(cases)
        sums = {column: _sum(cases, column) for column in COLUMNS}
        for column in COLUMNS:
            totals[column] += sums[column]
        cells = " | ".join(str(sums[c]) for c in COLUMNS)
        lines.append(f"| {suite} (`{module}`) | {len(cases)} | {cells} |")
    cells = " | ".join(f"**{totals[c]}**" for c in COLUMNS)
    lines.append(f"| **all** | **{count}** | {cells} |")
    written = [float(str(ledger.get("written", 0))) for ledger in ledgers.values()]
    when = dt.datetime.fromtimestamp(max(written, default=0), dt.timezone.utc)
    lines += [
        "",
        f"Recorded {when:%Y-%m-%d %H:%M} UTC. *Faults injected* counts the faults that fired "
        "(a badNonce on every 3rd request counts each time). *Recovered*: the run succeeded "
        "anyway (for generated objects: parsed to a model; for planted links: replaced). "
        "*Failed cleanly*: one clear error, exit status 1, files untouched (for hostile "
        "requests: an error answer or a close, the server still serving; for generated "
        "objects: refused with an `AcmeliteError`). *Bad inputs tried* counts the hostile "
        "requests, paths, tokens and generated objects. *Data lost* counts cases where a key "
        "and certificate stopped matching, a file outside the output was touched, or a secret "
        "reached the output; it must be 0.",
    ]
    return "\n".join(lines)


def _sanitize(message: str) -> str:
    text = re.sub(r"127\.0\.0\.2:\d+", "ELSEWHERE", message)  # hostile_ca's other host
    text = re.sub(r"https://127\.0\.0\.1:\d+", "https://CA", text)
    text = re.sub(r"127\.0\.0\.1:\d+", "CA", text)
    text = re.sub(r"(/(?:my-order|finalize-order|certZ|authZ|chalZ)/)[\w-]+", r"\1…", text)
    text = re.sub(r"/\S*/out\b", "OUT", text)
    text = re.sub(r"/[^\s']*/pytest-of-[^/\s]+/pytest-\d+/[^/\s']+", "TMP", text)
    return text.removeprefix("acmelite: error: ").replace("|", "\\|")


def messages(ledgers: dict[str, dict[str, object]]) -> str:
    lines = ["| fault | what acmelite says (exit status 1) |", "|---|---|"]
    for suite in ("faults", "crash"):
        for case in _cases(ledgers.get(suite, {})):
            if case.get("failed_cleanly") and case.get("message"):
                lines.append(f"| {case['case']} | {_sanitize(str(case['message']))} |")
    return "\n".join(lines)


def threats(ledgers: dict[str, dict[str, object]]) -> str:
    """One row per threat-model case: who, what was tried, what acmelite said."""
    lines = ["| who is hostile | case | what acmelite did or said |", "|---|---|---|"]
    for suite, who in THREATS.items():
        for case in _cases(ledgers.get(suite, {})):
            said = str(case.get("message") or "")
            if not said:
                said = "data lost" if case.get("data_lost") else _outcome(case)
            lines.append(f"| {who} | {case['case']} | {_sanitize(said)} |")
    return "\n".join(lines)


def _outcome(case: dict[str, object]) -> str:
    if case.get("recovered"):
        return "recovered: the run succeeded"
    if case.get("failed_cleanly"):
        return "refused or stopped cleanly"
    return "(see the test)"


def replace_block(doc: str, name: str, body: str) -> str:
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.DOTALL)
    if not pattern.search(doc):
        raise SystemExit(f"{DOC}: no {begin} ... {end} block")
    return pattern.sub(lambda _: f"{begin}\n{body}\n{end}", doc)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--print", action="store_true", help="print; do not rewrite the doc")
    args = parser.parse_args(argv)
    ledgers, missing = load()
    table, said, threat = figures(ledgers), messages(ledgers), threats(ledgers)
    if args.print:
        print(said + "\n\n" + threat + "\n\n" + table)
    else:
        doc = DOC.read_text(encoding="utf-8")
        doc = replace_block(replace_block(doc, "messages", said), "figures", table)
        doc = replace_block(doc, "threats", threat)
        DOC.write_text(doc, encoding="utf-8")
        print(f"updated {DOC.relative_to(ROOT)}")
    lost = sum(_sum(_cases(ledger), "data_lost") for ledger in ledgers.values())
    for suite in missing:
        print(f"missing: run {SUITES[suite]} first", file=sys.stderr)
    if lost:
        print(f"DATA LOST in {lost} case(s)", file=sys.stderr)
    return 1 if missing or lost else 0


if __name__ == "__main__":
    sys.exit(main())
