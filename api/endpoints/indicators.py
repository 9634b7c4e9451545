"""GET /api/v1/indicators: the annual carbon ledger's summary (or its region / category totals) as JSON."""

from __future__ import annotations

import re
from typing import Any, Literal

import pydantic

from api.framework import Api, Request, problem, records
from core.access import visible_filter
from reports.ledger import scoped_ledger

SUMMARY_FIELDS = ["institution_id", "name", "region", "category", "year", "floor_area_m2", "heated_area_m2",
                  "occupants", "kgce", "tce", "t_co2", "t_co2_scope1", "t_co2_scope2", "water_m3", "kgce_per_m2",
                  "kgce_per_person", "water_m3_per_person", "kgco2_per_m2", "estimated_share",
                  "quota_levels_met", "quota_indicators", "quota_within_constraint", "rank_in_category",
                  "category_peers", "source"]
TOTAL_FIELDS = ["key", "institutions", "institutions_with_data", "floor_area_m2", "heated_area_m2", "occupants",
                "kgce", "tce", "t_co2", "t_co2_scope1", "t_co2_scope2", "water_m3", "kgce_per_m2", "kgce_per_person",
                "water_m3_per_person", "kgco2_per_m2", "estimated_share"]
_MONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")


class IndicatorsQuery(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    year: int = pydantic.Field(ge=1990, le=2100, description="calendar year (local time)")
    month: str | None = pydantic.Field(None, description="YYYY-MM inside `year`: that month only (no quota levels)")
    group: Literal["institution", "region", "category"] = pydantic.Field(
        "institution", description="one row per institution (the ledger summary), region or category (its totals)")


class IndicatorRow(pydantic.BaseModel):
    """A ledger summary row (group=institution) or a totals row (region/category: `key`
    is the region or category, ratios are ratios of sums). `level_<indicator>` columns
    carry the quota level of each standard that applies."""

    model_config = pydantic.ConfigDict(extra="allow")
    institution_id: str | None = None
    key: str | None = None
    name: str | None = None
    region: str | None = None
    category: str | None = None
    year: int | None = None
    kgce: float | None = None
    tce: float | None = None
    t_co2: float | None = None
    kgce_per_m2: float | None = None
    kgce_per_person: float | None = None
    water_m3_per_person: float | None = None
    kgco2_per_m2: float | None = None
    estimated_share: float | None = None
    rank_in_category: int | None = None
    category_peers: int | None = None
    source: str | None = pydantic.Field(None, description="the lower-level instance that reports it (纵向直报); "
                                                          "null: ours (group=institution)")


class IndicatorRows(pydantic.BaseModel):
    year: int
    month: str | None
    group: str
    basis: str
    factor_set: str
    rows: list[IndicatorRow]


def register(api: Api) -> None:
    @api.route("/indicators", summary="indicators of the ledger summary, per institution, region or category",
               query=IndicatorsQuery, response=IndicatorRows)
    def indicators(req: Request) -> Any:
        """The numbers of `civicwatt ledger --year YYYY` (sheet summary; group=region|category:
        sheet totals), for the institutions in scope: ranks are among all peers, totals sum
        only what the token's user sees."""
        q: IndicatorsQuery = req.query
        month = None
        if q.month is not None:
            if not _MONTH.match(q.month) or int(q.month[:4]) != q.year:
                raise problem("month", f"must be YYYY-MM inside year {q.year}")
            month = int(q.month[5:])
        ctx = api.ctx
        tables = scoped_ledger(ctx.store, ctx.registry, q.year, visible_filter(req.user, ctx.registry),
                               quotas=ctx.quotas(), month=month)
        if q.group == "institution":
            frame = tables.summary.assign(source=tables.summary["institution_id"].map(ctx.registry.source_by_id))
            fields = [*SUMMARY_FIELDS, *(c for c in frame.columns if c.startswith("level_"))]
        else:
            frame = tables.totals[tables.totals["group"] == q.group]
            fields = TOTAL_FIELDS
        fields = [c for c in fields if c in frame.columns]
        return {"year": q.year, "month": q.month, "group": q.group, "basis": tables.basis,
                "factor_set": tables.factor_set, "rows": records(frame, fields)}
