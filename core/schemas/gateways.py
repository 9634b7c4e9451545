"""Schema of the collectors' per-gateway options (`civicwatt collect --gateways FILE`).

`GatewayOptions` is the one definition of the option names and defaults: the poller
uses it as its settings object, the CLI validates the file against it.

    "*": {timeout_s: 1.0, retries: 1, backoff_s: 0.05, connections: 1}
    "10.1.2.3:502": {max_registers: 4, pause_s: 0.1, fail_fast_after: 3, offline_polls: 4}

`offline_polls` is the offline rule of `core.rules` for the meters behind that gateway
(default `core.rules.OFFLINE_POLLS`); `options_for` picks a gateway's options.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import AfterValidator, Field, RootModel

from core.profiles import MODBUS_MAX_READ
from core.rules import OFFLINE_POLLS
from core.schemas.base import Integer, NonNegative, NonNegativeInt, Positive, Strict


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
    offline_polls: Annotated[Integer, Field(ge=1)] = OFFLINE_POLLS  # unanswered polls in a row: offline

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> GatewayOptions:
        """Options from a mapping of option names (ValidationError when one is wrong)."""
        return cls.model_validate(doc)


def _entry(options: Mapping[str, GatewayOptions], host: str, port: int) -> GatewayOptions | None:
    return options.get(f"{host}:{port}") or options.get("*")


def options_for(options: Mapping[str, GatewayOptions], host: str, port: int) -> GatewayOptions:
    """The options of gateway `host:port`: its own entry, else the `"*"` entry, else the defaults."""
    return _entry(options, host, port) or GatewayOptions()


def offline_polls_of(meters, options: Mapping[str, GatewayOptions] | None = None,
                     default: int = OFFLINE_POLLS) -> dict[str, int]:
    """meter id -> offline threshold (polls) of every registry meter read over Modbus:
    its gateway's `offline_polls` (`default` for a gateway without options)."""
    options = options or {}
    out: dict[str, int] = {}
    for m in meters:  # registry meters (one per meter; a dict, no arithmetic)
        if m.modbus is not None:
            entry = _entry(options, m.modbus.host, m.modbus.port)
            out[m.id] = entry.offline_polls if entry is not None else default
    return out


def _gateway_key(key: str) -> str:
    m = re.fullmatch(r".+:(\d+)", key)
    if key != "*" and (m is None or not 1 <= int(m.group(1)) <= 65535):
        raise ValueError("expected 'host:port' (port 1-65535) or '*'")
    return key


class GatewaysFile(RootModel[dict[Annotated[str, AfterValidator(_gateway_key)], GatewayOptions]]):
    """The whole file: options by gateway (`host:port`, or `"*"` for every gateway)."""
