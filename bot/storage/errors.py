"""Database errors without what users wrote in them.

`hide_parameters=True` keeps SQLAlchemy from printing a failed statement's parameters, but
asyncpg writes a parameter it cannot send into its own error text ("invalid input for query
argument $2: 'the user's words' (…)"), and that text is in every exception of the chain that
is logged. `hide_argument_values` cuts the value out of each of them.
"""

from __future__ import annotations

import re

from sqlalchemy.engine import ExceptionContext

__all__ = ["hide_argument_values", "on_engine_error"]

_ARGUMENT_VALUE = re.compile(r"(invalid input for query argument \$\d+): .*", re.DOTALL)
_HIDDEN = r"\1 (value hidden)"


def hide_argument_values(error: BaseException | None) -> None:
    """Cut parameter values out of the messages of `error` and of the errors behind it."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        error.args = tuple(
            _ARGUMENT_VALUE.sub(_HIDDEN, arg) if isinstance(arg, str) else arg for arg in error.args
        )
        error = error.__cause__ or error.__context__


def on_engine_error(context: ExceptionContext) -> None:
    """An engine's `handle_error` listener."""
    hide_argument_values(context.original_exception)
    hide_argument_values(context.sqlalchemy_exception)
