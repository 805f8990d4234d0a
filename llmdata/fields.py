"""Config field types shared by the data and training sections."""
from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator


def _not_empty(path: str) -> str:
    if not path:
        raise ValueError("a path cannot be empty (an unset shell variable?)")
    return path


#: a file, folder or glob: never "" (which would silently mean the current folder, or a default)
PathStr = Annotated[str, AfterValidator(_not_empty)]
