"""An error in one line, for a command's terminal or a step's failure: the one rule every command uses."""

from dagster import Failure
from pydantic import ValidationError


def first_line(error: BaseException | None) -> str:
    """The error's first non-blank line (Spark's and the JVM's errors carry a stack below it)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__


def one_line(error: BaseException) -> str:
    """A Dagster `Failure`'s description; a refused setting as `Resource.field: why`; else the first line."""
    if isinstance(error, Failure):
        return error.description or type(error).__name__
    if isinstance(error, ValidationError):
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        return f"{error.title}.{where}: {first['msg'].removeprefix('Value error, ')}"
    return first_line(error)
