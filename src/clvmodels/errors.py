"""Exceptions and warnings raised by clvmodels, in one place.

Every data error is a :class:`DataError`, a subclass of :class:`ValueError`, whose
message names the column, the rule that was broken and how many rows break it.
"""

from __future__ import annotations


class DataError(ValueError):
    """Input data break a documented rule (names column, rule and row count)."""

    def __init__(self, column: str | None, rule: str, n_rows: int | None = None, hint: str = ""):
        self.column = column
        self.rule = rule
        self.n_rows = n_rows
        where = f"column {column!r}: " if column is not None else ""
        count = ""
        if n_rows is not None:
            count = f" ({n_rows} row{'s' if n_rows != 1 else ''})"
        msg = f"{where}{rule}{count}"
        if hint:
            msg = f"{msg}. {hint}"
        super().__init__(msg)


class NotFittedError(RuntimeError):
    """A method that needs fitted parameters was called before ``fit``/``from_params``."""


class ConvergenceError(RuntimeError):
    """The optimiser failed to find a maximum of the likelihood."""


class StatisticalWarning(UserWarning):
    """A fitted model or the data violate an assumption the user should know about."""
