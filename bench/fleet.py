"""Fleet-scale figures (issue 17): a tree of certificate directories from a local Pebble.

    python bench/fleet.py                    # everything, ~15 min on 2 cores
    python bench/fleet.py --skip-certbot     # without the certbot comparison
    python bench/fleet.py --dirs 50 --due 20 --lineages 5 --list-dirs 200 --rounds 2  # a smoke run

What it measures, each run a fresh process started through GNU time (wall, user+sys CPU,
peak RSS of the process, as ``bench/run.py`` does):

``nodue``
    ``acmelite renew -q --all-under TREE`` over ``--dirs`` directories (default 1,000)
    with nothing due and every ARI answer stored: requests counted at the TLS proxy in
    front of Pebble (the tree's ``renewal.json`` names the proxy), which must be 0; and
    the same over the first 100 directories, for peak RSS against tree size.
``due``
    ``--due`` directories (default 200) whose ARI windows Pebble's management interface
    moved into the past (a mass revocation): one ``renew --all-under --concurrency 8``
    against the same number of sequential ``acmelite renew DIR`` runs, the windows moved
    again before each. Requests come from the run's own ``--metrics-file``.
``certbot``
    ``certbot renew --force-renewal`` over ``--lineages`` lineages (default 100: one made
    by ``certbot certonly``, the others copies of it under their own names) against
    ``acmelite renew --force --concurrency 8`` over as many directories.
``list``
    ``acmelite list --all-under`` over ``--list-dirs`` directories (default 10,000: the
    ``nodue`` tree copied): without the tree's index (the first list), then with it, text
    and ``--json``.

The results replace the fleet section of ``--out`` (default ``bench/RESULTS.md``, between
``<!-- fleet:begin -->`` and ``<!-- fleet:end -->``; ``bench/run.py`` keeps that section).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import clients
import requests
from clients import Invocation
from run import describe_machine, measure

from acmelite import AcmeliteError
from acmelite.account_store import AccountStore
from acmelite.config import CertificateConfig, save_config
from acmelite.index import INDEX_FILE, RACY_SECONDS
from acmelite.managed import save_state
from acmelite.renewal import RenewalState
from acmelite.solvers.http01 import StandaloneSolver
from acmelite.solvers.registry import ChallengeConfig
from acmelite.testing import PebbleServer
from acmelite.testing.proxy import FaultProxy

BEGIN, END = "<!-- fleet:begin -->", "<!-- fleet:end -->"
QUIET = {"nonce_reject": 0, "retry_after_order": 0, "retry_after_authz": 0}
TIMEOUT = 1800.0


def log(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


# -- building trees --------------------------------------------------------------------------


def build_tree(
    server: str, ca_bundle: str, http_port: int, root: Path, count: int, *, label: str
) -> list[Path]:
    """``count`` certificate directories ``root/team-<t>/svc-<i>`` (100 per team), issued
    with one client and 8 concurrent orders, laid out as ``ManagedCertificate.create``
    does (files, renewal.json, state)."""
    key = root.parent / f"{label}-account.key"
    store = AccountStore(key)
    solver = StandaloneSolver(port=http_port, address="127.0.0.1")
    challenge = ChallengeConfig(
        solver="standalone", options={"port": str(http_port), "address": "127.0.0.1"}
    )
    dirs = [root / f"team-{i // 100:02d}" / f"svc-{i:05d}" for i in range(count)]
    names = [f"svc-{i}.{label}.fleet.bench.test" for i in range(count)]
    client = store.client(server, ca_bundle=ca_bundle, agree_tos=True)
    client.max_concurrency = 8
    todo = list(range(count))
    now = dt.datetime.now(dt.timezone.utc)
    try:
        for attempt in range(3):
            orders = [{"names": [names[i]], "solver": solver, "profile": "default"} for i in todo]
            results = client.issue_many(orders, max_workers=8)
            failed = []
            for i, result in zip(todo, results, strict=True):
                if isinstance(result, AcmeliteError):
                    failed.append(i)
                    continue
                result.write(dirs[i])
                config = CertificateConfig(
                    names=(names[i],),
                    server=server,
                    ca_bundle=ca_bundle,
                    account_key=str(key),
                    challenge=challenge,
                    profile="default",
                )
                save_config(dirs[i], config)
                save_state(dirs[i], RenewalState(last_renewal=now))
            todo = failed
            if not todo:
                break
            log(f"  {label}: {len(todo)} order(s) failed; attempt {attempt + 2}")
    finally:
        client.close()
    if todo:
        raise SystemExit(f"bench: {len(todo)} certificates could not be issued for {label}")
    return dirs


def move_windows_to_the_past(pebble: PebbleServer, dirs: Sequence[Path]) -> None:
    """Pebble answers a window that ended an hour ago for each directory's certificate, and
    the stored ARI answer is dropped (as after the CA's Retry-After)."""
    now = dt.datetime.now(dt.timezone.utc)
    window = {
        "start": (now - dt.timedelta(hours=2)).isoformat(),
        "end": (now - dt.timedelta(hours=1)).isoformat(),
    }
    with requests.Session() as session:
        session.trust_env = False
        for d in dirs:
            body = {
                "Certificate": (d / "cert.pem").read_text(),
                "ARIResponse": json.dumps({"suggestedWindow": window}),
            }
            resp = session.post(
                f"{pebble.management_url}/set-renewal-info/",
                data=json.dumps(body),
                verify=pebble.ca_bundle,
                timeout=30,
            )
            resp.raise_for_status()
            save_state(d, RenewalState(last_renewal=now))


# -- running -----------------------------------------------------------------------------------


def acmelite(*args: str) -> list[str]:
    return [*clients.acmelite_cli_argv(), *args]


def run(argv: list[str], work: Path, *, env: dict[str, str] | None = None) -> dict[str, object]:
    work.mkdir(parents=True, exist_ok=True)
    inv = Invocation(argv, env or clients.base_env(), work / "unused")
    _, wall, cpu, rss, code, note = measure(inv, work, TIMEOUT)
    return {
        "wall": wall,
        "cpu": cpu,
        "rss_mb": rss,
        "exit": code,
        "note": note,
        "output": (work / "output.log").read_text(errors="replace"),
    }


def median(runs: Sequence[dict[str, object]], key: str) -> float:
    return statistics.median(float(r[key]) for r in runs)  # type: ignore[arg-type]


def span(runs: Sequence[dict[str, object]], key: str, fmt: str = "{:.2f}") -> str:
    values = [float(r[key]) for r in runs]  # type: ignore[arg-type]
    med = statistics.median(values)
    if len(values) == 1:
        return fmt.format(med)
    return f"{fmt.format(med)} ({fmt.format(min(values))}-{fmt.format(max(values))})"


def requests_from_metrics(path: Path) -> dict[str, int]:
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(path.read_text()):
        if family.name == "acmelite_acme_requests":
            return {s.labels["endpoint"]: int(s.value) for s in family.samples if s.value}
    return {}


def certificates_renewed(path: Path) -> int:
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(path.read_text()):
        if family.name == "acmelite_run_certificates":
            return sum(int(s.value) for s in family.samples if s.labels["result"] == "renewed")
    return 0


# -- certbot -----------------------------------------------------------------------------------


def certbot_lineages(pebble: PebbleServer, work: Path, count: int) -> list[str]:
    """One lineage from ``certbot certonly``, copied ``count - 1`` times under new names."""
    config, name = work / "config", "lineage-0.certbot.fleet.bench.test"
    argv = [
        str(clients.VENV / "bin" / "certbot"),
        "certonly",
        "--standalone",
        "--non-interactive",
        "--quiet",
        "--agree-tos",
        "--register-unsafely-without-email",
        "--key-type",
        "ecdsa",
        "--server",
        pebble.directory_url,
        "--http-01-port",
        str(pebble.http_port),
        "--http-01-address",
        "127.0.0.1",
        "--config-dir",
        str(config),
        "--work-dir",
        str(work / "work"),
        "--logs-dir",
        str(work / "logs"),
        "-d",
        name,
    ]
    env = {**clients.base_env(), "REQUESTS_CA_BUNDLE": pebble.ca_bundle}
    subprocess.run(argv, env=env, check=True, timeout=300, stdin=subprocess.DEVNULL)
    conf = (config / "renewal" / f"{name}.conf").read_text()
    names = [name]
    for i in range(1, count):
        copy = f"lineage-{i}.certbot.fleet.bench.test"
        shutil.copytree(config / "archive" / name, config / "archive" / copy)
        live = config / "live" / copy
        live.mkdir(parents=True)
        for part in ("cert", "chain", "fullchain", "privkey"):
            (live / f"{part}.pem").symlink_to(f"../../archive/{copy}/{part}1.pem")
        (config / "renewal" / f"{copy}.conf").write_text(conf.replace(name, copy))
        names.append(copy)
    return names


def certbot_renew(pebble: PebbleServer, work: Path) -> list[str]:
    return [
        str(clients.VENV / "bin" / "certbot"),
        "renew",
        "--force-renewal",
        "--non-interactive",
        "--quiet",
        "--no-random-sleep-on-renew",
        "--config-dir",
        str(work / "config"),
        "--work-dir",
        str(work / "work"),
        "--logs-dir",
        str(work / "logs"),
    ]


def certbot_renewed(work: Path, names: Sequence[str]) -> int:
    return sum((work / "config" / "archive" / n / "cert2.pem").exists() for n in names)


# -- the report --------------------------------------------------------------------------------


def render(machine: dict[str, str], command: str, rows: list[str], notes: list[str]) -> str:
    head = [
        BEGIN,
        "## Fleets (issue 17): `bench/fleet.py`",
        "",
        f"Command: `{command}` ({machine['date']}, {machine['nproc']} cores, {machine['cpu']},"
        f" Python {machine['python']}, Pebble {machine['pebble']},"
        f" certbot {machine.get('certbot', '-')})",
        "",
        "Median (min-max) over the rounds; each run a fresh process (GNU time: wall, user+sys"
        " CPU, peak RSS).",
        "",
        "| scenario | runs | wall s | CPU s | peak RSS MB | requests | result |",
        "|---|---|---|---|---|---|---|",
    ]
    return "\n".join([*head, *rows, "", *notes, END]) + "\n"


def row(what: str, runs: Sequence[dict[str, object]], requests: str, result: str) -> str:
    return (
        f"| {what} | {len(runs)} | {span(runs, 'wall')} | {span(runs, 'cpu')} |"
        f" {span(runs, 'rss_mb', '{:.0f}')} | {requests} | {result} |"
    )


def write_section(out: Path, section: str) -> None:
    text = out.read_text(encoding="utf-8") if out.exists() else "# Benchmark results\n"
    if BEGIN in text and END in text:
        before, rest = text.split(BEGIN, 1)
        after = rest.split(END, 1)[1]
        text = before + section + after.lstrip("\n")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    out.write_text(text, encoding="utf-8")


# -- main ------------------------------------------------------------------------------------


@contextlib.contextmanager
def servers() -> Iterator[tuple[PebbleServer, FaultProxy]]:
    with (
        PebbleServer(**QUIET) as pebble,
        FaultProxy(pebble.directory_url, upstream_ca_bundle=pebble.ca_bundle) as proxy,
    ):
        yield pebble, proxy


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dirs", type=int, default=1000, help="directories of the no-due tree")
    parser.add_argument("--due", type=int, default=200, help="due directories")
    parser.add_argument("--lineages", type=int, default=100, help="certbot lineages")
    parser.add_argument("--list-dirs", type=int, default=10000, help="directories for list")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of the quick runs")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--skip-certbot", action="store_true")
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("RESULTS.md"))
    parser.add_argument("--json", type=Path, help="also write every run here")
    args = parser.parse_args(argv)
    if not args.skip_certbot and not (clients.VENV / "bin" / "certbot").exists():
        print(
            "bench: certbot missing: run bench/install-peers (or --skip-certbot)", file=sys.stderr
        )
        return 2
    command = "python bench/fleet.py" + "".join(
        f" {shlex.quote(a)}" for a in (argv if argv is not None else sys.argv[1:])
    )
    machine = describe_machine()
    started = time.monotonic()
    rows: list[str] = []
    notes: list[str] = []
    raw: dict[str, object] = {"machine": machine, "command": command}
    conc = str(args.concurrency)
    with (
        tempfile.TemporaryDirectory(prefix="acmelite-fleet-") as scratch,
        servers() as (
            pebble,
            proxy,
        ),
    ):
        work = Path(scratch)
        # -- nothing due ------------------------------------------------------------------
        log(f"issuing {args.dirs} certificates through the proxy")
        nodue = work / "nodue"
        dirs = build_tree(
            proxy.directory_url, proxy.ca_bundle, pebble.http_port, nodue, args.dirs, label="nodue"
        )
        log("storing ARI answers (one renew pass)")
        warm = run(
            acmelite("renew", "-q", "--all-under", str(nodue), "--concurrency", conc), work / "warm"
        )
        if warm["exit"] != 0:
            raise SystemExit(f"bench: warm-up renew failed: {warm['note']}")
        small = nodue / "team-00"
        passes, small_passes, counted = [], [], []
        for rnd in range(args.rounds):
            proxy.reset_counts()
            passes.append(
                run(acmelite("renew", "-q", "--all-under", str(nodue)), work / f"nodue-{rnd}")
            )
            counted.append(len(proxy.requests))
            small_passes.append(
                run(acmelite("renew", "-q", "--all-under", str(small)), work / f"nodue-small-{rnd}")
            )
        notdue = [p["output"].count(": not-due: ") for p in passes]  # type: ignore[union-attr]
        rows.append(
            row(
                f"`renew --all-under`, {len(dirs)} dirs, nothing due, ARI stored",
                passes,
                f"{max(counted)} (proxy)",
                f"{min(notdue)} not-due",
            )
        )
        rows.append(
            row(f"the same, {min(100, len(dirs))} dirs", small_passes, "-", "RSS against tree size")
        )
        raw["nodue"] = {"passes": passes, "small": small_passes, "requests": counted}
        log(f"nodue: {median(passes, 'wall'):.2f} s, {max(counted)} requests")

        # -- list ---------------------------------------------------------------------------
        log(f"copying the tree to {args.list_dirs} directories")
        big = work / "list"
        copies = max(1, args.list_dirs // max(1, len(dirs)))
        big.mkdir()
        for i in range(copies):
            subprocess.run(["cp", "-a", str(nodue), str(big / f"copy-{i:02d}")], check=True)
        total = copies * len(dirs)
        # Files younger than the index's racy limit are indexed with a digest to check:
        # a tree is listed long after it was written, not within two seconds of a copy.
        time.sleep(RACY_SECONDS + 0.5)
        index = big / INDEX_FILE
        cold = []
        for r in range(max(1, args.rounds // 2)):
            index.unlink(missing_ok=True)
            cold.append(run(acmelite("list", "--all-under", str(big)), work / f"list-cold-{r}"))
        lists = [
            run(acmelite("list", "--all-under", str(big)), work / f"list-{r}")
            for r in range(args.rounds)
        ]
        listed = min(p["output"].count(": not-due: ") for p in lists)  # type: ignore[union-attr]
        lists_json = [
            run(acmelite("list", "--json", "--all-under", str(big)), work / f"list-json-{r}")
            for r in range(max(1, args.rounds // 2))
        ]
        index_mb = index.stat().st_size / 1e6
        rows.append(row(f"`list --all-under`, {total} dirs, no index (first run)", cold, "0", "-"))
        rows.append(row(f"`list --all-under`, {total} dirs", lists, "0", f"{listed} listed"))
        rows.append(row(f"`list --json --all-under`, {total} dirs", lists_json, "0", "-"))
        raw["list"] = {"cold": cold, "text": lists, "json": lists_json}
        log(f"list: {median(lists, 'wall'):.2f} s over {total} ({median(cold, 'wall'):.2f} cold)")
        shutil.rmtree(big)

        # -- due: one concurrent run vs sequential runs --------------------------------------
        log(f"issuing {args.due} certificates for the due scenario")
        due_root = work / "due"
        due = build_tree(
            pebble.directory_url,
            pebble.ca_bundle,
            pebble.http_port,
            due_root,
            args.due,
            label="due",
        )
        concurrent, renewed, sent = [], [], []
        for rnd in range(3):
            move_windows_to_the_past(pebble, due)
            metrics = work / f"due-{rnd}.prom"
            one = run(
                acmelite(
                    "renew",
                    "-q",
                    "--all-under",
                    str(due_root),
                    "--concurrency",
                    conc,
                    "--metrics-file",
                    str(metrics),
                ),
                work / f"due-{rnd}",
            )
            concurrent.append(one)
            renewed.append(certificates_renewed(metrics))
            sent.append(sum(requests_from_metrics(metrics).values()))
            log(f"  due round {rnd}: {one['wall']:.1f} s, {renewed[-1]} renewed")
        move_windows_to_the_past(pebble, due)
        seq = []
        for i, d in enumerate(due):
            seq.append(run(acmelite("renew", "-q", str(d)), work / f"seq-{i}"))
        seq_ok = sum(r["exit"] == 3 for r in seq)
        seq_total = sum(float(r["wall"]) for r in seq)  # type: ignore[arg-type]
        total_run = {
            "wall": seq_total,
            "cpu": sum(float(r["cpu"]) for r in seq),  # type: ignore[arg-type]
            "rss_mb": max(float(r["rss_mb"]) for r in seq),
        }  # type: ignore[arg-type]
        rows.append(
            row(
                f"`renew --all-under --concurrency {conc}`, {len(due)} due (ARI"
                " windows moved into the past)",
                concurrent,
                f"{statistics.median(sent):.0f} (metrics file)",
                f"{min(renewed)} renewed",
            )
        )
        rows.append(
            row(
                f"{len(due)} sequential `renew DIR` runs, in total",
                [total_run],
                "-",
                f"{seq_ok} renewed",
            )
        )
        rows.append(row("one of those runs", seq, "-", "-"))
        speedup = seq_total / median(concurrent, "wall")
        notes.append(
            f"- {len(due)} due: one concurrent run {median(concurrent, 'wall'):.1f} s"
            f" against {seq_total:.1f} s of sequential runs: **{speedup:.1f}x** (target:"
            " 10x)."
        )
        raw["due"] = {
            "concurrent": concurrent,
            "sequential": seq,
            "renewed": renewed,
            "requests": sent,
        }

        # -- certbot ----------------------------------------------------------------------------
        if not args.skip_certbot:
            log(f"certbot: {args.lineages} lineages")
            cb = work / "certbot"
            names = certbot_lineages(pebble, cb, args.lineages)
            env = {**clients.base_env(), "REQUESTS_CA_BUNDLE": pebble.ca_bundle}
            cb_run = run(certbot_renew(pebble, cb), cb / "renew", env=env)
            cb_ok = certbot_renewed(cb, names)
            subset = due_root / "team-00"
            ours = []
            count = len(due[: args.lineages])
            for rnd in range(3):
                ours.append(
                    run(
                        acmelite(
                            "renew",
                            "-q",
                            "--force",
                            "--concurrency",
                            conc,
                            *map(str, due[: args.lineages]),
                        ),
                        work / f"ours-{rnd}",
                    )
                )
            rows.append(
                row(
                    f"`certbot renew --force-renewal`, {len(names)} lineages",
                    [cb_run],
                    "-",
                    f"{cb_ok} renewed",
                )
            )
            rows.append(
                row(
                    f"`acmelite renew --force --concurrency {conc}`, {count} dirs",
                    ours,
                    "-",
                    f"exit {ours[-1]['exit']}",
                )
            )
            ratio = float(cb_run["wall"]) / median(ours, "wall")  # type: ignore[arg-type]
            notes.append(
                f"- {len(names)} renewals: certbot {float(cb_run['wall']):.1f} s"  # type: ignore[arg-type]
                f" against acmelite {median(ours, 'wall'):.1f} s: **{ratio:.1f}x**."
            )
            raw["certbot"] = {"certbot": cb_run, "acmelite": ours, "subset": str(subset)}
    rss_big, rss_small = median(passes, "rss_mb"), median(small_passes, "rss_mb")
    notes.insert(
        0,
        f"- nothing due, {len(dirs)} dirs: {median(passes, 'wall'):.2f} s,"
        f" {max(counted)} requests (target: 0 requests, < 3 s); peak RSS"
        f" {rss_small:.0f} MB for 100 dirs, {rss_big:.0f} MB for {len(dirs)}.",
    )
    notes.insert(
        1,
        f"- `list` over {total} dirs: {median(lists, 'wall'):.2f} s with the tree's index"
        f" ({index_mb:.1f} MB), {median(cold, 'wall'):.2f} s the first time (target: well"
        " under 2 s).",
    )
    elapsed = time.monotonic() - started
    notes.append(f"- the whole bench took {elapsed / 60:.0f} min.")
    section = render(machine, command, rows, notes)
    write_section(args.out, section)
    log(f"wrote {args.out}")
    if args.json:
        for group in raw.values():
            if isinstance(group, dict):
                for runs in group.values():
                    for r in runs if isinstance(runs, list) else []:
                        if isinstance(r, dict):
                            r.pop("output", None)
        args.json.write_text(json.dumps(raw, indent=1, default=str), encoding="utf-8")
    print(section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
