"""Solver plugins by name: find them, describe them, and build one from a configuration.

A :class:`ChallengeConfig` names a challenge type, a registered solver and its options
(strings). :func:`solver_for` is the one place in acmelite that turns such a configuration
into a solver object — ``acmelite issue``, ``acmelite renew`` and library callers alike —
so a plugin installed beside acmelite works everywhere the built-ins do.

Theory of operation — where an option's value comes from, first match wins:

1. the configuration itself. A value ``@PATH`` is a reference: the file is read at every
   run (trailing newline removed) and only the reference is ever stored; ``@@text`` stands
   for the literal ``@text``;
2. the environment: ``ACMELITE_<KIND>_<NAME>`` with ``KIND`` ``DNS`` for the DNS challenge
   types, ``HTTP`` for http-01, ``TLS`` for tls-alpn-01 (upper case, ``-`` as ``_``), then
   the option's own ``env`` names;
3. the option's default.

A ``secret`` option may come from 1 only as an ``@PATH`` reference, or from 2: so no
secret ever reaches ``renewal.json``, a log line or an error message.

Solvers register under the entry-point group ``acmelite.solvers``; the built-ins are there
too (and in :data:`BUILTIN_SOLVERS`, so a source checkout without installed metadata still
finds them). A dns-01 solver also answers dns-account-01 (the task names the record).

A configuration may name a ``fallback``: the challenge type (and solver) to answer where
the CA offers no challenge of the first type — dns-01 where a CA has no dns-persist-01.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, cast

from ..challenges import ConfigurableSolver, Solver, SolverOption
from ..errors import InvalidInput

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

__all__ = [
    "BUILTIN_SOLVERS",
    "ENTRY_POINT_GROUP",
    "ChallengeConfig",
    "SolverConfigError",
    "SolverInfo",
    "absolute_config",
    "answers",
    "available_solvers",
    "check_config",
    "environment_name",
    "installed_solvers",
    "load_solver_class",
    "resolve_options",
    "solver_for",
    "solver_info",
    "solvers_for",
]

ENTRY_POINT_GROUP = "acmelite.solvers"

#: The solvers acmelite ships, as its ``pyproject.toml`` registers them (a test keeps
#: the two equal).
BUILTIN_SOLVERS: Mapping[str, str] = {
    "standalone": "acmelite.solvers.http01:StandaloneSolver",
    "webroot": "acmelite.solvers.http01:WebrootSolver",
    "rfc2136": "acmelite.solvers.rfc2136:Rfc2136Solver",
    "hook": "acmelite.solvers.hook:HookSolver",
    "tls-alpn": "acmelite.solvers.tlsalpn:TlsAlpnSolver",
    "persist": "acmelite.solvers.persist:PersistSolver",
    "powerdns": "acmelite.solvers.powerdns:PowerDnsSolver",
    "lexicon": "acmelite.solvers.lexicon:LexiconSolver",
}

#: The most a ``@PATH`` option file may hold: options are keys and names, not data.
MAX_OPTION_FILE = 64 * 1024


class SolverConfigError(InvalidInput):
    """A challenge configuration that names no installed solver, or options it does not take.

    ``solver`` is the solver's name; ``option`` the option at fault ("" when the solver
    itself is); ``choices`` what would have been accepted (solver or option names).
    """

    def __init__(
        self, message: str, *, solver: str, option: str = "", choices: Sequence[str] = ()
    ) -> None:
        super().__init__(message)
        self.solver = solver
        self.option = option
        self.choices = tuple(choices)


@dataclass(frozen=True, slots=True, kw_only=True)
class ChallengeConfig:
    """How to answer challenges: ``type`` (one of
    :data:`~acmelite.constants.CHALLENGE_TYPES`), the registered ``solver`` that answers
    them, and its ``options`` (strings, ``@PATH`` references kept as written); ``fallback``
    is what answers where the CA offers no ``type`` challenge. What ``renewal.json`` holds
    under ``"challenge"``."""

    type: str = "http-01"
    solver: str = "standalone"
    options: Mapping[str, str] = field(default_factory=dict)
    fallback: ChallengeConfig | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.type, str) or not self.type:
            raise InvalidInput(f"bad challenge type {self.type!r}")
        if not isinstance(self.solver, str) or not self.solver:
            raise InvalidInput(f"bad solver name {self.solver!r}")
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in self.options.items()):
            raise InvalidInput(f"the options of solver {self.solver!r} must be strings")
        object.__setattr__(self, "options", dict(sorted(self.options.items())))
        if self.fallback is not None:
            if self.fallback.fallback is not None:
                raise InvalidInput("a fallback challenge cannot have a fallback of its own")
            if self.fallback.type == self.type:
                raise InvalidInput(f"the fallback of {self.type} must be another challenge type")

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {
            "type": self.type,
            "solver": self.solver,
            "options": dict(self.options),
        }
        if self.fallback is not None:
            out["fallback"] = self.fallback.to_json()
        return out

    @classmethod
    def from_json(cls, data: object, *, source: str) -> ChallengeConfig:
        """Read the ``"challenge"`` object of ``renewal.json`` (``source`` names the file)."""
        if not isinstance(data, Mapping):
            raise InvalidInput(f"{source}: 'challenge' is not an object")
        kind, solver, options = data.get("type"), data.get("solver"), data.get("options", {})
        if not isinstance(kind, str) or not isinstance(solver, str):
            raise InvalidInput(f"{source}: 'challenge' needs a 'type' and a 'solver'")
        if not isinstance(options, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in options.items()
        ):
            raise InvalidInput(f"{source}: challenge 'options' must map names to strings")
        fallback = data.get("fallback")
        return cls(
            type=kind,
            solver=solver,
            options=options,
            fallback=None if fallback is None else cls.from_json(fallback, source=source),
        )

    def absolute(
        self, base: str | os.PathLike[str] | None = None, *, paths: Sequence[str] = ()
    ) -> ChallengeConfig:
        """A copy whose ``@PATH`` references, and the values of the options named in
        ``paths``, are absolute (against ``base``, else the cwd), so that a later run from
        another directory (cron) reads the same files. The fallback is left as it is: see
        :func:`absolute_config`, which knows every solver's path options."""

        def absolute(text: str) -> str:
            return os.path.abspath(Path(base or os.getcwd()) / os.path.expanduser(text))

        options = {}
        for name, value in self.options.items():
            options[name] = value
            if value.startswith("@") and not value.startswith("@@"):
                options[name] = "@" + absolute(value[1:])
            elif name in paths and value:
                options[name] = absolute(value)
        return ChallengeConfig(
            type=self.type, solver=self.solver, options=options, fallback=self.fallback
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class SolverInfo:
    """A registered solver: its name, challenge type, distribution and options.

    ``extra_option`` is the solver class's ``extra_option`` if it has one: a solver that
    passes options through to something else (``lexicon``: the provider's own options)
    describes there an option it takes beyond ``options``, or returns None.
    """

    name: str
    challenge_type: str
    target: str
    distribution: str
    options: tuple[SolverOption, ...]
    extra_option: Callable[[str], SolverOption | None] | None = field(
        default=None, compare=False, repr=False
    )

    def option(self, name: str) -> SolverOption | None:
        declared = next((o for o in self.options if o.name == name), None)
        if declared is None and self.extra_option is not None:
            return self.extra_option(name)
        return declared

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "challenge_type": self.challenge_type,
            "target": self.target,
            "distribution": self.distribution,
            "options": [o.to_json() for o in self.options],
        }


def _entry_points() -> dict[str, EntryPoint]:
    # imported here: importlib.metadata is a tenth of a warm `acmelite list`'s time, and
    # reading renewal.json (config.py) needs this module but no entry point
    from importlib.metadata import EntryPoint, entry_points

    found: dict[str, EntryPoint] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(ep.name, ep)
    for name, target in BUILTIN_SOLVERS.items():
        if name not in found:
            found[name] = EntryPoint(name=name, value=target, group=ENTRY_POINT_GROUP)
    return found


def available_solvers() -> dict[str, str]:
    """Registered solver names mapped to their targets (``module:Class``); loads nothing."""
    return {name: ep.value for name, ep in sorted(_entry_points().items())}


def load_solver_class(name: str) -> type[ConfigurableSolver]:
    """The class registered as ``name`` (built-in or third-party).

    Raises :class:`SolverConfigError` for an unknown name or a class that cannot be built
    from options (no ``options``/``from_options``), naming the installed solvers.
    """
    ep = _entry_points().get(name)
    if ep is None:
        known = sorted(_entry_points())
        raise SolverConfigError(
            f"unknown solver {name!r}; installed solvers: {', '.join(known) or 'none'}",
            solver=name,
            choices=known,
        )
    try:
        loaded = ep.load()
    except Exception as exc:  # a broken plugin must not take the run down with a traceback
        raise SolverConfigError(
            f"solver {name!r} ({ep.value}) cannot be loaded: {type(exc).__name__}: {exc}",
            solver=name,
        ) from exc
    missing = [
        attr for attr in ("challenge_type", "options", "from_options") if not hasattr(loaded, attr)
    ]
    if missing:
        raise SolverConfigError(
            f"solver {name!r} ({ep.value}) is not a configurable solver: it lacks"
            f" {', '.join(missing)}",
            solver=name,
        )
    return cast("type[ConfigurableSolver]", loaded)


def solver_info(name: str) -> SolverInfo:
    """What solver ``name`` is and takes (loads its class)."""
    cls = load_solver_class(name)
    ep = _entry_points()[name]
    dist = getattr(ep, "dist", None)
    distribution = getattr(dist, "name", "") or ep.value.partition(".")[0]
    extra = getattr(cls, "extra_option", None)
    return SolverInfo(
        name=name,
        challenge_type=str(cls.challenge_type),
        target=ep.value,
        distribution=distribution,
        options=tuple(cls.options),
        extra_option=extra if callable(extra) else None,
    )


def installed_solvers() -> list[SolverInfo | SolverConfigError]:
    """Every registered solver, described; a broken one as the error that says why."""
    out: list[SolverInfo | SolverConfigError] = []
    for name in available_solvers():
        try:
            out.append(solver_info(name))
        except SolverConfigError as exc:
            out.append(exc)
    return out


def environment_name(challenge_type: str, option: str) -> str:
    """``ACMELITE_DNS_TSIG_SECRET`` for option ``tsig-secret`` of a dns-01 solver."""
    kind = challenge_type.split("-", 1)[0].upper()
    return f"ACMELITE_{kind}_{option.upper().replace('-', '_')}"


def answers(solver_type: str, challenge_type: str) -> bool:
    """Whether a solver of ``solver_type`` answers ``challenge_type`` challenges: its own,
    and dns-account-01 for a dns-01 solver (the record name is in the task)."""
    return solver_type == challenge_type or (
        solver_type == "dns-01" and challenge_type == "dns-account-01"
    )


def check_config(config: ChallengeConfig) -> SolverInfo:
    """Check ``config`` (and its fallback) against the solvers' declared options, without
    reading any value; returns the info of ``config``'s own solver.

    Raises :class:`SolverConfigError`: unknown solver, a solver of another challenge
    type, an option the solver does not take, or a secret option given inline.
    """
    if config.fallback is not None:
        check_config(config.fallback)
    info = solver_info(config.solver)
    if not answers(info.challenge_type, config.type):
        raise SolverConfigError(
            f"solver {info.name!r} answers {info.challenge_type}, not {config.type}",
            solver=info.name,
        )
    names = [o.name for o in info.options]
    for name, value in config.options.items():
        option = info.option(name)
        if option is None:
            raise SolverConfigError(
                f"solver {info.name!r} has no option {name!r}; its options:"
                f" {', '.join(names) or 'none'}",
                solver=info.name,
                option=name,
                choices=names,
            )
        if option.secret and not (value.startswith("@") and not value.startswith("@@")):
            env = environment_name(info.challenge_type, name) if name in names else ""
            env = env or (option.env[0] if option.env else "")
            raise SolverConfigError(
                f"option {name!r} of solver {info.name!r} is secret and is not taken inline"
                f" (it would be stored and visible to other users): give it as"
                f" {name}=@PATH (a file read at every run)" + (f" or in ${env}" if env else ""),
                solver=info.name,
                option=name,
            )
    return info


def resolve_options(
    info: SolverInfo, config: ChallengeConfig, environ: Mapping[str, str]
) -> dict[str, str]:
    """The values ``info``'s solver gets: configured (``@PATH`` read), else from
    ``environ``, else defaults. Raises :class:`SolverConfigError` for a missing required
    option, naming every place it may come from; never a secret value."""
    values: dict[str, str] = {}
    for option in info.options:
        env_names = (environment_name(info.challenge_type, option.name), *option.env)
        raw = config.options.get(option.name)
        if raw is not None:
            values[option.name] = _read_value(info, option, raw)
            continue
        from_env = next((environ[n] for n in env_names if environ.get(n)), None)
        if from_env is not None:
            values[option.name] = from_env
        elif option.default is not None:
            values[option.name] = option.default
        elif option.required:
            how = f"{option.name}=@PATH or ${env_names[0]}"
            if not option.secret:
                how = f"{option.name}=VALUE, {how}"
            raise SolverConfigError(
                f"solver {info.name!r} needs option {option.name!r} ({option.help}); give {how}",
                solver=info.name,
                option=option.name,
            )
    declared = {o.name for o in info.options}
    for name, raw in config.options.items():
        extra = info.option(name) if name not in declared else None
        if extra is not None:
            values[name] = _read_value(info, extra, raw)
    return values


def _read_value(info: SolverInfo, option: SolverOption, raw: str) -> str:
    if raw.startswith("@@"):
        return raw[1:]
    if not raw.startswith("@"):
        return raw
    path = Path(os.path.expanduser(raw[1:]))
    try:
        with path.open("rb") as f:
            data = f.read(MAX_OPTION_FILE + 1)
    except OSError as exc:
        raise InvalidInput(
            f"cannot read option {option.name!r} of solver {info.name!r} from {path}:"
            f" {exc.strerror or exc}"
        ) from None
    if len(data) > MAX_OPTION_FILE:
        raise InvalidInput(
            f"{path} (option {option.name!r} of solver {info.name!r}) is larger than"
            f" {MAX_OPTION_FILE // 1024} KiB"
        )
    try:
        return data.decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError:
        raise InvalidInput(
            f"{path} (option {option.name!r} of solver {info.name!r}) is not UTF-8 text"
        ) from None


def absolute_config(
    config: ChallengeConfig, base: str | os.PathLike[str] | None = None
) -> ChallengeConfig:
    """``config`` (and its fallback) with every ``@PATH`` reference and path option made
    absolute against ``base`` (default: the current directory)."""
    info = check_config(config)
    fallback = config.fallback
    if fallback is not None:
        fallback_info = check_config(fallback)
        fallback = fallback.absolute(base, paths=[o.name for o in fallback_info.options if o.path])
    made = config.absolute(base, paths=[o.name for o in info.options if o.path])
    return ChallengeConfig(type=made.type, solver=made.solver, options=made.options,
                           fallback=fallback)  # fmt: skip


def solvers_for(
    config: ChallengeConfig, *, environ: Mapping[str, str] | None = None
) -> tuple[Solver, Solver | None]:
    """The solver of ``config`` and that of its fallback (None without one), both built by
    :func:`solver_for`."""
    fallback = None if config.fallback is None else solver_for(config.fallback, environ=environ)
    return solver_for(config, environ=environ), fallback


def solver_for(config: ChallengeConfig, *, environ: Mapping[str, str] | None = None) -> Solver:
    """Build the solver ``config`` describes: check it, resolve its options, construct.

    ``environ`` supplies options given as environment variables (default ``os.environ``;
    pass ``{}`` to read none). Raises :class:`SolverConfigError` (or another
    :class:`InvalidInput` from the solver) before any request is made.
    """
    info = check_config(config)
    values = resolve_options(info, config, os.environ if environ is None else environ)
    cls = load_solver_class(info.name)
    solver = cls.from_options(values)
    if not isinstance(solver, Solver):
        raise SolverConfigError(
            f"solver {info.name!r}: from_options returned {type(solver).__name__},"
            " which has no perform/cleanup",
            solver=info.name,
        )
    return solver
