"""Schema of a simulator fault script (`civicwatt simulate --faults FILE`), and the fault kinds.

A YAML list; each fault targets one meter or one gateway (by port):

    - {meter: HB-0001-E0, kind: offline, at_s: 60, duration_s: 300}
    - {meter: HB-0001-E2, kind: exception, code: 4}
    - {gateway: 15021, kind: hang, at_s: 10, duration_s: 30}

Whether a meter is one of the simulator's is checked by the loader after this schema.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, RootModel, ValidationInfo, field_validator, model_validator

from core.schemas.base import Ident, NonNegative, Strict

#: Meter faults (device_sim.server documents their effect) and gateway faults.
FAULT_KINDS = ("offline", "slow", "exception", "reset", "replacement", "rollover", "spike")
GATEWAY_FAULT_KINDS = ("hang",)


class Fault(Strict):
    """One fault: its target, kind, start (`at_s` from the simulator's start), length
    (`duration_s`; none: until the simulator stops) and the kind's parameters."""

    meter: Ident | None = None
    gateway: Annotated[int, Field(strict=True, ge=1, le=65535)] | None = None
    kind: str
    at_s: NonNegative = 0.0
    duration_s: NonNegative | None = None
    code: Annotated[int, Field(strict=True, ge=1, le=255)] | None = None  # exception: Modbus exception code
    delay_s: NonNegative | None = None  # slow: answer delay
    amount: NonNegative | None = None  # spike: added to the index
    new_index: NonNegative | None = None  # replacement: the new meter's index
    margin: NonNegative | None = None  # rollover: distance below the register's maximum

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, kind: str, info: ValidationInfo) -> str:
        # a target given but invalid is missing from info.data (a default would be there)
        gateway = "gateway" not in info.data or info.data["gateway"] is not None
        meter = "meter" not in info.data or info.data["meter"] is not None
        kinds = GATEWAY_FAULT_KINDS if gateway else FAULT_KINDS if meter else FAULT_KINDS + GATEWAY_FAULT_KINDS
        if kind not in kinds:
            raise ValueError(f"unknown {'gateway' if gateway else 'meter' if meter else 'fault'} kind {kind!r} "
                             f"(known: {', '.join(kinds)})")
        return kind

    @model_validator(mode="after")
    def _one_target(self) -> Fault:
        if self.meter is None and self.gateway is None:
            raise ValueError("a fault needs a `meter` or a `gateway` (port)")
        if self.meter is not None and self.gateway is not None:
            raise ValueError("a fault targets a `meter` or a `gateway`, not both")
        return self

    def params(self) -> dict[str, Any]:
        """The kind's parameters that the file sets (for `Simulator.inject`)."""
        fixed = {"meter", "gateway", "kind", "at_s", "duration_s"}
        return {k: getattr(self, k) for k in self.model_fields_set - fixed}


class FaultScript(RootModel[list[Fault]]):
    """The whole file: a list of faults."""
