"""GET /api/v1/consumption: one meter's consumption per hour, day or month, as `civicwatt export consumption` writes it."""

from __future__ import annotations

from typing import Any, Literal

import pydantic

from api.framework import Api, Request, config_problems, problem, records
from core.access import Forbidden, require_institution
from core.csvio import consumption_table
from core.yamlfile import ConfigError
from storage.base import date_range


class ConsumptionQuery(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    meter: str = pydantic.Field(max_length=200, description="meter id")
    freq: Literal["hour", "day", "month"] = "day"
    start: str = pydantic.Field(max_length=40, description="local date (or ISO time) of the registry's time zone")
    end: str = pydantic.Field(max_length=40, description="local date, inclusive (an ISO time: exclusive)")


class ConsumptionRow(pydantic.BaseModel):
    period_start: str
    quantity: float | None
    unit: str
    estimated_share: float | None


class ConsumptionRows(pydantic.BaseModel):
    meter: str
    freq: str
    rows: list[ConsumptionRow]


def register(api: Api) -> None:
    @api.route("/consumption", summary="a meter's consumption per period", query=ConsumptionQuery,
               response=ConsumptionRows)
    def consumption(req: Request) -> Any:
        """Consumption of one meter in [start, end] (quantity in the meter's index unit
        times its multiplier, estimated_share the interpolated part), the rows of
        `civicwatt export consumption --meter ID`."""
        q: ConsumptionQuery = req.query
        ctx = api.ctx
        meter = ctx.registry.meter_by_id.get(q.meter)
        if meter is None:
            if req.user.role != "admin":  # unknown ids are refused like others' (no probing)
                raise Forbidden(q.meter)
            raise problem("meter", f"unknown meter {q.meter!r}")
        require_institution(req.user, ctx.registry, meter.institution)
        try:
            lo, hi = date_range(q.start, q.end, ctx.registry.timezone, "query", ("start", "end"))
        except ConfigError as exc:
            raise config_problems(exc) from None
        if (hi - lo).days > 3700:
            raise problem("end", "at most about ten years at a time")
        table = consumption_table(ctx.store.consumption(q.freq, lo, hi, [q.meter]), ctx.registry)
        return {"meter": q.meter, "freq": q.freq, "rows": records(table, list(ConsumptionRow.model_fields))}
