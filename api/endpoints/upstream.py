"""POST /api/v1/upstream and the returns: the upper level's side of upward reporting (纵向直报).

A lower-level instance pushes one approved month of one institution per request
(`civicwatt.upstream`): the institution's basic information with its region chain, the
month and its figures per energy in canonical units (with their heating part, optional),
and the digest of that content. The upper level stores the figures as bills of the whole
month (their heating and estimated parts as the bills' `heating_quantity` and
`estimated_quantity`, `storage.base.BILL_FIGURES`) (so they feed every indicator,
ranking and statistics table as bills do), records the institution marked with its source
instance (`storage.upstream.UpstreamBook`; `core.registry.with_reported` adds it to the
registry of the running server at once, `quotas.tables.YearTables.update_registry`) and a receipt per (instance, institution, month, digest): the same content
pushed again (a retry, a restart on either side) is answered `duplicate` and not stored
twice. Changes are in the audit trail (source `api`, who `upstream:INSTANCE`).

`POST /api/v1/upstream/{institution_id}/{month}/return` (body `{"comment": ...}`) returns a
reported month to its lower level; `GET /api/v1/upstream/returns?instance=ID&after=N`
lists the returns for a lower level to fetch. Admins, and region managers whose region
is in the institution's region chain.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import pydantic
from pydantic import Field

from api.framework import Api, Request, problem
from core.access import Forbidden
from core.registry import ID_PATTERN, with_reported
from core.vocab import CANONICAL_UNIT, Category, Energy
from models.submission import month_period
from storage.base import BILL_FIGURES
from storage.submissions import SubmissionBook, bill_audit_rows
from storage.upstream import UpstreamBook

ROLES = ("admin", "region")


class Item(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    energy: Energy
    quantity: float = Field(ge=0, le=1e12, allow_inf_nan=False)
    unit: str
    cost_cny: float | None = Field(default=None, ge=0, le=1e12, allow_inf_nan=False)
    heating_quantity: float | None = Field(
        default=None, ge=0, le=1e12, allow_inf_nan=False,
        description="of `quantity`, the heating-season use of heating meters and purchased heat (counted as "
                    "heating energy); absent: the upper level's rule for bills")
    estimated_quantity: float | None = Field(
        default=None, ge=0, le=1e12, allow_inf_nan=False,
        description="of `quantity`, the part estimated over gaps of the lower level's meters; absent: none")


class RegionRef(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    id: str = Field(pattern=ID_PATTERN)
    name: str = Field(min_length=1, max_length=200)
    parent: str | None = None


class ReportedInstitution(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    id: str = Field(pattern=ID_PATTERN)
    name: str = Field(min_length=1, max_length=200)
    region: str = Field(pattern=ID_PATTERN)
    category: Category
    floor_area_m2: float = Field(ge=0, allow_inf_nan=False)
    heated_area_m2: float = Field(default=0, ge=0, allow_inf_nan=False)
    occupants: int = Field(ge=0, le=10_000_000)
    department: str | None = Field(default=None, min_length=1, max_length=100)
    regions: list[RegionRef] = Field(min_length=1, max_length=20)


class UpstreamPush(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    instance: str = Field(pattern=ID_PATTERN, max_length=64)
    institution: ReportedInstitution
    month: str = Field(pattern=r"^\d{4}-(0[1-9]|1[0-2])$")
    items: list[Item] = Field(max_length=50)
    digest: str = Field(pattern=r"^[0-9a-f]{64}$")


class PushAnswer(pydantic.BaseModel):
    status: str  # stored | duplicate
    bills: int


class ReturnBody(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    comment: str = Field(min_length=1, max_length=2000)


class ReturnsQuery(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    instance: str = Field(pattern=ID_PATTERN)
    after: int = Field(default=0, ge=0)


class Returned(pydantic.BaseModel):
    id: int
    institution_id: str
    month: str
    comment: str
    who: str
    at: str


class ReturnedRows(pydantic.BaseModel):
    rows: list[Returned]


def register(api: Api) -> None:
    def book() -> UpstreamBook:
        if api.ctx.data_dir is None:
            raise problem("instance", "this instance keeps no data directory: it cannot take reports from below")
        if "upstream_book" not in api.ctx.extras:
            api.ctx.extras["upstream_book"] = UpstreamBook(api.ctx.data_dir)
        return api.ctx.extras["upstream_book"]

    def in_scope(req: Request, region_ids: list[str]) -> None:
        if req.user.role == "region" and req.user.scope not in region_ids:
            raise Forbidden(f"region {req.user.scope} is not in {' > '.join(region_ids)}")

    @api.route("/upstream", "POST", summary="take one approved month reported by a lower-level instance",
               body=UpstreamPush, response=PushAnswer, roles=ROLES, tag="submissions")
    def push(req: Request) -> Any:
        """Stores the month's figures as bills of the whole month and the institution
        marked with its source instance; the same content again is `duplicate`."""
        body: UpstreamPush = req.body
        inst = body.institution
        in_scope(req, [r.id for r in inst.regions])
        own = api.ctx.registry.institution_by_id.get(inst.id)
        if own is not None and own.source is None:
            raise problem("institution.id", f"{inst.id} is one of this instance's own institutions")
        b = book()
        other = b.instance_of(inst.id)
        if other is not None and other != body.instance:
            raise problem("institution.id", f"{inst.id} is reported by instance {other}")
        for n, item in enumerate(body.items):
            if item.unit != CANONICAL_UNIT[item.energy]:
                raise problem("unit", f"{item.energy} is reported in {CANONICAL_UNIT[item.energy]}", index=n)
            for name in BILL_FIGURES:
                part = getattr(item, name)
                if part is not None and part > item.quantity * (1 + 1e-9):
                    raise problem(name, f"{part:g} is more than the quantity {item.quantity:g}", index=n)
        if b.has_receipt(body.instance, inst.id, body.month, body.digest):
            return {"status": "duplicate", "bills": 0}
        first, last = month_period(body.month)
        bills = pd.DataFrame({"institution_id": inst.id, "energy": [i.energy for i in body.items],
                              "period_start": first, "period_end": last,
                              "quantity": [i.quantity for i in body.items], "unit": [i.unit for i in body.items],
                              "cost_cny": [i.cost_cny for i in body.items],
                              **{c: [getattr(i, c) for i in body.items] for c in BILL_FIGURES}})
        submissions = SubmissionBook(api.ctx.data_dir)
        key = req.flask.headers.get("Idempotency-Key")
        try:
            with b.transaction(), submissions.transaction():
                result = api.ctx.store.import_bills(bills, replace=True) if len(bills) else None
                if result is not None:
                    submissions.add_audit(bill_audit_rows(result, who=f"upstream:{body.instance}", source="api",
                                                          reason=f"纵向直报 {body.instance} {body.month}"))
                b.record(body.instance, inst.model_dump(), body.month, body.digest, key)
                submissions.set_status(inst.id, body.month, "approved", f"upstream:{body.instance}")
        finally:
            submissions.close()
        # the server's one registry and its cached tables (dashboard and API): a new or corrected
        # institution is in every table at once, new figures drop the cached ones
        api.ctx.tables.update_registry(lambda reg: with_reported(reg, [(body.instance, inst.model_dump())]))
        return {"status": "stored", "bills": len(bills)}

    @api.route("/upstream/<institution_id>/<month>/return", "POST", body=ReturnBody, response=Returned,
               summary="return a reported month to its lower level, with a comment", roles=ROLES,
               tag="submissions")
    def give_back(req: Request, institution_id: str, month: str) -> Any:
        """The month goes back to the lower level (it fetches `GET /upstream/returns`),
        and here it is marked returned until the corrected month arrives."""
        b = book()
        instance = b.instance_of(institution_id)
        inst = api.ctx.registry.institution_by_id.get(institution_id)
        if instance is None or inst is None:
            raise problem("institution_id", f"{institution_id} was not reported by a lower-level instance")
        try:
            month_period(month)
        except ValueError as exc:
            raise problem("month", str(exc)) from None
        in_scope(req, api.ctx.registry.region_ancestors(inst.region))
        rid = b.return_month(instance, institution_id, month, req.body.comment, req.user.name)
        submissions = SubmissionBook(api.ctx.data_dir)
        try:
            submissions.set_status(institution_id, month, "returned", req.user.name, comment=req.body.comment)
        finally:
            submissions.close()
        return b.returns(instance, rid - 1)[0]

    @api.route("/upstream/returns", summary="months the upper level returned to a lower-level instance",
               query=ReturnsQuery, response=ReturnedRows, roles=ROLES, tag="submissions")
    def returns(req: Request) -> Any:
        """Returns to `instance` with an id above `after`, oldest first."""
        rows = book().returns(req.query.instance, req.query.after)
        if req.user.role == "region":
            reg = api.ctx.registry
            rows = [r for r in rows if r["institution_id"] in reg.institution_by_id
                    and req.user.scope in reg.region_ancestors(reg.institution_by_id[r["institution_id"]].region)]
        return {"rows": rows}
