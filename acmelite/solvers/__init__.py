"""Challenge solvers: the built-in ones, and the registry that builds any installed solver.

The interface a solver implements lives in :mod:`acmelite.challenges`; the built-ins are
:mod:`.http01` (``standalone``, ``webroot``), :mod:`.rfc2136`, :mod:`.powerdns`,
:mod:`.lexicon` and :mod:`.hook` (dns-01 and dns-account-01), :mod:`.tlsalpn` (``tls-alpn``:
tls-alpn-01, with :mod:`.alpn`) and :mod:`.persist` (``persist``: dns-persist-01).
:func:`solver_for` builds a solver from a :class:`ChallengeConfig`.
"""

from ..challenges import ChallengeTask, ConfigurableSolver, Solver, SolverOption
from .registry import (
    ENTRY_POINT_GROUP,
    ChallengeConfig,
    SolverConfigError,
    SolverInfo,
    available_solvers,
    check_config,
    installed_solvers,
    load_solver_class,
    solver_for,
    solver_info,
)

__all__ = [
    "ENTRY_POINT_GROUP",
    "ChallengeConfig",
    "ChallengeTask",
    "ConfigurableSolver",
    "Solver",
    "SolverConfigError",
    "SolverInfo",
    "SolverOption",
    "available_solvers",
    "check_config",
    "installed_solvers",
    "load_solver_class",
    "solver_for",
    "solver_info",
]
