"""GET /api/v1/rankings: the dashboard's ranking query (`quotas.ranking`) as JSON pages."""

from __future__ import annotations

from typing import Any

import pydantic

from api.framework import Api, Request, problem, records
from quotas.ranking import ranked, user_query
from quotas.tables import INDICATORS

MAX_LIMIT = 1000


class RankingsQuery(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    year: int = pydantic.Field(ge=1990, le=2100, description="calendar year (a running year: complete days so far)")
    indicator: str = pydantic.Field(description=f"one of {', '.join(INDICATORS)}")
    region: str | None = pydantic.Field(None, description="peers inside this region's subtree (one you may choose)")
    category: str | None = pydantic.Field(None, description="only this category")
    offset: int = pydantic.Field(0, ge=0, le=10_000_000)
    limit: int = pydantic.Field(100, ge=1, le=MAX_LIMIT)


class RankingRow(pydantic.BaseModel):
    institution_id: str
    name: str
    region: str
    category: str
    indicator: str
    value: float | None
    rank_in_category: int
    category_peers: int
    yoy_pct: float | None  # percent against the same period of the year before; null without one
    level: str
    estimated_share: float | None
    source: str | None = pydantic.Field(description="the lower-level instance that reports it (纵向直报); null: ours")


class RankingRows(pydantic.BaseModel):
    year: int
    indicator: str
    total: int
    offset: int
    rows: list[RankingRow]


def register(api: Api) -> None:
    @api.route("/rankings", summary="institutions ranked within their category (peer groups)", query=RankingsQuery,
               response=RankingRows)
    def rankings(req: Request) -> Any:
        """Rank 1 is the lowest value among the institutions of the same category in the
        region (the whole portfolio for an admin without `region`); ranks are computed over
        all peers before the rows are cut to the token's scope, as on the dashboard."""
        q: RankingsQuery = req.query
        ctx = api.ctx
        try:
            rq, year = user_query(req.user, ctx.registry, q.year, q.region, q.category, q.indicator, "", None, 0,
                                  q.limit, ctx.tables.current_year())
        except ValueError as exc:
            field = "indicator" if str(exc) == q.indicator else "category"
            raise problem(field, f"unknown {field} {exc}") from None
        rows = ranked(ctx.tables.ranking_table(year), rq)
        page = rows.iloc[q.offset:q.offset + q.limit].rename(
            columns={"rank": "rank_in_category", "peers": "category_peers", "yoy": "yoy_pct"})
        page = page.assign(indicator=q.indicator, source=page["institution_id"].map(ctx.registry.source_by_id))
        return {"year": year, "indicator": q.indicator, "total": len(rows), "offset": q.offset,
                "rows": records(page, list(RankingRow.model_fields))}
