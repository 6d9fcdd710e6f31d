"""acmelite against certbot, acme-tiny and lego on the same Pebble, side by side.

    bench/install-peers && python bench/run.py            # everything, ~30 min on 2 cores
    python bench/run.py --scenario single --rounds 3      # one scenario, quicker

For each scenario this starts a Pebble (``acmelite.testing.PebbleServer``) with the
scenario's knobs and the counting TLS proxy (``acmelite.testing.proxy.FaultProxy``) in
front of it, then runs the clients interleaved — A B C D, A B C D, ... — so a slow moment
of a shared machine hits every client alike. Each run is one fresh process tree with a
fresh account; the bench records its wall time, its CPU time (user + sys from
``os.wait4``, which includes every descendant it waited for), its peak RSS, the requests
the proxy counted and whether a certificate for every name came out. Medians and ranges
go to ``--out`` (default ``bench/RESULTS.md``) and every run to ``--json``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import clients
from clients import Invocation, Target

from acmelite.testing import PebbleServer
from acmelite.testing.proxy import Exchange, FaultProxy

#: GNU time starts each client, so its peak RSS is its own: a process forked straight from
#: this one would inherit our high-water mark (Linux keeps ru_maxrss across exec), ~48 MB.
GNU_TIME = "/usr/bin/time" if os.access("/usr/bin/time", os.X_OK) else ""
#: A run slower than this is not repeated (lego on 100 names takes many minutes).
SLOW_RUN = 120.0

Builder = Callable[[Target, Path, Sequence[str]], Invocation]


@dataclass(frozen=True)
class Scenario:
    key: str
    title: str
    names: int
    clients: tuple[str, ...]
    pebble: dict[str, Any] = field(default_factory=dict)
    rounds: int = 5
    certs: int = 0
    timeout: float = 300.0


PEERS = ("certbot", "acme-tiny", "lego")
ALL = ("acmelite-cli", "acmelite-lib", *PEERS)
# Pebble's default nonce rejection (5%) is off except where the scenario is about it, so
# request counts compare like with like. Retry-After: see RETRY_AFTER below.
QUIET: dict[str, Any] = {"nonce_reject": 0}
SCENARIOS = (
    Scenario("single", "1 name, no validation sleep", 1, ALL, dict(QUIET)),
    Scenario("ten", "10 names in one order", 10, ALL, dict(QUIET)),
    Scenario(
        "ten-sleep",
        "10 names, each validation sleeps 0-3 s (PEBBLE_VA_SLEEPTIME=3)",
        10,
        ALL,
        {**QUIET, "va_nosleep": False, "va_sleeptime": 3},
    ),
    Scenario(
        "nonce50",
        "1 name, half of all nonces rejected (PEBBLE_WFE_NONCEREJECT=50)",
        1,
        ALL,
        {"nonce_reject": 50},
    ),
    Scenario("hundred", "100 names in one order", 100, ALL, dict(QUIET), rounds=3, timeout=900.0),
    Scenario(
        "fifty",
        "50 one-name certificates: one process (library, concurrent) vs 50 sequential CLI runs",
        1,
        ("acmelite-lib-concurrent", "acmelite-cli-sequential"),
        dict(QUIET),
        rounds=3,
        certs=50,
        timeout=900.0,
    ),
    Scenario(
        "single-ra1",
        "1 name, Pebble sends Retry-After: 1 on processing orders",
        1,
        ALL,
        {**QUIET, "retry_after_order": 1, "retry_after_authz": 1},
    ),
)
#: Pebble answers a finalize with "processing" and ``Retry-After: <retryAfter.order>`` and
#: issues within milliseconds. acmelite honours Retry-After (RFC 8555 §7.4) and the peers
#: ignore it, so by default the bench runs a Pebble that sends none (0), like a CA that
#: issues at once; ``single-ra1`` shows what the header costs.
RETRY_AFTER: dict[str, Any] = {"retry_after_order": 0, "retry_after_authz": 0}


@dataclass
class Run:
    client: str
    round: int
    ok: bool
    wall: float
    cpu: float
    rss_mb: float
    requests: int
    kinds: dict[str, int]
    exit: int
    note: str = ""


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--scenario",
        action="append",
        choices=[s.key for s in SCENARIOS],
        help="run only these (repeatable; default: all)",
    )
    parser.add_argument("--client", action="append", help="run only these clients")
    parser.add_argument("--rounds", type=int, help="rounds per scenario (default: its own)")
    parser.add_argument(
        "--workers",
        type=int,
        default=8,
        help="concurrent orders of the library in 'fifty' (default 8)",
    )
    parser.add_argument(
        "--help-runs", type=int, default=20, help="runs of `acmelite --help` to time (0: skip)"
    )
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("RESULTS.md"))
    parser.add_argument("--json", type=Path, help="also write every run here")
    parser.add_argument("--keep", action="store_true", help="keep the runs' directories")
    args = parser.parse_args(argv)
    # the Pebble that `make install` put in this checkout, unless told otherwise
    checkout_pebble = clients.PROJECT / ".cache" / "pebble" / "usr" / "bin" / "pebble"
    if checkout_pebble.is_file():
        os.environ.setdefault("ACMELITE_PEBBLE_BIN", str(checkout_pebble))

    gone = clients.missing()
    wanted = set(args.client or ())
    if gone and (not wanted or wanted & set(PEERS)):
        print(f"bench: missing {', '.join(gone)}: run bench/install-peers", file=sys.stderr)
        return 2
    chosen = [s for s in SCENARIOS if not args.scenario or s.key in args.scenario]
    started = time.time()
    machine = describe_machine()
    results: dict[str, list[Run]] = {}
    help_times = time_help(args.help_runs) if args.help_runs else {}
    with tempfile.TemporaryDirectory(prefix="acmelite-bench-") as scratch:
        for scenario in chosen:
            runs = run_scenario(scenario, args, Path(scratch) / scenario.key)
            results[scenario.key] = runs
            print(summary_line(scenario, runs), file=sys.stderr)
            if args.keep:
                keep = Path(tempfile.mkdtemp(prefix=f"acmelite-bench-{scenario.key}-"))
                os.rename(Path(scratch) / scenario.key, keep / "runs")
                print(f"bench: kept {keep}", file=sys.stderr)
    command = "python bench/run.py" + "".join(
        f" {shlex.quote(a)}" for a in (argv if argv is not None else sys.argv[1:])
    )
    report = render(
        machine,
        command,
        chosen,
        results=results,
        help_times=help_times,
        elapsed=time.time() - started,
    )
    args.out.write_text(report + kept_sections(args.out), encoding="utf-8")
    print(f"bench: wrote {args.out}", file=sys.stderr)
    if args.json:
        raw = {
            "machine": machine,
            "command": command,
            "help": help_times,
            "scenarios": {k: [asdict(r) for r in v] for k, v in results.items()},
        }
        args.json.write_text(json.dumps(raw, indent=1), encoding="utf-8")
    return 0


def kept_sections(out: Path) -> str:
    """The section another bench wrote into ``out`` (bench/fleet.py's), to keep."""
    begin, end = "<!-- fleet:begin -->", "<!-- fleet:end -->"
    text = out.read_text(encoding="utf-8") if out.exists() else ""
    if begin not in text or end not in text:
        return ""
    return "\n" + begin + text.split(begin, 1)[1].split(end, 1)[0] + end + "\n"


# -- running ---------------------------------------------------------------------------


def run_scenario(scenario: Scenario, args: argparse.Namespace, work: Path) -> list[Run]:
    names = [f"{'n' if i else 'www'}{i}.{scenario.key}.bench.test" for i in range(scenario.names)]
    client_names = [
        c
        for c in scenario.clients
        if not args.client or c in args.client or _family(c) in args.client
    ]
    rounds = args.rounds or scenario.rounds
    runs: list[Run] = []
    knobs = {**RETRY_AFTER, **scenario.pebble}
    with (
        PebbleServer(**knobs) as pebble,
        FaultProxy(pebble.directory_url, upstream_ca_bundle=pebble.ca_bundle) as proxy,
    ):
        target = Target(proxy.directory_url, proxy.ca_bundle, pebble.http_port)
        skip: set[str] = set()
        for rnd in range(1, rounds + 1):
            for client in client_names:
                if client in skip:
                    continue
                run_dir = work / f"{client}-{rnd}"
                run_dir.mkdir(parents=True)
                run = run_client(
                    client, scenario, target, proxy, run_dir, names=names, rnd=rnd, args=args
                )
                runs.append(run)
                print(
                    f"  {scenario.key} round {rnd} {client}: {'ok' if run.ok else 'FAILED'}"
                    f" {run.wall:.2f} s, cpu {run.cpu:.2f} s, {run.rss_mb:.0f} MB,"
                    f" {run.requests} requests {run.note}",
                    file=sys.stderr,
                )
                if run.wall > SLOW_RUN:
                    skip.add(client)
    return runs


def _family(client: str) -> str:
    return "acmelite" if client.startswith("acmelite") else client


BUILDERS: dict[str, Builder] = {
    "acmelite-cli": clients.acmelite_cli,
    "acmelite-lib": clients.acmelite_lib,
    "certbot": clients.certbot,
    "acme-tiny": clients.acme_tiny,
    "lego": clients.lego,
}


def run_client(
    client: str,
    scenario: Scenario,
    target: Target,
    proxy: FaultProxy,
    work: Path,
    *,
    names: list[str],
    rnd: int,
    args: argparse.Namespace,
) -> Run:
    proxy.reset_counts()
    if client == "acmelite-cli-sequential":
        return run_sequential(scenario, target, proxy, work, names=names, rnd=rnd)
    if client == "acmelite-lib-concurrent":
        inv = clients.acmelite_lib(target, work, names, certs=scenario.certs, workers=args.workers)
        outcome = measure(inv, work, scenario.timeout)
        ok = outcome[0] and all(
            cert_ok(work / "out" / f"cert-{i}" / "cert.pem", [f"cert-{i}.{names[0]}"])
            for i in range(scenario.certs)
        )
        return finish(client, rnd, proxy, ok, outcome)
    inv = BUILDERS[client](target, work, names)
    outcome = measure(inv, work, scenario.timeout)
    return finish(client, rnd, proxy, outcome[0] and cert_ok(inv.cert, names), outcome)


def run_sequential(
    scenario: Scenario, target: Target, proxy: FaultProxy, work: Path, *, names: list[str], rnd: int
) -> Run:
    """``certs`` CLI runs one after the other, one account (as a cron job would)."""
    key = work / "account.key"
    wall = cpu = rss = 0.0
    ok, codes, notes = True, 0, []
    for i in range(scenario.certs):
        one = work / f"cert-{i}"
        one.mkdir()
        name = f"cert-{i}.{names[0]}"
        inv = clients.acmelite_cli(target, one, [name], account_key=key)
        good, w, c, r, code, note = measure(inv, one, scenario.timeout)
        wall, cpu, rss = wall + w, cpu + c, max(rss, r)
        if not (good and cert_ok(inv.cert, [name])):
            ok, codes = False, codes or code or 1
            notes.append(f"cert-{i}: {note}")
    return finish(
        "acmelite-cli-sequential", rnd, proxy, ok, (ok, wall, cpu, rss, codes, "; ".join(notes[:3]))
    )


Outcome = tuple[bool, float, float, float, int, str]


def measure(inv: Invocation, work: Path, timeout: float) -> Outcome:
    """Run one process tree; (exited 0, wall s, user+sys s, peak RSS MB, exit code, note)."""
    with contextlib.ExitStack() as stack:
        for make in inv.around:
            stack.enter_context(make())
        log = stack.enter_context(open(work / "output.log", "wb"))
        rss_file = work / "maxrss-kb"
        argv = [GNU_TIME, "-f", "%M", "-o", str(rss_file), *inv.argv] if GNU_TIME else inv.argv
        begin = time.perf_counter()
        proc = subprocess.Popen(
            argv,
            env=inv.env,
            cwd=work,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        timer = threading.Timer(timeout, _kill_group, (proc.pid,))
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
        wall = time.perf_counter() - begin
        proc.returncode = os.waitstatus_to_exitcode(status)
    cpu = usage.ru_utime + usage.ru_stime
    rss_mb = usage.ru_maxrss / 1024.0
    with contextlib.suppress(OSError, ValueError, IndexError):
        rss_mb = int(rss_file.read_text().split()[-1]) / 1024.0
    note = ""
    if proc.returncode != 0:
        tail = (work / "output.log").read_text(errors="replace").strip().splitlines()
        note = f"exit {proc.returncode}: {tail[-1][:160] if tail else ''}"
        if proc.returncode == -signal.SIGKILL:
            note = f"killed after {timeout:.0f} s"
    return proc.returncode == 0, wall, cpu, rss_mb, proc.returncode, note


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def settled(proxy: FaultProxy) -> list[Exchange]:
    """The proxy's records once no new one comes for 0.1 s: it records a request after
    answering it, so the client may exit a moment before its last request is counted."""
    seen = proxy.requests
    for _ in range(50):
        time.sleep(0.1)
        now = proxy.requests
        if len(now) == len(seen):
            break
        seen = now
    return seen


def finish(client: str, rnd: int, proxy: FaultProxy, ok: bool, outcome: Outcome) -> Run:
    _, wall, cpu, rss, code, note = outcome
    kinds: dict[str, int] = {}
    for exchange in settled(proxy):
        kind = f"{exchange.method} {proxy.kind_of(exchange.path)}"
        kinds[kind] = kinds.get(kind, 0) + 1
    if not ok and not note:
        note = "no certificate with every name"
    return Run(client, rnd, ok, wall, cpu, rss, sum(kinds.values()), kinds, code, note)


def cert_ok(path: Path, names: Sequence[str]) -> bool:
    """The PEM at ``path`` starts with a certificate that names every one of ``names``."""
    from cryptography import x509

    try:
        leaf = x509.load_pem_x509_certificates(path.read_bytes())[0]
        sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (OSError, ValueError, IndexError, x509.ExtensionNotFound):
        return False
    return set(names) <= set(sans.get_values_for_type(x509.DNSName))


def time_help(runs: int) -> dict[str, object]:
    """`acmelite --help` against a bare interpreter start, interleaved; seconds."""
    cases = {
        "acmelite --help": [*clients.acmelite_cli_argv(), "--help"],
        "python -c pass": [sys.executable, "-c", "pass"],
        "python -c 'import acmelite.client'": [sys.executable, "-c", "import acmelite.client"],
    }
    times: dict[str, list[float]] = {k: [] for k in cases}
    for _ in range(runs):
        for label, argv in cases.items():
            begin = time.perf_counter()
            subprocess.run(argv, stdout=subprocess.DEVNULL, check=True)
            times[label].append(time.perf_counter() - begin)
    return {"runs": runs, "argv": cases["acmelite --help"], "times": times}


# -- reporting -------------------------------------------------------------------------


def describe_machine() -> dict[str, str]:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    from acmelite._version import __version__
    from acmelite.testing import find_pebble

    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": str(os.cpu_count()),
        "cpu": cpu,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "acmelite": __version__,
        "pebble": find_pebble().version,
        **clients.versions(),
    }


def _stats(values: list[float]) -> tuple[float, float, float]:
    return statistics.median(values), min(values), max(values)


def cell(values: list[float], fmt: str = "{:.2f}") -> str:
    if not values:
        return "-"
    med, lo, hi = _stats(values)
    if lo == hi:
        return fmt.format(med)
    return f"{fmt.format(med)} ({fmt.format(lo)}-{fmt.format(hi)})"


def by_client(runs: list[Run]) -> dict[str, list[Run]]:
    out: dict[str, list[Run]] = {}
    for run in runs:
        out.setdefault(run.client, []).append(run)
    return out


def median_of(runs: list[Run], attr: str, *, ok_only: bool = True) -> float | None:
    values = [getattr(r, attr) for r in runs if r.ok or not ok_only]
    return statistics.median(values) if values else None


def summary_line(scenario: Scenario, runs: list[Run]) -> str:
    parts = []
    for client, rs in by_client(runs).items():
        wall = median_of(rs, "wall")
        parts.append(f"{client} {wall:.2f} s" if wall is not None else f"{client} failed")
        parts[-1] += f" ({sum(r.ok for r in rs)}/{len(rs)})"
    return f"bench: {scenario.key}: " + ", ".join(parts)


def scenario_table(scenario: Scenario, runs: list[Run]) -> list[str]:
    lines = [
        f"### {scenario.title} (`{scenario.key}`)",
        "",
        "| client | success | wall s | CPU s | peak RSS MB | requests |",
        "|---|---|---|---|---|---|",
    ]
    for client, rs in by_client(runs).items():
        good = [r for r in rs if r.ok] or rs
        lines.append(
            f"| {client} | {sum(r.ok for r in rs)}/{len(rs)} | {cell([r.wall for r in good])}"
            f" | {cell([r.cpu for r in good])} | {cell([r.rss_mb for r in good], '{:.0f}')}"
            f" | {cell([float(r.requests) for r in good], '{:.0f}')} |"
        )
    notes = [f"{r.client} round {r.round}: {r.note}" for r in runs if r.note]
    if notes:
        lines += ["", "Failures: " + "; ".join(notes[:6])]
    lines.append("")
    return lines


def request_kinds(results: dict[str, list[Run]]) -> list[str]:
    """Requests per kind in the first successful run of each client, for single and ten."""
    lines = []
    for key in ("single", "ten"):
        runs = results.get(key)
        if not runs:
            continue
        firsts = {c: next((r for r in rs if r.ok), None) for c, rs in by_client(runs).items()}
        kinds = sorted({k for r in firsts.values() if r for k in r.kinds})
        lines += [
            f"Requests by kind, `{key}` (first successful run of each client):",
            "",
            "| request | " + " | ".join(firsts) + " |",
            "|---" * (len(firsts) + 1) + "|",
        ]
        for kind in kinds:
            row = [str(r.kinds.get(kind, 0)) if r else "-" for r in firsts.values()]
            lines.append(f"| {kind} | " + " | ".join(row) + " |")
        lines.append("")
    return lines


def targets(results: dict[str, list[Run]], help_times: dict[str, object]) -> list[str]:
    """Issue 7's targets, each with the measured ratio and met / NOT met."""
    rows: list[tuple[str, str, bool | None]] = []

    def get(key: str, client: str, attr: str) -> float | None:
        rs = by_client(results.get(key, [])).get(client, [])
        return median_of(rs, attr) if rs else None

    for key, label in (("single", "1 name"), ("ten", "10 names")):
        ours, tiny = get(key, "acmelite-cli", "wall"), get(key, "acme-tiny", "wall")
        if ours is not None and tiny:
            rows.append(
                (
                    f"{label}: wall ≤ 0.5 x acme-tiny's",
                    f"{ours:.2f} s / {tiny:.2f} s = {ours / tiny:.2f}x",
                    ours <= 0.5 * tiny,
                )
            )
        reqs, cb = get(key, "acmelite-cli", "requests"), get(key, "certbot", "requests")
        if reqs is not None and cb:
            rows.append((f"{label}: requests ≤ certbot's", f"{reqs:.0f} vs {cb:.0f}", reqs <= cb))
    ours = get("ten-sleep", "acmelite-cli", "wall")
    peers = {p: get("ten-sleep", p, "wall") for p in PEERS}
    best = min(((v, p) for p, v in peers.items() if v), default=None)
    if ours is not None and best:
        rows.append(
            (
                "10 names, 0-3 s sleeps: wall ≤ 0.9 x best peer's",
                f"{ours:.2f} s / {best[0]:.2f} s ({best[1]}) = {ours / best[0]:.2f}x",
                ours <= 0.9 * best[0],
            )
        )
    for client in ("acmelite-cli", "acmelite-lib"):
        rs = by_client(results.get("nonce50", [])).get(client, [])
        if rs:
            good = sum(r.ok for r in rs)
            rows.append(
                (
                    f"half of nonces rejected: 100 % success ({client})",
                    f"{good}/{len(rs)}",
                    good == len(rs),
                )
            )
    times = help_times.get("times") if help_times else None
    if isinstance(times, dict):
        med = statistics.median(times["acmelite --help"])
        rows.append(("`acmelite --help` < 150 ms", f"{med * 1000:.0f} ms", med < 0.150))
    lib = by_client(results.get("fifty", [])).get("acmelite-lib-concurrent", [])
    seq = by_client(results.get("fifty", [])).get("acmelite-cli-sequential", [])
    lw, sw = median_of(lib, "wall"), median_of(seq, "wall")
    if lw and sw:
        rows.append(
            (
                "50 certificates: one process ≥ 5 x the rate of 50 CLI runs",
                f"{sw:.1f} s / {lw:.1f} s = {sw / lw:.1f}x",
                sw / lw >= 5,
            )
        )
    rss, cb_rss = get("single", "acmelite-cli", "rss_mb"), get("single", "certbot", "rss_mb")
    if rss and cb_rss:
        rows.append(
            ("peak RSS ≤ certbot's (1 name)", f"{rss:.0f} MB vs {cb_rss:.0f} MB", rss <= cb_rss)
        )
    lines = ["| target | measured | met |", "|---|---|---|"]
    for label, value, met in rows:
        lines.append(f"| {label} | {value} | {'yes' if met else '**NO**'} |")
    return lines


def render(
    machine: dict[str, str],
    command: str,
    chosen: Sequence[Scenario],
    *,
    results: dict[str, list[Run]],
    help_times: dict[str, object],
    elapsed: float,
) -> str:
    lines = [
        "# Benchmark results",
        "",
        "Made by `bench/run.py` (see `bench/README.md`), except the analysis at the end.",
        "",
        "## Machine and versions",
        "",
    ]
    lines += [f"- {k}: {v}" for k, v in machine.items()]
    lines += [
        "",
        f"Command: `{command}` ({elapsed / 60:.0f} min)",
        "",
        "Every cell: median (min-max) over the successful runs of that client; "
        "a fresh account and key in every run; requests counted at the TLS proxy in "
        "front of Pebble. CPU is user+sys of the client's whole process tree; peak "
        "RSS is its largest process.",
        "",
        "## Targets (issue 7)",
        "",
    ]
    lines += targets(results, help_times)
    lines += ["", "## Scenarios", ""]
    for scenario in chosen:
        if scenario.key in results:
            knobs = {**RETRY_AFTER, **scenario.pebble}
            lines += scenario_table(scenario, results[scenario.key])
            lines += [f"Pebble: {', '.join(f'{k}={v}' for k, v in knobs.items())}", ""]
    lines += request_kinds(results)
    times = help_times.get("times") if help_times else None
    if isinstance(times, dict):
        lines += [
            "## Start-up",
            "",
            f"{help_times['runs']} runs each, interleaved; ms:",
            "",
            "| command | median (min-max) |",
            "|---|---|",
        ]
        for label, values in times.items():
            lines.append(f"| `{label}` | {cell([v * 1000 for v in values], '{:.0f}')} |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
