"""Exceptions and warnings raised by clvmodels, in one place.

Every data error is a :class:`DataError`, a subclass of :class:`ValueError`, whose
message names the column, the rule that was broken and how many rows break it.
"""

from __future__ import annotations

import contextlib
import contextvars


class DataError(ValueError):
    """Input data break a documented rule (names column, rule and row count)."""

    def __init__(self, column: str | None, rule: str, n_rows: int | None = None, hint: str = ""):
        self.column = column
        self.rule = rule
        self.n_rows = n_rows
        self.hint = hint
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


class DataWarning(UserWarning):
    """The data were accepted, but something in them was counted that the user should see
    (e.g. exact duplicate rows kept). The same counts are in ``TransactionLog.quality``."""


# --- the caller's language -----------------------------------------------------------------
#
# A message that tells the user what to pass names a Python keyword (``allow_returns=True``)
# when Python called, and the command-line flag (``--allow-returns``) when the ``clvmodels``
# command did: the command sets its flags for the duration of the call (:func:`cli_flags`).

_FLAGS: contextvars.ContextVar[dict | None] = contextvars.ContextVar(
    "clvmodels_flags", default=None
)


def option(name: str, value: object = None) -> str:
    """How the caller sets option `name` (to `value`): keyword or command-line flag.

    >>> option("allow_returns", True)
    'allow_returns=True'
    >>> with cli_flags({"allow_returns": "--allow-returns"}):
    ...     option("allow_returns", True)
    '--allow-returns'
    """
    flags = _FLAGS.get()
    if flags is None:
        return name if value is None else f"{name}={value!r}"
    flag = flags.get(name, "--" + name.replace("_", "-"))
    if value is None or value is True:
        return flag
    text = str(value)
    return f"{flag} {text!r}" if (" " in text or "%" in text) else f"{flag} {text}"


@contextlib.contextmanager
def cli_flags(flags: dict[str, str]):
    """Word messages with these command-line flags (keyword -> flag) inside the block."""
    token = _FLAGS.set(dict(flags))
    try:
        yield
    finally:
        _FLAGS.reset(token)
