"""The ``acmelite`` command line: parse, wire objects, call the library, map errors.

Each subcommand lives in its own module with ``add_parser(subparsers)`` and
``run(args) -> int``. Heavy imports (requests, cryptography) happen inside ``run`` so
``acmelite --help`` starts fast.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import signal
import sys
import threading
import time
from collections.abc import Iterator, Sequence

from .._version import __version__
from ..text import printable, printable_lines
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


#: The command a subcommand module adds, where its name differs from the module's.
_COMMANDS = {"listing": "list"}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser of ``acmelite``; with ``command`` (one of its subcommands), the same
    parser with only that subcommand in it: a run needs no other, and building them all
    imports nine modules (a tenth of ``acmelite list``'s time over a small tree)."""
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
        if command is None or _COMMANDS.get(name, name) == command:
            module = importlib.import_module(f"{__name__}.{name}")
            module.add_parser(subparsers)
    return parser


def _parser_for(argv: Sequence[str]) -> argparse.ArgumentParser:
    """Only the subcommand's parser when ``argv`` starts with one; the whole one for
    anything else (``--help``, ``--version``, a typo: their messages list every command)."""
    known = {_COMMANDS.get(name, name) for name in SUBCOMMANDS}
    return build_parser(argv[0] if argv and argv[0] in known else None)


_HANDLER_NAME = "acmelite-cli"


class _ProgressFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__()
        self.start = time.monotonic()

    def format(self, record: logging.LogRecord) -> str:
        elapsed = time.monotonic() - self.start
        prefix = "" if record.levelno == logging.INFO else f"{record.levelname.lower()}: "
        # Records carry the CA's, a certificate's or a DNS answer's text: escaped here, once.
        return f"[{elapsed:6.2f}s] {prefix}{printable_lines(record.getMessage())}"


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
        with _signals_interrupt():
            return _run(args_list)
    except Interrupted as exc:  # between the run's end and the handlers' restoration
        print(f"acmelite: interrupted by {exc.signame}", file=sys.stderr)
        return EXIT_INTERRUPTED[exc.signame]
    finally:
        json_requested.reset(token)


class Interrupted(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised where the program is, like Ctrl-C's KeyboardInterrupt."""

    def __init__(self, signame: str) -> None:
        super().__init__(signame)
        self.signame = signame


#: Signals that end a run the way Ctrl-C does: Kubernetes (pod deletion,
#: activeDeadlineSeconds), systemd and timeout(1) send SIGTERM; a closed terminal SIGHUP.
_INTERRUPTING = ("SIGTERM", "SIGHUP")


@contextlib.contextmanager
def _signals_interrupt() -> Iterator[None]:
    """Turn SIGTERM and SIGHUP into :class:`Interrupted` for the time of one run.

    Theory of operation: the exception unwinds the stack like Ctrl-C's, so every ``finally``
    runs — the solver's cleanup (challenge files and TXT records removed, the standalone
    server stopped), the lock's release, the temporary files' removal. Only the first of
    these signals raises: a second one while that cleanup runs (Kubernetes sends one, then
    SIGKILL after the grace period) must not cut the cleanup short, so it is only logged.
    The previous handlers come back afterwards (``main`` may run many times in a process),
    and off the main thread, where Python cannot install handlers, nothing changes.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    raised = False

    def interrupt(signum: int, frame: object) -> None:
        nonlocal raised
        name = signal.Signals(signum).name
        if raised:
            logging.getLogger("acmelite").warning("%s again: still cleaning up", name)
            return
        raised = True
        raise Interrupted(name)

    previous = {name: signal.signal(getattr(signal, name), interrupt) for name in _INTERRUPTING}
    try:
        yield
    finally:
        for name, handler in previous.items():
            signal.signal(getattr(signal, name), handler)


def _run(argv: list[str]) -> int:
    parser = _parser_for(argv)
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
    except KeyboardInterrupt as exc:
        name = exc.signame if isinstance(exc, Interrupted) else "SIGINT"
        print(f"acmelite: interrupted by {name}", file=sys.stderr)
        return EXIT_INTERRUPTED[name]
    except Exception as exc:
        if verbose >= 2:
            raise
        print(
            f"acmelite: internal error: {type(exc).__name__}: {printable(str(exc))} (a bug:"
            " please report it; -vv shows the traceback)",
            file=sys.stderr,
        )
        return EXIT_ERROR
    return code
