"""The project's own exceptions, and an error in one line: the one rule every command and step uses."""

from pydantic import ValidationError


class LakeError(Exception):
    """A failure the library explains in one line; the Dagster layer turns it into a `Failure` at the
    asset boundary."""

    @property
    def description(self) -> str:
        """The one line, under the name a Dagster `Failure` gives it."""
        return str(self)


def first_line(error: BaseException | None) -> str:
    """The error's first non-blank line (Spark's and the JVM's errors carry a stack below it)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__


def one_line(error: BaseException) -> str:
    """A Dagster `Failure`'s description; a refused setting as `Resource.field: why`; else the first line."""
    description = getattr(error, "description", None)  # a Dagster Failure, without importing Dagster
    if isinstance(description, str) and description:
        return description
    if isinstance(error, ValidationError):
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        return f"{error.title}.{where}: {first['msg'].removeprefix('Value error, ')}"
    return first_line(error)
