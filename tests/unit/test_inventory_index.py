"""The inventory index (``ROOT/.acmelite-inventory.json``): a survey through it gives the
records a plain inventory gives, sees every change to the files, and never trusts an index
it should not.

A survey is checked against :func:`inventory` of :func:`discover` — the reference that reads
every file — and "not read again" is checked by making :func:`acmelite.inventory.record`
(the only reader of the files) fail: a warm survey that still returns the right records
cannot have parsed a file.
"""

from __future__ import annotations

import datetime as dt
import gc
import json
import os
import socket
from pathlib import Path

import pytest

from acmelite import index as index_module
from acmelite import inventory as inventory_module
from acmelite.cli import main
from acmelite.config import load_config
from acmelite.index import INDEX_FILE
from acmelite.inventory import _ROW, CertificateRecord, _from_row, discover, inventory, survey
from acmelite.managed import load_state, save_state
from acmelite.renewal import RenewalState
from tests.unit.test_fleet_unit import NOW, cert_dir, fresh_ari
from tests.unit.test_renewal_unit import make_cert, pem


@pytest.fixture
def closed_server() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"https://127.0.0.1:{s.getsockname()[1]}/dir"


@pytest.fixture
def no_racy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Files made by the test a moment ago count as old enough to be indexed."""
    monkeypatch.setattr(index_module, "RACY_SECONDS", 0.0)


@pytest.fixture
def tree(tmp_path: Path, closed_server: str) -> Path:
    """due, not-due, backing-off, deploy-pending and unreadable directories, two levels."""
    root = tmp_path / "tree"
    soon = make_cert(days=6, start=NOW - dt.timedelta(days=5), name="soon.example.test")
    calm = make_cert(days=90, start=NOW, serial=0xABC)
    cert_dir(root / "team-a", "due", closed_server, soon)
    cert_dir(root / "team-a", "calm", closed_server, calm, fresh_ari(calm))
    failing = RenewalState(deploy_pending=True).failed("validation failed", now=NOW)
    cert_dir(root / "team-b" / "deeper", "failing", closed_server, calm, failing)
    (root / "team-b" / "junk").mkdir(parents=True)
    (root / "team-b" / "junk" / "renewal.json").write_text("[]")
    return root


def reference(root: Path, *, now: dt.datetime = NOW) -> list[dict[str, object]]:
    return [r.to_json() for r in inventory(discover(roots=[root]), now=now)]


def surveyed(root: Path, *, now: dt.datetime = NOW) -> list[dict[str, object]]:
    return [r.to_json() for r in survey(roots=[root], now=now)]


def count_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """From now on, the directories whose files a survey reads (and parses)."""
    reads: list[str] = []

    def counted(path: object, **kw: object) -> CertificateRecord:
        reads.append(str(path))
        return _real_record(path, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(inventory_module, "record", counted)
    return reads


def index_of(root: Path) -> dict[str, object]:
    data = json.loads((root / INDEX_FILE).read_text())
    assert isinstance(data, dict)
    return data


def test_rows_are_the_json_fields() -> None:
    fields = list(CertificateRecord(path=Path("/x"), status="due").to_json())
    assert fields == ["dir", *_ROW]


@pytest.mark.usefixtures("no_racy")
def test_a_warm_survey_reads_no_file_and_gives_the_same_records(
    tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = reference(tree)
    assert surveyed(tree) == expected
    saved = tree / INDEX_FILE
    assert saved.stat().st_mode & 0o777 == 0o600
    # junk's renewal.json is no configuration, but trusted: its "unreadable" record is kept
    assert len(index_of(tree)["records"]) == 4
    before = saved.stat().st_mtime_ns
    reads = count_reads(monkeypatch)
    warm = survey(roots=[tree], now=NOW)
    assert [r.to_json() for r in warm] == expected
    assert [r.path for r in warm] == discover(roots=[tree])  # Path objects, equal
    assert reads == []
    assert saved.stat().st_mtime_ns == before, "an unchanged index is not written again"


@pytest.mark.usefixtures("no_racy")
def test_every_change_to_the_files_is_seen(tree: Path, closed_server: str) -> None:
    surveyed(tree)
    calm = tree / "team-a" / "calm"
    # the state file: a failure recorded by a renewal
    save_state(calm, load_state(calm).failed("the CA said no", now=NOW))
    # cert.pem replaced in place (through its name, as `cp` would)
    due = tree / "team-a" / "due"
    newer = make_cert(days=90, start=NOW, serial=0xDEF, name="due.example.test")
    (due / "cert.pem").write_bytes(pem(newer))
    # renewal.json edited in place
    failing = tree / "team-b" / "deeper" / "failing"
    config = load_config(failing)
    text = (failing / "renewal.json").read_text().replace(config.names[0], "renamed.example.test")
    (failing / "renewal.json").write_text(text)
    # a directory added to a listed directory, and one removed
    fresh = make_cert(days=90, start=NOW, serial=0x123)
    added = cert_dir(tree / "team-a", "added", closed_server, fresh, fresh_ari(fresh))
    (tree / "team-b" / "junk" / "renewal.json").unlink()

    got = {r["dir"]: r for r in surveyed(tree)}
    assert got == {r["dir"]: r for r in reference(tree)}
    assert got[str(calm)]["status"] == "backing-off" and got[str(calm)]["failures"] == 1
    assert got[str(due)]["serial"] == "def"
    assert got[str(failing)]["names"] == ["renamed.example.test"]
    assert str(added) in got and str(tree / "team-b" / "junk") not in got
    assert str(tree / "team-b" / "junk") not in index_of(tree)["records"]


@pytest.mark.usefixtures("no_racy")
def test_a_file_another_user_could_write_is_refused_even_when_indexed(tree: Path) -> None:
    surveyed(tree)
    calm = tree / "team-a" / "calm"
    os.chmod(calm / "renewal.json", 0o664)
    (got,) = [r for r in survey(roots=[tree], now=NOW) if r.path == calm]
    assert got.status == "unreadable" and "writable by others" in got.error
    os.chmod(calm / "renewal.json", 0o600)
    os.chmod(calm, 0o777)  # noqa: S103 (the point: a directory anyone may write)
    (got,) = [r for r in survey(roots=[tree], now=NOW) if r.path == calm]
    assert got.status == "unreadable" and "writable by others" in got.error


@pytest.mark.usefixtures("no_racy")
def test_a_stored_record_holds_only_for_its_span(
    tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A not-due certificate becomes due at its moment; a back-off ends; then the record
    is made again from the files, whatever the index says."""
    surveyed(tree)
    calm = next(r for r in survey(roots=[tree], now=NOW) if r.path.name == "calm")
    assert calm.status == "not-due" and calm.renew_at is not None
    later = calm.renew_at + dt.timedelta(seconds=1)
    assert surveyed(tree, now=later) == reference(tree, now=later)
    assert next(r for r in survey(roots=[tree], now=later) if r.path.name == "calm").status == "due"
    # an expired certificate's record holds for good (until its files change)
    reads = count_reads(monkeypatch)
    day_later = later + dt.timedelta(days=1)
    got = surveyed(tree, now=day_later)
    assert reads == []  # due (calm) and expired (due): their records still hold
    assert got == reference(tree, now=day_later)
    after_backoff = NOW + dt.timedelta(minutes=2)
    failing = next(r for r in survey(roots=[tree], now=after_backoff) if r.path.name == "failing")
    assert failing.status == "not-due"
    # and a moment before the record was made is not in its span either
    earlier = NOW - dt.timedelta(days=1)
    assert surveyed(tree, now=earlier) == reference(tree, now=earlier)


def test_racy_entries_carry_a_digest_and_are_checked(
    tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Files younger than RACY_SECONDS: the entry keeps their SHA-256, the next survey
    reads (but does not parse) them to compare, and drops the digest once they are old."""
    monkeypatch.setattr(index_module, "RACY_SECONDS", 3600.0)  # the files are all "racy"
    expected = reference(tree)
    assert surveyed(tree) == expected
    entries = index_of(tree)["records"]
    assert isinstance(entries, dict)
    assert all(isinstance(e, dict) and len(str(e["digest"])) == 64 for e in entries.values())
    # a digest that no longer matches the files is a miss
    calm = str(tree / "team-a" / "calm")
    data = index_of(tree)
    data["records"][calm]["digest"] = "0" * 64  # type: ignore[index]
    (tree / INDEX_FILE).write_text(json.dumps(data))
    os.chmod(tree / INDEX_FILE, 0o600)
    reread = count_reads(monkeypatch)
    assert surveyed(tree) == expected
    assert reread == [calm]
    # once the files are old enough, a matching digest is dropped from the entry
    monkeypatch.setattr(index_module, "RACY_SECONDS", 0.0)
    reread.clear()
    assert surveyed(tree) == expected
    assert reread == []
    entries = index_of(tree)["records"]
    assert isinstance(entries, dict)
    assert all(isinstance(e, dict) and e["digest"] is None for e in entries.values())


_real_record = inventory_module.record


@pytest.mark.usefixtures("no_racy")
@pytest.mark.parametrize(
    "spoil",
    [
        "garbage",
        "list",
        "version",
        "context",
        "rows",
        "timestamps",
        "group-writable",
        "symlink",
    ],
)
def test_a_bad_index_is_ignored_and_replaced(tree: Path, spoil: str, tmp_path: Path) -> None:
    expected = reference(tree)
    surveyed(tree)
    saved = tree / INDEX_FILE
    data = index_of(tree)
    records = data["records"]
    assert isinstance(records, dict)
    elsewhere = tmp_path / "elsewhere.json"
    if spoil == "garbage":
        saved.write_bytes(b"\x00\xff{not json")
    elif spoil == "list":
        saved.write_text("[]")
    elif spoil == "version":
        saved.write_text(json.dumps({**data, "version": 99}))
    elif spoil == "context":
        saved.write_text(json.dumps({**data, "context": {"euid": 12345, "account_key": ""}}))
    elif spoil == "rows":
        for entry in records.values():
            entry["record"] = entry["record"][:-1]
        saved.write_text(json.dumps(data))
    elif spoil == "timestamps":
        for entry in records.values():
            entry["record"][_ROW.index("not_after")] = "yesterday"
            entry["record"][_ROW.index("failures")] = "many"
        saved.write_text(json.dumps(data))
    elif spoil == "group-writable":
        # a record another user could have planted: all not-due, far from expiry
        for entry in records.values():
            entry["record"][_ROW.index("status")] = "not-due"
        saved.write_text(json.dumps(data))
        os.chmod(saved, 0o666)  # noqa: S103 (the point: an index anyone may write)
    elif spoil == "symlink":
        elsewhere.write_text(json.dumps(data))
        saved.unlink()
        saved.symlink_to(elsewhere)
    assert surveyed(tree) == expected
    assert not saved.is_symlink() and saved.stat().st_mode & 0o777 == 0o600
    assert index_of(tree)["version"] == 1
    if spoil == "symlink":
        assert json.loads(elsewhere.read_text()) == data, "the link's target is never written"


@pytest.mark.usefixtures("no_racy")
def test_an_index_that_cannot_be_written_is_no_error(tree: Path) -> None:
    (tree / INDEX_FILE).mkdir()
    assert surveyed(tree) == reference(tree)
    assert (tree / INDEX_FILE).is_dir()


@pytest.mark.usefixtures("no_racy")
def test_a_root_that_is_a_certificate_directory_and_named_dirs(
    tmp_path: Path, closed_server: str
) -> None:
    calm = make_cert(days=90, start=NOW)
    root = cert_dir(tmp_path, "root", closed_server, calm, fresh_ari(calm))
    inner = cert_dir(root, "inner", closed_server, calm, fresh_ari(calm))
    other = cert_dir(tmp_path, "other", closed_server, calm, fresh_ari(calm))
    for _ in range(2):
        got = [r.path for r in survey([other, inner], [root], now=NOW)]
        assert got == [other, inner, root]  # named first, each once, then the walk


@pytest.mark.usefixtures("no_racy")
def test_cli_list_keeps_the_index(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    outputs = []
    for _ in range(2):
        assert main(["list", "--json", "--all-under", str(tree)]) == 1  # junk is unreadable
        out = capsys.readouterr().out
        outputs.append(json.loads(out))
        # one directory per line, between the brackets
        lines = out.splitlines()
        assert lines[0] == "[" and lines[-1] == "]" and len(lines) == len(outputs[-1]) + 2
        assert [json.loads(line.rstrip(",")) for line in lines[1:-1]] == outputs[-1]
    for listing in outputs:  # a due certificate's next check is "now", whenever that is
        for rec in listing:
            assert rec.pop("next_check") is not None or rec["status"] != "due"
    assert outputs[0] == outputs[1]
    assert [r["dir"] for r in outputs[0]] == [r["dir"] for r in reference(tree)]
    assert (tree / INDEX_FILE).exists()
    # the index is not a certificate directory, nor does a walk of the tree list it
    assert all(INDEX_FILE not in str(p) for p in discover(roots=[tree]))


@pytest.mark.usefixtures("no_racy")
def test_index_rows_read_back_as_from_json_reads_them(tree: Path) -> None:
    surveyed(tree)
    records = index_of(tree)["records"]
    assert isinstance(records, dict) and records
    for key, entry in records.items():
        row = entry["record"]
        fields = dict(zip(_ROW, row, strict=True))
        assert _from_row(row, Path(key)) == CertificateRecord.from_json(fields, path=Path(key))


def test_a_survey_pauses_the_collector_and_leaves_it_as_it_was(
    tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No cyclic collection while the records are built (it cost a third of a warm list of
    10,000), and the collector is as before afterwards: on, off, or after a failure."""
    during: list[bool] = []

    def spy(path: object, **kw: object) -> CertificateRecord:
        during.append(gc.isenabled())
        return _real_record(path, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(inventory_module, "record", spy)
    assert gc.isenabled()
    assert len(survey(roots=[tree], now=NOW)) == 4
    assert during and not any(during) and gc.isenabled()
    gc.disable()
    try:
        survey(roots=[tree], now=NOW)
        assert not gc.isenabled(), "a collector that was off stays off"
    finally:
        gc.enable()

    def broken(path: object, **kw: object) -> CertificateRecord:
        raise RuntimeError("a bug in a reader")

    (tree / INDEX_FILE).unlink()
    monkeypatch.setattr(inventory_module, "record", broken)
    with pytest.raises(RuntimeError, match="a bug in a reader"):
        survey(roots=[tree], now=NOW)
    assert gc.isenabled()


def test_cli_list_keeps_the_collector_paused_until_it_has_printed(
    tree: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Else the collector's first pass after the survey walks all of its records."""
    from acmelite.cli import listing

    during: list[bool] = []
    real = listing.render_line

    def spy(rec: CertificateRecord, *, now: dt.datetime) -> str:
        during.append(gc.isenabled())
        return real(rec, now=now)

    monkeypatch.setattr(listing, "render_line", spy)
    assert main(["list", "--all-under", str(tree)]) == 1  # junk is unreadable
    assert len(during) == 4 and not any(during)
    assert gc.isenabled()
    assert capsys.readouterr().out.count("\n") == 4
