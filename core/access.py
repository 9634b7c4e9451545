"""Who may see what: the one home of every role and scope check.

Plain functions on a user (anything with a `role` and a `scope`, e.g.
`core.users.User`) and the registry, with no web framework in them, so the
dashboard's pages, callbacks and downloads and an HTTP API ask the same questions and
get the same answers. A refusal raises `Forbidden`; the caller turns it into the "no
access" message or HTTP 403. Nothing is only hidden in the page: each callback
re-reads the signed-in user and filters or refuses here, so a crafted
`/_dash-update-component` request or a hand-written download URL gets no more than
the page would show.

Roles: `admin` sees everything; `region` (scope: a region id) the institutions of
that region and every region below it; `institution` (scope: an institution id) that
institution only.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from core.registry import Registry

ROLES = ("admin", "region", "institution")


class Principal(Protocol):
    """Who asks: a dashboard user, or an API client with the same role and scope."""

    @property
    def role(self) -> str: ...

    @property
    def scope(self) -> str | None: ...


class Forbidden(Exception):
    """The user may not see or do what was asked for."""


def scope_problem(role: str, scope: str | None, registry: Registry) -> str | None:
    """Why `scope` cannot be the scope of a `role` user in `registry` (None: it can): a
    region user's is a region id, an institution user's an institution id (what every
    check below reads as the user's scope); the administrator has none."""
    if role not in ROLES:
        return f"role must be one of {', '.join(ROLES)}, not {role!r}"
    if role == "admin":
        return None
    ids = {"region": registry.region_by_id, "institution": registry.institution_by_id}
    if not scope:
        return f"a {role} user needs --scope (one {role} id)"
    if scope in ids[role]:
        return None
    other = "institution" if role == "region" else "region"
    if scope in ids[other]:
        article = "an" if other == "institution" else "a"
        return f"{scope!r} is {article} {other} in {registry.source}, not a {role}: use --role {other}"
    return f"no {role} {scope!r} in {registry.source} (a scope is one {role} id)"


# -- what a user may see ---------------------------------------------------------------
def institution_ids(user: Principal | None, registry: Registry) -> set[str]:
    """The institutions `user` may see (none without a user or with an unknown scope)."""
    if user is None:
        return set()
    if user.role == "admin":
        return set(registry.institution_by_id)
    if user.role == "region":
        if user.scope not in registry.region_by_id:
            return set()
        regions = registry.region_subtree(user.scope)
        return {i.id for i in registry.institutions if i.region in regions}
    if user.role == "institution":
        return {user.scope} if user.scope in registry.institution_by_id else set()
    return set()


def region_ids(user: Principal | None, registry: Registry) -> set[str]:
    """Regions `user` may choose as a whole (overview, ranking filters)."""
    if user is None:
        return set()
    if user.role == "admin":
        return set(registry.region_by_id)
    if user.role == "region" and user.scope in registry.region_by_id:
        return registry.region_subtree(user.scope)
    return set()


def can_see(user: Principal | None, registry: Registry, institution_id: str) -> bool:
    """May `user` see the institution `institution_id`?"""
    return institution_id in institution_ids(user, registry)


def visible_filter(user: Principal, registry: Registry) -> frozenset[str] | None:
    """The institutions to keep in a table or download: None (keep all) for the
    administrator, else those `user` may see."""
    return None if user.role == "admin" else frozenset(institution_ids(user, registry))


def require_institution(user: Principal | None, registry: Registry, institution_id: str | None) -> str:
    """The institution id when `user` may see it; raise Forbidden otherwise
    (unknown ids are refused the same way, so ids cannot be probed)."""
    if user is None or not institution_id or not can_see(user, registry, str(institution_id)):
        raise Forbidden(str(institution_id))
    return str(institution_id)


def require_region(user: Principal | None, registry: Registry, region_id: str | None) -> str:
    """The region id when `user` may choose it as a whole; raise Forbidden otherwise."""
    if user is None or not region_id or region_id not in region_ids(user, registry):
        raise Forbidden(str(region_id))
    return str(region_id)


# -- the scopes pages work on ----------------------------------------------------------------
def default_region(user: Principal, registry: Registry) -> str | None:
    """The region a page opens on: a manager's own, the administrator's first root
    region, none for an institution user."""
    if user.role == "region":
        return user.scope
    if user.role == "admin":
        roots = [r.id for r in registry.regions if r.parent is None]
        return roots[0] if roots else None
    return None


def overview_scope(user: Principal | None, registry: Registry, region: str | None) -> tuple[set[str], str | None]:
    """The institutions the overview sums for `region` (None: all `user` sees) and the
    scope whose dual-control targets apply (`region:R`, `institution:I` or None).
    Raise Forbidden for a region the user may not choose."""
    if user is None:
        raise Forbidden(str(region))
    visible = institution_ids(user, registry)
    if region:
        subtree = registry.region_subtree(require_region(user, registry, region))
        return {i.id for i in registry.institutions if i.region in subtree} & visible, f"region:{region}"
    return visible, f"institution:{user.scope}" if user.role == "institution" else None


def peer_regions(user: Principal, registry: Registry, region: str | None) -> frozenset[str] | None:
    """The regions a ranking compares peers in: the chosen region's subtree (one the
    user may choose), else the manager's region, the institution's own region, or
    (administrator) the whole portfolio (None)."""
    if region:
        return frozenset(registry.region_subtree(require_region(user, registry, region)))
    if user.role == "region":
        return frozenset(region_ids(user, registry))
    if user.role == "institution" and user.scope in registry.institution_by_id:
        # peers: the same category in the institution's own region (rows limited by visible_filter)
        return frozenset(registry.region_subtree(registry.institution_by_id[user.scope].region))
    return None


def assessed_regions(user: Principal | None, registry: Registry) -> set[str]:
    """The regions whose year-end assessment `user` may see: every region below the
    user's scope (all for the administrator, none for an institution user)."""
    regions = region_ids(user, registry)
    return regions - {user.scope} if user is not None and user.role == "region" else regions


# -- alerts ------------------------------------------------------------------------------------
def alert_visible(user: Principal | None, registry: Registry, alert: dict) -> bool:
    """An alert about one institution is visible to whoever sees the institution; an
    alert about a region (or a category inside it) to the admin and to managers of a
    region that contains it."""
    if user is None:
        return False
    if user.role == "admin":
        return True
    inst = alert.get("institution_id")
    if inst:
        return can_see(user, registry, str(inst))
    scope = str(alert.get("scope") or "")
    if scope.startswith("region:"):
        region = scope.removeprefix("region:").split("/")[0]
        return region in region_ids(user, registry)
    return False


def visible_alerts(user: Principal | None, registry: Registry, alerts: Iterable[dict]) -> list[dict]:
    """The alerts of `alerts` that `user` may see, in their order."""
    return [a for a in alerts if alert_visible(user, registry, a)]


def require_acknowledge(user: Principal | None, registry: Registry, alert: dict | None) -> dict:
    """The alert when `user` may acknowledge it (whoever sees an alert may); raise
    Forbidden otherwise (None: no such open alert, refused the same way)."""
    if alert is None or not alert_visible(user, registry, alert):
        raise Forbidden(str(alert.get("key") if alert else None))
    return alert


# -- downloads -------------------------------------------------------------------------------------
def project_visible(user: Principal | None, registry: Registry, institutions: Iterable[str]) -> bool:
    """May `user` see a savings-verification project covering these institutions?
    Only when they see every one of them; a project without a resolvable institution
    is for administrators only."""
    if user is None:
        return False
    if user.role == "admin":
        return True
    insts = set(institutions)
    return bool(insts) and insts <= institution_ids(user, registry)


def report_registry(user: Principal, registry: Registry) -> Registry:
    """The registry a report download of `user` is built from: the whole registry for
    the administrator, else only what the user may see (`scoped_registry`), so region
    and category sheets sum only those institutions."""
    return registry if user.role == "admin" else scoped_registry(registry, institution_ids(user, registry))


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
