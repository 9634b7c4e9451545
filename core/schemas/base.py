"""The building blocks of every config schema: a strict model base and number types.

YAML 1.1 reads `1e6` as text and `yes` as a boolean, so the number types accept numeric
text ("3.57e6", "1_000") but never a boolean, NaN or infinity.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints

ID_PATTERN = r"^[A-Za-z0-9_-]+$"  # an id in the registry and in upward reports: letters, digits, _ and -


class Strict(BaseModel):
    """A config section: unknown keys are errors, values are frozen, NaN/inf refused."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


def _no_bool(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError(f"must be a number, not {value!r}")
    return value


#: A finite number (numeric text accepted, booleans refused).
Number = Annotated[float, BeforeValidator(_no_bool), Field(allow_inf_nan=False)]
NonNegative = Annotated[Number, Field(ge=0)]
Positive = Annotated[Number, Field(gt=0)]
#: An integer, not a boolean nor a float (`2025`, not `2025.0` or `yes`).
Integer = Annotated[int, Field(strict=True)]
NonNegativeInt = Annotated[Integer, Field(ge=0)]
#: An id: text, or a number written as one (`id: 2025` is the id "2025").
Ident = Annotated[Annotated[str, StringConstraints(min_length=1)],
                  BeforeValidator(lambda v: str(v) if isinstance(v, int) and not isinstance(v, bool) else v)]
