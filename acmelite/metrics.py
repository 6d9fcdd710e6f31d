"""Prometheus metrics of a certificate tree, as a file for node_exporter's textfile collector.

:func:`render` turns an inventory (:func:`acmelite.inventory.inventory`) and, after a
renewal run, its :class:`~acmelite.fleet.FleetReport` into the Prometheus text exposition
format (version 0.0.4); :func:`write` puts it in place atomically (a temporary file renamed
over the old one, mode 0644), so the collector never reads half a file. No client library
is needed: the format is a few lines of text per sample.

Per certificate, labelled ``dir``, ``common_name`` and ``issuer``:

``acmelite_certificate_not_after_seconds``, ``acmelite_certificate_not_before_seconds``
    the validity (Unix time);
``acmelite_certificate_renewal_window_start_seconds``, ``..._end_seconds``
    the ARI window, or the lifetime rule's window without ARI;
``acmelite_certificate_renew_at_seconds``
    the moment picked in the window;
``acmelite_renewal_last_success_timestamp_seconds``, ``acmelite_renewal_consecutive_failures``,
``acmelite_renewal_deploy_pending``, ``acmelite_renewal_next_attempt_timestamp_seconds``
    what the directory's state says.

Per tree: ``acmelite_certificates{status=...}``, the directories by inventory status
(``unreadable`` among them). Per run: ``acmelite_run_timestamp_seconds``,
``acmelite_run_duration_seconds``, ``acmelite_run_certificates{result=...}`` (one series per
status, 0 included) and ``acmelite_acme_requests_total{endpoint=...}``, the requests of the
run by endpoint.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable, Sequence
from pathlib import Path

from .fleet import FleetReport
from .inventory import CertificateRecord
from .storage import atomic_write

__all__ = ["render", "write"]

#: Endpoints that always get a series, so a rule can rely on them (0 when unused).
ENDPOINTS = ("directory", "newNonce", "newAccount", "newOrder", "renewalInfo", "order")
INVENTORY_STATUSES = ("due", "not-due", "backing-off", "unreadable")

_Getter = Callable[[CertificateRecord], float | None]


def _stamp(value: dt.datetime | None) -> float | None:
    return None if value is None else value.timestamp()


#: name, help, value of a record (None: no sample).
CERTIFICATE_METRICS: tuple[tuple[str, str, _Getter], ...] = (
    ("acmelite_certificate_not_after_seconds", "The certificate's notAfter, Unix time.",
     lambda r: _stamp(r.not_after)),
    ("acmelite_certificate_not_before_seconds", "The certificate's notBefore, Unix time.",
     lambda r: _stamp(r.not_before)),
    ("acmelite_certificate_renewal_window_start_seconds",
     "Start of the renewal window (ARI, else the lifetime rule), Unix time.",
     lambda r: _stamp(r.window.start) if r.window is not None else None),
    ("acmelite_certificate_renewal_window_end_seconds",
     "End of the renewal window (ARI, else the lifetime rule), Unix time.",
     lambda r: _stamp(r.window.end) if r.window is not None else None),
    ("acmelite_certificate_renew_at_seconds",
     "The moment picked in the renewal window, Unix time.", lambda r: _stamp(r.renew_at)),
    ("acmelite_renewal_last_success_timestamp_seconds",
     "When the certificate was last issued or renewed, Unix time.",
     lambda r: _stamp(r.last_renewal)),
    ("acmelite_renewal_consecutive_failures", "Failed renewal attempts since the last success.",
     lambda r: float(r.failures)),
    ("acmelite_renewal_deploy_pending",
     "1 while a deploy hook that failed waits to run again, else 0.",
     lambda r: 1.0 if r.deploy_pending else 0.0),
    ("acmelite_renewal_next_attempt_timestamp_seconds",
     "No renewal attempt before this (back-off or a CA's rate limit), Unix time.",
     lambda r: _stamp(r.next_attempt)),
)  # fmt: skip


def _escape(value: str) -> str:
    """A label value (text format: backslash, double quote and line feed escaped)."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(pairs: Sequence[tuple[str, str]]) -> str:
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in pairs) + "}"


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() and abs(value) < 2**53 else repr(value)


def _family(lines: list[str], name: str, kind: str, text: str) -> None:
    lines.append(f"# HELP {name} {text}")
    lines.append(f"# TYPE {name} {kind}")


def render(
    records: Sequence[CertificateRecord],
    *,
    report: FleetReport | None = None,
) -> str:
    """The exposition text for ``records`` (and the run of ``report``, if given)."""
    lines: list[str] = []
    readable = [r for r in records if r.status != "unreadable"]
    for name, text, value in CERTIFICATE_METRICS:
        samples = []
        for rec in readable:
            number = value(rec)
            if number is None:
                continue
            labels = (
                ("dir", str(rec.path)),
                ("common_name", rec.common_name or (rec.names[0] if rec.names else "")),
                ("issuer", rec.issuer),
            )
            samples.append(f"{name}{_labels(labels)} {_number(number)}")
        if samples:
            _family(lines, name, "gauge", text)
            lines.extend(samples)
    _family(lines, "acmelite_certificates", "gauge", "Certificate directories by status.")
    statuses = [r.status for r in records]
    for status in dict.fromkeys([*INVENTORY_STATUSES, *statuses]):
        lines.append(
            f"acmelite_certificates{_labels((('status', status),))} {statuses.count(status)}"
        )
    if report is not None:
        _run(lines, report)
    return "\n".join(lines) + "\n"


def _run(lines: list[str], report: FleetReport) -> None:
    _family(lines, "acmelite_run_timestamp_seconds", "gauge", "When the last run ended.")
    lines.append(f"acmelite_run_timestamp_seconds {_number(report.finished.timestamp())}")
    _family(lines, "acmelite_run_duration_seconds", "gauge", "How long the last run took.")
    took = (report.finished - report.started).total_seconds()
    lines.append(f"acmelite_run_duration_seconds {_number(round(took, 3))}")
    _family(lines, "acmelite_run_certificates", "gauge", "Results of the last run by status.")
    for status, count in report.counts().items():
        lines.append(f"acmelite_run_certificates{_labels((('result', status),))} {count}")
    _family(lines, "acmelite_acme_requests_total", "counter",
            "Requests to ACME servers in the last run, by endpoint.")  # fmt: skip
    for endpoint in dict.fromkeys([*ENDPOINTS, *sorted(report.requests)]):
        count = report.requests.get(endpoint, 0)
        lines.append(f"acmelite_acme_requests_total{_labels((('endpoint', endpoint),))} {count}")


def write(
    path: str | os.PathLike[str],
    records: Sequence[CertificateRecord],
    *,
    report: FleetReport | None = None,
) -> Path:
    """:func:`render` into ``path`` atomically, mode 0644 whatever the umask (node_exporter
    runs as another user)."""
    target = Path(path)
    atomic_write(target, render(records, report=report).encode(), mode=0o644)
    os.chmod(target, 0o644)
    return target
