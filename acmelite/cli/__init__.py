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
from .output import EXIT_ERROR, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, Parser, json_requested

__all__ = ["EXIT_ERROR", "EXIT_OK", "EXIT_USAGE", "build_parser", "main"]

#: Subcommand modules, in the order ``--help`` lists them.
SUBCOMMANDS = (
    "issue",
    "renew",
    "listing",
    "check",
    "account",
    "persist",
    "revoke",
    "plugins",
    "completion",
)

_EPILOG = """examples:
  acmelite issue -d example.com -d www.example.com --agree-tos --webroot /var/www/html \\
      --out /etc/acmelite/example.com
  acmelite renew --all-under /etc/acmelite          # hourly, from cron
  acmelite check api.example.com:443                # why clients reject its certificate

`acmelite COMMAND --help` shows a command's options; docs/cli.md has them all, with the
exit codes: 0 ok, 1 failed, 2 usage, 3 renewed, 4 not served (--verify), 10-13 check
verdicts, 130/143/129 interrupted."""


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="acmelite",
        description="Get certificates with the right names from any ACME CA (RFC 8555).",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
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
    """Run ``acmelite``; returns the exit code (``__main__`` passes it to ``sys.exit``).

    Every failure ends here, the same way for every subcommand (see :mod:`.output`): one
    ``acmelite: error: ...`` line on stderr (``-v``: the chain of causes before it), and with
    ``--json`` one JSON object on stdout. A bug (an exception that is not an
    ``AcmeliteError``) is one line too, unless ``-vv`` asks for its traceback.
    """
    args_list = list(sys.argv[1:] if argv is None else argv)
    token = json_requested.set("--json" in args_list)
    try:
        return _run(args_list)
    finally:
        json_requested.reset(token)


def _run(argv: list[str]) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from ..errors import AcmeliteError
    from ..solvers.registry import SolverConfigError
    from .output import UsageError, fail

    verbose = getattr(args, "verbose", 0)
    setup_logging(verbose, getattr(args, "quiet", False))
    try:
        code: int = args.func(args)
    except (SolverConfigError, UsageError) as exc:  # a solver, option or value that is wrong
        return fail(exc, args, EXIT_USAGE)
    except AcmeliteError as exc:
        return fail(exc, args, EXIT_ERROR, verbose=verbose)
    except KeyboardInterrupt:
        print("acmelite: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED["SIGINT"]
    except Exception as exc:
        if verbose >= 2:
            raise
        print(
            f"acmelite: internal error: {type(exc).__name__}: {exc} (a bug: please report it;"
            " -vv shows the traceback)",
            file=sys.stderr,
        )
        return EXIT_ERROR
    return code
