"""The one way every command ends: exit codes, the error line, and ``--json`` on failure.

Every subcommand returns an exit code or raises; :func:`fail` turns what it raised into one
line on stderr — ``acmelite: error: <what failed>; <what to do>`` — and, with ``--json``, one
JSON object on stdout: ``{"ok": false, "error": {...}, "exit_code": N}``. :class:`Parser`
does the same for argparse's usage errors, so the prefix and the JSON never depend on which
subcommand (or which stage) failed.
"""

from __future__ import annotations

import argparse
import contextvars
import json
import sys
from typing import NoReturn

from ..errors import AcmeliteError, AuthorizationFailed, ProblemError, SolverError
from ..text import printable, printable_lines
from .hints import message as with_hint

__all__ = [
    "EXIT_ERROR",
    "EXIT_INTERRUPTED",
    "EXIT_NOT_SERVED",
    "EXIT_OK",
    "EXIT_RENEWED",
    "EXIT_USAGE",
    "Parser",
    "UsageError",
    "error_json",
    "fail",
    "json_requested",
]

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_RENEWED = 3
EXIT_NOT_SERVED = 4
#: 128 + the signal number, as shells report a process killed by it.
EXIT_INTERRUPTED = {"SIGHUP": 129, "SIGINT": 130, "SIGTERM": 143}

#: Whether this run's command line asked for ``--json`` (set by ``main`` before parsing, so
#: that even argparse's errors can answer in JSON).
json_requested: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "acmelite_json", default=False
)


class UsageError(AcmeliteError):
    """The command line is wrong in a way argparse cannot see (exit 2)."""


def error_json(exc: BaseException, *, message: str, exit_code: int) -> dict[str, object]:
    """``{"ok": false, "error": {type, code, message, identifier, problem}, "exit_code"}``."""
    identifier: str | None = None
    problem: dict[str, object] | None = None
    if isinstance(exc, ProblemError):
        identifier, problem = exc.problem.identifier, exc.problem.to_json()
    elif isinstance(exc, AuthorizationFailed) and exc.problems:
        identifier, problem = exc.problems[0].identifier, exc.problems[0].to_json()
    elif isinstance(exc, SolverError) and exc.identifiers:
        identifier = exc.identifiers[0]
    error: dict[str, object] = {
        "type": type(exc).__name__,
        "code": getattr(exc, "code", "") or None,
        "message": message,
        "identifier": identifier,
        "problem": problem,
    }
    return {"ok": False, "error": error, "exit_code": exit_code}


def fail(
    exc: AcmeliteError, args: argparse.Namespace | None, code: int, *, verbose: int = 0
) -> int:
    """Report ``exc`` (stderr line, causes with ``-v``, JSON with ``--json``); return ``code``."""
    text = with_hint(exc, args)
    if verbose:
        cause = exc.__cause__ or exc.__context__
        while cause is not None:
            print(f"  caused by: {type(cause).__name__}: {_one_line(cause)}", file=sys.stderr)
            cause = cause.__cause__ or cause.__context__
    print(f"acmelite: error: {printable_lines(text)}", file=sys.stderr)
    if json_requested.get():
        print(json.dumps(error_json(exc, message=text, exit_code=code), indent=2))
    return code


def _one_line(exc: BaseException) -> str:
    return printable(" ".join(str(exc).split())[:300]) or "(no message)"


class Parser(argparse.ArgumentParser):
    """argparse with acmelite's error line (``acmelite: error: ...``), exit 2, and the JSON
    error object on stdout when ``--json`` was given."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        print(f"acmelite: error: {printable(message)}", file=sys.stderr)
        if json_requested.get():
            doc = error_json(UsageError(message), message=message, exit_code=EXIT_USAGE)
            print(json.dumps(doc, indent=2))
        raise SystemExit(EXIT_USAGE)
