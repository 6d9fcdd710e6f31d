"""``acmelite plugins``: the installed challenge solvers, their options, where they come from."""

from __future__ import annotations

import argparse
import json

from .common import add_output_arguments

__all__ = ["add_parser", "run"]


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "plugins",
        help="list the installed challenge solvers and their options",
        description="List the challenge solvers registered under the 'acmelite.solvers' entry"
        " points (the built-ins and third-party ones): name, challenge type, distribution and"
        " options; secret options are marked and are given as KEY=@PATH or in the"
        " environment, never inline.",
        epilog="examples:\n  acmelite plugins\n  acmelite plugins --json | jq '.solvers[].name'",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--json", action="store_true", help="print the list as JSON on stdout")
    add_output_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..solvers.registry import SolverConfigError, environment_name, installed_solvers

    found = installed_solvers()
    if args.json:
        listing = [
            s.to_json() if not isinstance(s, SolverConfigError) else
            {"name": s.solver, "error": str(s)}
            for s in found
        ]  # fmt: skip
        print(json.dumps({"ok": True, "solvers": listing}, indent=2))
        return 0
    for solver in found:
        if isinstance(solver, SolverConfigError):
            print(f"{solver.solver}  (broken: {solver})\n")
            continue
        print(f"{solver.name}  {solver.challenge_type}  from {solver.distribution}")
        for option in solver.options:
            marks = [m for m, on in (("required", option.required), ("secret", option.secret))
                     if on]  # fmt: skip
            if option.default:
                marks.append(f"default {option.default}")
            env = environment_name(solver.challenge_type, option.name)
            extra = f" [{', '.join(marks)}]" if marks else ""
            print(f"    {option.name}{extra}: {option.help} (env ${env})")
        print()
    return 0
