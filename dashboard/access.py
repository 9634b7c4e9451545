"""Who may see what: the server-side checks every callback and download goes through.

Nothing is only hidden in the page: each callback re-reads the signed-in user from
the session (`current_user`) and filters or refuses with these helpers, so a crafted
`/_dash-update-component` request or a hand-written download URL gets no more than
the page would show.
"""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

from core.registry import Meter, Registry
from dashboard.auth import User


class Forbidden(Exception):
    """The signed-in user may not see what was asked for."""


def require_institution(user: User | None, registry: Registry, institution_id: str | None) -> str:
    """The institution id when `user` may see it; raise Forbidden otherwise
    (unknown ids are refused the same way, so ids cannot be probed)."""
    if user is None or not institution_id or not user.can_see(registry, str(institution_id)):
        raise Forbidden(str(institution_id))
    return str(institution_id)


def require_region(user: User | None, registry: Registry, region_id: str | None) -> str:
    if user is None or not region_id or region_id not in user.region_ids(registry):
        raise Forbidden(str(region_id))
    return str(region_id)


def filter_institutions(frame: pd.DataFrame, user: User | None, registry: Registry,
                        column: str = "institution_id") -> pd.DataFrame:
    """Rows of `frame` whose `column` is an institution `user` may see."""
    if user is None:
        return frame.iloc[0:0]
    if user.role == "admin":
        return frame
    return frame[frame[column].isin(user.institution_ids(registry))]


def institution_meters(registry: Registry, institution_id: str) -> list[Meter]:
    return [m for m in registry.meters if m.institution == institution_id]


def scoped_registry(registry: Registry, institution_ids: Iterable[str]) -> Registry:
    """A copy of the registry holding only these institutions, their meters and the
    regions above them: handed to report and ledger writers so a download can only
    contain what the user may see."""
    keep = set(institution_ids)
    insts = tuple(i for i in registry.institutions if i.id in keep)
    regions: set[str] = set()
    for i in insts:
        regions.update(registry.region_ancestors(i.region))
    # a new model, not model_copy: the cached id maps of the original must not leak in
    return Registry(
        timezone=registry.timezone,
        heating_season=registry.heating_season,
        institutions=insts,
        meters=tuple(m for m in registry.meters if m.institution in keep),
        regions=tuple(r for r in registry.regions if r.id in regions),
        source=registry.source,
    )


def alert_visible(user: User | None, registry: Registry, alert: dict) -> bool:
    """An alert about one institution is visible to whoever sees the institution; an
    alert about a region (or a category inside it) to the admin and to managers of a
    region that contains it."""
    if user is None:
        return False
    if user.role == "admin":
        return True
    inst = alert.get("institution_id")
    if inst:
        return user.can_see(registry, str(inst))
    scope = str(alert.get("scope") or "")
    if scope.startswith("region:"):
        region = scope.removeprefix("region:").split("/")[0]
        return region in user.region_ids(registry)
    return False
