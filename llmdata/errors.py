"""The one base class of every error llmpipe reports as a single line.

The CLI prints `llmpipe: error: <first line of the message>` and exits with status 2 for any
`LlmpipeError` (found through `raise ... from` chains and, where Beam re-raised a worker's error
as text, by the class name in that text); anything else is a bug and keeps its traceback.
"""
from __future__ import annotations


class LlmpipeError(Exception):
    """A failure the user can act on (bad config, unusable input, a record under a `fail`
    policy); its message is one line that names what is wrong."""


def error_names() -> tuple[str, ...]:
    """Names of `LlmpipeError` and every subclass defined so far (for errors that reach the
    CLI only as text)."""
    names, todo = [], [LlmpipeError]
    while todo:
        cls = todo.pop()
        names.append(cls.__name__)
        todo.extend(cls.__subclasses__())
    return tuple(names)
