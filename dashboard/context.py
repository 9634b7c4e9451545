"""What every page, callback and download of one dashboard shares, and what a page is.

`create_app` builds one `Context` (registry, store, the data service, the quota file,
the savings-verification projects, the alert outbox and who is signed in) and hands
it to each module's `register`. A page is a `Page`: its path, its navigation label,
the function that renders it for a user, and the function that registers its
callbacks (`dashboard.pages` lists them).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dash

from core.registry import Registry
from core.users import User
from dashboard import integrations
from dashboard.data import DataService

YEARS_SHOWN = 5  # the year pickers offer this year and the four before


@dataclass(frozen=True)
class Context:
    """One dashboard's shared state. `current_user()`: the signed-in user of the
    request being served (None without a valid session). The registry is the data
    service's (`registry`: one registry for the pages, the downloads and the API, swapped
    when a lower level reports new institutions)."""

    store: Any
    service: DataService
    quotas: integrations.Quotas
    mv: integrations.MVProjects
    data_dir: Path | None
    current_user: Callable[[], User | None]
    _names: dict[str, Any] = field(default_factory=dict, init=False, repr=False, compare=False)
    # what a module builds once per dashboard on first use (the assessments): it lives and
    # goes with this context, never in a module-level table that would keep it alive
    shared: dict[str, Any] = field(default_factory=dict, init=False, repr=False, compare=False)

    @property
    def registry(self) -> Registry:
        return self.service.registry

    @property
    def region_name(self) -> dict[str, str]:
        """region id -> name (of the registry in use)."""
        registry = self.registry
        if self._names.get("of") is not registry:
            self._names.update(of=registry, names={r.id: r.name for r in registry.regions})
        return self._names["names"]

    def years(self) -> list[int]:
        """The years offered in pickers, newest first."""
        cur = self.service.current_year()
        return list(range(cur, cur - YEARS_SHOWN, -1))

    def outbox(self) -> Any | None:
        """The alert outbox of the data directory (None without one)."""
        return integrations.outbox(self.data_dir)

    def filing(self) -> Any | None:
        """The monthly submission service (`quotas.filing.Filing`) of the data directory (None without one)."""
        return integrations.filing(self.data_dir, self.registry, self.store,
                                   lambda: self.service.today().date())

    def regions_by_depth(self, region_ids: set[str]) -> list[str]:
        """Region ids from the top of the tree down (pickers' order)."""
        return sorted(region_ids, key=lambda r: (len(self.registry.region_ancestors(r)), r))


@dataclass(frozen=True)
class Page:
    """A page of the dashboard at `path` (and below it when `subpaths`).

    `render(ctx, user, lang, rest)` returns the page's components for a signed-in
    user (`rest`: the part of the path after `path/`, None at `path` itself) and may
    raise `core.access.Forbidden`; `register(app, ctx)` adds its callbacks.
    `nav`: the i18n key of its link in the header (None: no link in the navigation
    bar); `chrome`: False for a full-screen page without the header (the wall screen);
    `charts`: the page draws Plotly charts (the frame then loads Plotly with it)."""

    path: str
    nav: str | None
    render: Callable[[Context, User, str, str | None], Any]
    register: Callable[[dash.Dash, Context], None]
    subpaths: bool = False
    chrome: bool = True
    charts: bool = False
