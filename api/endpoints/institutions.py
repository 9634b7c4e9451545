"""GET /api/v1/institutions: the institutions in the token's scope, from the registry."""

from __future__ import annotations

from typing import Any

import pydantic

from api.framework import Api, Request, records
from core.access import institution_ids

FIELDS = ["id", "name", "region", "category", "floor_area_m2", "heated_area_m2", "occupants", "source"]


class Institution(pydantic.BaseModel):
    id: str
    name: str
    region: str
    category: str
    floor_area_m2: float
    heated_area_m2: float
    occupants: int
    source: str | None = None  # the lower-level instance that reports it (纵向直报); null for our own


class InstitutionRows(pydantic.BaseModel):
    rows: list[Institution]


def register(api: Api) -> None:
    @api.route("/institutions", summary="the institutions in scope", response=InstitutionRows, tag="registry")
    def institutions(req: Request) -> Any:
        """The registry's institutions the token's user may see (all for an admin, a region's
        subtree for a region manager, one for an institution user), in registry order."""
        frame = api.ctx.registry.institutions_frame()
        frame = frame[frame["id"].isin(institution_ids(req.user, api.ctx.registry))]
        return {"rows": records(frame, FIELDS)}
