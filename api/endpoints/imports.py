"""POST /api/v1/readings and /api/v1/bills: a readings or bills CSV body, imported all or nothing (`storage.imports`)."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pydantic

from api.endpoints.submissions import filing_of
from api.framework import Api, Request, Unprocessable, config_problems
from api.framework import Problem as ApiProblem
from core.access import Forbidden, visible_filter
from core.csvio import BILLS_COLUMNS, READINGS_COLUMNS
from core.yamlfile import ConfigError
from storage import ImportRejected
from storage.imports import import_bills, import_readings

BODY = "<body>"  # how problems name the file


class ImportCounts(pydantic.BaseModel):
    new: int
    identical: int


class BillCounts(ImportCounts):
    replaced: int


class BillQuery(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    replace: bool = pydantic.Field(False, description="correct stored bills that differ (old values audited)")
    reason: str | None = pydantic.Field(None, max_length=1000, description="why (kept in the audit trail)")


def register(api: Api) -> None:
    def in_scope(req: Request, column: str) -> Any:
        """A check of a parsed file: every row's institution visible to the user, else 403."""
        visible = visible_filter(req.user, api.ctx.registry)
        meters = api.ctx.registry.meter_by_id

        def check(frame: pd.DataFrame) -> None:
            if visible is None:
                return
            ids = frame[column].drop_duplicates()
            insts = ids.map(lambda m: meters[m].institution) if column == "meter_id" else ids
            outside = sorted(set(ids[~insts.isin(visible)]))
            if outside:
                raise Forbidden(", ".join(outside[:20]))
        return check

    def run(fn: Any, req: Request, column: str, **kw: Any) -> Any:
        try:
            return fn(api.ctx.store, api.ctx.registry, BODY, data=req.body, check=in_scope(req, column), **kw)
        except ConfigError as exc:
            raise config_problems(exc) from None
        except ImportRejected as exc:
            raise Unprocessable([ApiProblem(line=p.line or None, field=p.field, message=p.message)
                                 for p in exc.located]) from None

    @api.route("/readings", "POST", summary="import meter readings (CSV, all or nothing)", response=ImportCounts,
               body_csv=",".join(READINGS_COLUMNS), tag="import")
    def readings(req: Request) -> Any:
        """The body is a readings CSV (`meter_id,time,value`, text/csv). Every problem is
        listed by line and field and nothing is written; a value that differs from a stored
        one is a problem too. Readings already stored with the same value count as
        identical: the same body posted twice is stored once."""
        done = run(import_readings, req, "meter_id")
        return {"new": done.new, "identical": done.identical}

    @api.route("/bills", "POST", summary="import bills (CSV, all or nothing)", response=BillCounts, query=BillQuery,
               body_csv=",".join(BILLS_COLUMNS), tag="import")
    def bills(req: Request) -> Any:
        """The body is a bills CSV (`institution_id,energy,period_start,period_end,quantity,unit,cost_cny`).
        Bills are append-only: a bill for a period already billed with other figures is refused (422) unless
        `replace=true` (`replaced`; the old values go to the audit trail with `reason`); one overlapping a
        billed period is always refused. Imported bills are recorded in the audit trail (source `api`)."""
        done = run(import_bills, req, "institution_id", book=filing_of(api).book, who=req.user.name, source="api",
                   replace=req.query.replace, reason=req.query.reason)
        return {"new": done.new, "identical": done.identical, "replaced": done.replaced}
