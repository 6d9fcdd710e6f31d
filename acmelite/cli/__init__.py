"""The ``acmelite`` command line: parse, wire objects, call the library, map errors.

Each subcommand lives in its own module with ``add_parser(subparsers)`` and
``run(args) -> int``. Heavy imports (requests, cryptography) happen inside ``run`` so
``acmelite --help`` starts fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
import time
from collections.abc import Sequence

from .._version import __version__

__all__ = ["EXIT_ERROR", "EXIT_OK", "EXIT_USAGE", "build_parser", "main"]

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2

#: Subcommand modules, in the order ``--help`` lists them.
SUBCOMMANDS = ("issue", "renew", "check", "account", "revoke", "plugins")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="acmelite",
        description="Get certificates with the right names from any ACME CA (RFC 8555).",
    )
    parser.add_argument("--version", action="version", version=f"acmelite {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for name in SUBCOMMANDS:
        module = importlib.import_module(f"{__name__}.{name}")
        module.add_parser(subparsers)
    return parser


_HANDLER_NAME = "acmelite-cli"


class _ProgressFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__()
        self.start = time.monotonic()

    def format(self, record: logging.LogRecord) -> str:
        elapsed = time.monotonic() - self.start
        prefix = "" if record.levelno == logging.INFO else f"{record.levelname.lower()}: "
        return f"[{elapsed:6.2f}s] {prefix}{record.getMessage()}"


class _StderrHandler(logging.Handler):
    """Writes to whatever ``sys.stderr`` is at the moment of each record.

    A handler that kept the stream of its creation would write into a closed file once a
    caller swapped ``sys.stderr`` back (pytest's capture, an embedding application).
    """

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(self.format(record) + "\n")
            sys.stderr.flush()
        except Exception:  # logging must never break the run
            self.handleError(record)


def setup_logging(verbose: int, quiet: bool) -> None:
    """Progress and diagnostics go to stderr; results stay on stdout."""
    level = logging.WARNING if quiet else logging.INFO if verbose == 0 else logging.DEBUG
    handler = _StderrHandler()
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(_ProgressFormatter())
    root = logging.getLogger("acmelite")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
    # Drop the handler an earlier main() in this process added, never stack them.
    wire = logging.getLogger("urllib3")
    wire.handlers[:] = [h for h in wire.handlers if h.get_name() != _HANDLER_NAME]
    if verbose >= 2:
        wire.setLevel(logging.DEBUG)
        wire.addHandler(handler)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``acmelite``; returns the exit code (``__main__`` passes it to ``sys.exit``)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    verbose = getattr(args, "verbose", 0)
    setup_logging(verbose, getattr(args, "quiet", False))
    from ..errors import AcmeliteError
    from ..solvers.registry import SolverConfigError
    from .hints import message

    try:
        code: int = args.func(args)
    except SolverConfigError as exc:  # a solver or option that is not there: usage
        print(f"acmelite: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except AcmeliteError as exc:
        if verbose:
            logging.getLogger("acmelite").debug("failure", exc_info=exc)
            cause = exc.__cause__
            while cause is not None:
                print(f"  caused by: {type(cause).__name__}: {cause}", file=sys.stderr)
                cause = cause.__cause__
        print(f"acmelite: error: {message(exc, args)}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("acmelite: interrupted", file=sys.stderr)
        return 130
    return code
