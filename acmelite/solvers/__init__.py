"""Challenge solver plugins: the :class:`Solver` protocol and the built-in solvers."""

from .base import ENTRY_POINT_GROUP, ChallengeTask, Solver, available_solvers, load_solver_class

__all__ = ["ENTRY_POINT_GROUP", "ChallengeTask", "Solver", "available_solvers", "load_solver_class"]
