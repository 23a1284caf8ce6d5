"""One rule for every on/off environment variable: `1/true/yes/on` is on, `0/false/no/off` is off
(pydantic's own boolean parsing, any case), unset or empty is the default, and anything else is
refused in one line naming the variable, so `LAKE_S3_PATH_STYLE=enabled` is never silently off."""

import os
from collections.abc import Mapping

from pydantic import TypeAdapter, ValidationError

_BOOL = TypeAdapter(bool)


def flag(name: str, default: bool = False, environ: Mapping[str, str] = os.environ) -> bool:
    value = (environ.get(name) or "").strip()
    if not value:
        return default
    try:
        return _BOOL.validate_python(value)
    except ValidationError:
        raise ValueError(f"{name}={value!r}: not an on/off value (1, true, yes, on / 0, false, no, off)") from None
