"""The reliability ledger: what the fault, crash and hostile-input tests tried, and how it went.

Each reliability test module keeps one :class:`Ledger` (a module-scoped fixture) and records
every case it runs: faults injected, recovered, failed cleanly, bad inputs tried, data lost.
At the end of the module the ledger is written to ``.cache/reliability/<suite>.json``;
``scripts/reliability_table.py`` turns all of them into the table in ``docs/reliability.md``.
A module run only in part (``-k``) writes only what it ran.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

LEDGER_DIR = Path(__file__).resolve().parent.parent / ".cache" / "reliability"


@dataclass
class Case:
    case: str
    injected: int = 0
    recovered: int = 0
    failed_cleanly: int = 0
    bad_inputs: int = 0
    data_lost: int = 0
    message: str = ""


@dataclass
class Ledger:
    suite: str
    title: str
    cases: list[Case] = field(default_factory=list)

    def record(
        self,
        case: str,
        *,
        injected: int = 0,
        recovered: int = 0,
        failed_cleanly: int = 0,
        bad_inputs: int = 0,
        data_lost: int = 0,
        message: str = "",
    ) -> None:
        """One case; ``message`` is the one-line error a clean failure showed."""
        self.cases.append(
            Case(case, injected, recovered, failed_cleanly, bad_inputs, data_lost, message)
        )

    def save(self, directory: Path = LEDGER_DIR) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"{self.suite}.json"
        data = {
            "suite": self.suite,
            "title": self.title,
            "written": time.time(),
            "cases": [asdict(c) for c in self.cases],
        }
        path.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
        return path
