"""The asset boundary: a library error (`LakeError`) becomes a Dagster `Failure` with its one line."""

from collections.abc import Iterator
from contextlib import contextmanager

from dagster import Failure

from lake_assets.lib.errors import LakeError, one_line


@contextmanager
def failing_on_lake_errors() -> Iterator[None]:
    """Run a step's body; a `LakeError` fails the step with the error's one line as its description."""
    try:
        yield
    except LakeError as error:
        # A rejected credential says so: Dagster's retry policy then does not try again.
        raise Failure(description=one_line(error), allow_retries=getattr(error, "allow_retries", True)) from None
