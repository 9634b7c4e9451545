"""Schema of the collectors' per-gateway options (`civicwatt collect --gateways FILE`).

`GatewayOptions` is the one definition of the option names and defaults: the poller
uses it as its settings object, the CLI validates the file against it.

    "*": {timeout_s: 1.0, retries: 1, backoff_s: 0.05, connections: 1}
    "10.1.2.3:502": {max_registers: 4, pause_s: 0.1, fail_fast_after: 3}
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AfterValidator, Field, RootModel

from core.profiles import MODBUS_MAX_READ
from core.schemas.base import NonNegative, NonNegativeInt, Positive, Strict


class GatewayOptions(Strict):
    """Per-gateway polling settings (see docs/collectors.md)."""

    timeout_s: Positive = 1.0
    retries: NonNegativeInt = 1
    backoff_s: NonNegative = 0.05
    max_registers: Annotated[int, Field(strict=True, ge=1, le=MODBUS_MAX_READ)] = MODBUS_MAX_READ
    pause_s: NonNegative = 0.0
    connections: NonNegativeInt = 1
    fail_fast_after: NonNegativeInt = 3
    cycle_fraction: Annotated[Positive, Field(le=1)] = 0.8  # a cycle must end within this share of the interval

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> GatewayOptions:
        """Options from a mapping of option names (ValidationError when one is wrong)."""
        return cls.model_validate(doc)


def _gateway_key(key: str) -> str:
    m = re.fullmatch(r".+:(\d+)", key)
    if key != "*" and (m is None or not 1 <= int(m.group(1)) <= 65535):
        raise ValueError("expected 'host:port' (port 1-65535) or '*'")
    return key


class GatewaysFile(RootModel[dict[Annotated[str, AfterValidator(_gateway_key)], GatewayOptions]]):
    """The whole file: options by gateway (`host:port`, or `"*"` for every gateway)."""
