"""The rankings query: filter, rank within peer groups, sort and page on the server.

`user_query` turns what a user asked for into a `RankQuery` limited to what they may
see (`core.access`); `ranked` / `rank_query` are the whole work of the dashboard's
ranking table, of its CSV export and of the API's `GET /api/v1/rankings`. They are vectorised over the year table
(31,600 institutions in a province), so only one page of rows ever reaches the
browser; `RankedPages` keeps the sorted result of recent queries so turning pages is a
slice.

Peer groups (domain.md s.4: compare like with like): institutions of the same
category inside the chosen region (the whole visible portfolio when no region is
chosen). Rank 1 is the lowest intensity. Ranks are computed *before* the user's scope
and the name search are applied, so an institution user sees their true rank among
all peers without seeing the peers' rows.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd
from cachetools import LRUCache

from core.access import Principal, peer_regions, visible_filter
from core.registry import Registry
from core.vocab import CATEGORIES
from quotas.tables import INDICATORS

PAGE_SIZE = 25
RANKED_CACHE = 64  # sorted ranking results kept for paging (each at most a few MB)
# table columns shown under another name -> the RankQuery column they sort by
DISPLAY_COLUMNS = {"level_name": "level", "region_name": "region", "category_name": "category"}
# Energy per person: a headline indicator (domain.md s.1) with a quota standard, so the
# table opens with its level colours.
DEFAULT_INDICATOR = "kgce_per_person"
SORTABLE = ("rank", "institution_id", "name", "region", "category", "value", "yoy", "level",
            "estimated_share", "peers")
# quota levels from best to worst (quotas.evaluate: three- and two-level standards)
LEVEL_ORDER = {"guide": 0, "advanced": 0, "baseline": 1, "general": 1, "constraint": 2, "exceeds": 3,
               "no_data": 4, "partial": 5, "none": 6}


@dataclass(frozen=True)
class RankQuery:
    """What the user asked for. `regions`: the chosen region's subtree (None: all);
    `visible`: institution ids the user may see (None: all, i.e. administrator)."""

    indicator: str = DEFAULT_INDICATOR
    regions: frozenset[str] | None = None
    category: str | None = None
    search: str = ""
    sort_by: tuple[tuple[str, str], ...] = (("rank", "asc"),)
    page: int = 0
    page_size: int = PAGE_SIZE
    visible: frozenset[str] | None = None


def user_query(user: Principal, registry: Registry, year: Any, region: str | None, category: str | None,
               indicator: str, search: str, sort_by: list[dict] | None, page: int, page_size: int,
               current_year: int) -> tuple[RankQuery, int]:
    """The query `user` may run and its year (`current_year` when none is given).
    ValueError for an unknown year, indicator or category; Forbidden for a region the
    user may not choose. Rows are limited to what the user sees."""
    year_i = int(year) if year not in (None, "") else current_year
    if indicator not in INDICATORS:
        raise ValueError(indicator)
    if category is not None and category not in CATEGORIES:
        raise ValueError(category)
    regions = peer_regions(user, registry, region)
    asked = ((str(s.get("column_id")), str(s.get("direction", "asc"))) for s in (sort_by or []))
    sort = tuple((DISPLAY_COLUMNS.get(col, col), direction) for col, direction in asked)
    return RankQuery(indicator=indicator, regions=regions, category=category, search=search or "",
                     sort_by=sort or (("rank", "asc"),), page=page, page_size=page_size,
                     visible=visible_filter(user, registry)), year_i


def ranked(table: pd.DataFrame, q: RankQuery) -> pd.DataFrame:
    """Every row matching the query, with rank/peers/value/yoy/level columns, sorted."""
    ind = q.indicator
    if ind not in table.columns:
        raise ValueError(f"unknown indicator {ind!r}")
    mask = table[ind].notna().to_numpy().copy()
    if q.regions is not None:
        mask &= table["region"].isin(q.regions).to_numpy()
    if q.category:
        mask &= (table["category"] == q.category).to_numpy()
    sub = table.loc[mask]
    value = sub[ind]
    groups = sub["category"]
    rank = value.groupby(groups).rank(method="min", ascending=True)
    peers = groups.map(groups.value_counts())
    level_col = f"level_{ind}"
    yoy_col = f"yoy_{ind}"
    out = pd.DataFrame({
        "rank": rank.to_numpy(np.int64) if len(rank) else np.zeros(0, np.int64),
        "peers": peers.to_numpy(np.int64) if len(peers) else np.zeros(0, np.int64),
        "institution_id": sub["institution_id"].to_numpy(),
        "name": sub["name"].to_numpy(),
        "region": sub["region"].to_numpy(),
        "category": sub["category"].to_numpy(),
        "value": value.to_numpy(float),
        "yoy": sub[yoy_col].to_numpy(float) if yoy_col in sub else np.full(len(sub), np.nan),
        "yoy_reason": _yoy_reason(sub, yoy_col),
        "level": sub[level_col].to_numpy() if level_col in sub else np.full(len(sub), "none", dtype=object),
        "estimated_share": sub["estimated_share"].to_numpy(float) if "estimated_share" in sub else np.nan,
    })
    keep = np.ones(len(out), dtype=bool)
    if q.visible is not None:
        keep &= out["institution_id"].isin(q.visible).to_numpy()
    if q.search.strip():
        needle = q.search.strip().lower()
        keep &= (out["name"].str.lower().str.contains(needle, regex=False)
                 | out["institution_id"].str.lower().str.contains(needle, regex=False)).to_numpy()
    out = out.loc[keep]
    return _sort(out, q.sort_by)


def _yoy_reason(sub: pd.DataFrame, yoy_col: str) -> np.ndarray:
    """Why the indicator's year-on-year value is blank ('' where shown): the period's
    completeness reason of `DataService.ranking_table`, else no_previous."""
    base = sub["yoy_reason"].to_numpy(object) if "yoy_reason" in sub else np.full(len(sub), "", object)
    period = np.isin(base, ["current_incomplete", "previous_incomplete"])
    blank = ~np.isfinite(sub[yoy_col].to_numpy(float)) if yoy_col in sub else np.ones(len(sub), bool)
    return np.where(period, base, np.where(blank, "no_previous", "")).astype(object)


def _sort(frame: pd.DataFrame, sort_by: tuple[tuple[str, str], ...]) -> pd.DataFrame:
    cols = [(c, d) for c, d in sort_by if c in SORTABLE] or [("rank", "asc")]
    keys = [c for c, _ in cols]
    asc = [d != "desc" for _, d in cols]
    # a stable tie-break so pages never overlap: category, then institution id
    for extra in ("category", "institution_id"):
        if extra not in keys:
            keys.append(extra)
            asc.append(True)
    key_fn = lambda s: s.map(LEVEL_ORDER) if s.name == "level" else s  # noqa: E731
    return frame.sort_values(keys, ascending=asc, kind="stable", na_position="last", key=key_fn)


def rank_query(table: pd.DataFrame, q: RankQuery) -> tuple[pd.DataFrame, int]:
    """One page of `ranked` rows and the number of matching rows."""
    rows = ranked(table, q)
    size = max(1, int(q.page_size))
    page = max(0, int(q.page))
    return rows.iloc[page * size:(page + 1) * size], len(rows)


class RankedPages:
    """Pages of ranking queries over `table_of(year)`; the full sorted result of the
    last RANKED_CACHE queries is kept (per year table: a new table recomputes), so
    turning pages is a slice."""

    def __init__(self, table_of: Callable[[int], pd.DataFrame], size: int = RANKED_CACHE):
        self.table_of = table_of
        self.cache: LRUCache = LRUCache(maxsize=size)
        self._lock = threading.Lock()

    def page(self, year: int, q: RankQuery) -> tuple[pd.DataFrame, int]:
        """One page of the query and the number of matching rows."""
        table = self.table_of(year)
        key = (year, replace(q, page=0))
        with self._lock:
            hit = self.cache.get(key)
        if hit is not None and hit[0]() is table:  # a weak reference: a new table (never a reused id) recomputes
            rows = hit[1]
        else:
            rows = ranked(table, q)
            with self._lock:
                self.cache[key] = (weakref.ref(table), rows)
        size = max(1, q.page_size)
        return rows.iloc[q.page * size:(q.page + 1) * size], len(rows)


def baseline_sort_slice(table: pd.DataFrame, column: str, page: int, page_size: int = PAGE_SIZE) -> pd.DataFrame:
    """The bare pandas work the benchmark compares against: one sort and one slice."""
    return table.sort_values(column).iloc[page * page_size:(page + 1) * page_size]
