"""Rankings within peer groups: like with like (domain.md §4).

Peers share category and region (optionally a region lifted to an ancestor level, e.g.
every school of the province). Institutions are ranked by an intensity, lowest first
(rank 1 is the most efficient); totals are never ranked. Choices:

* Institutions without data, without the denominator (NaN intensity) or with a zero
  value (nothing metered for this indicator: missing data, not excellence) are not
  ranked (rank NaN) and are listed with `ranked` False.
* Leaders (能效领跑者 candidates): the best `leader_share` (10 %) of a group, at least
  one, in groups of at least `min_peers` (3) ranked institutions, whose estimated share
  is at most `max_estimated_share` (10 %): a leader must be measured, not interpolated.
* Laggards: the worst `laggard_share` (10 %) of such groups, at least one.
* yoy_change: `models.compare.yoy_change` (a fraction) of the same indicator for the
  same institution in `previous` (the previous year's indicator frame), NaN without one.
Ties get the same (minimum) rank.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from core.registry import RegionTree, region_chain, region_parents
from models.compare import yoy_change

LEADER_SHARE = 0.10  # top decile, in line with the provincial practice of naming the best 10 %
LAGGARD_SHARE = 0.10
MIN_PEERS = 3
MAX_ESTIMATED_SHARE = 0.10


def lift_regions(regions: pd.Series, tree: RegionTree, level: int) -> pd.Series:
    """Each region's ancestor at depth `level` (0 = the root); regions shallower than
    `level` stay themselves."""
    parents = region_parents(tree)
    lifted = {}
    for r in regions.dropna().unique():  # one per distinct region (few)
        root_first = region_chain(r, parents)[::-1]
        lifted[r] = root_first[min(level, len(root_first) - 1)]
    return regions.map(lifted)


def rank(ind: pd.DataFrame, indicator: str = "kgce_per_m2", previous: pd.DataFrame | None = None,
         peers: Sequence[str] = ("region", "category"), regions: RegionTree = None, region_level: int | None = None,
         leader_share: float = LEADER_SHARE, laggard_share: float = LAGGARD_SHARE, min_peers: int = MIN_PEERS,
         max_estimated_share: float = MAX_ESTIMATED_SHARE) -> pd.DataFrame:
    """Rank institutions of `ind` (an indicator frame) within peer groups by `indicator`.

    regions/region_level: with a Registry (or dict id -> parent) and a level, the peer
    region is the ancestor at that depth (0 = root, e.g. the province).
    Returns institution_id, name, region, category, peer_region, indicator, value,
    previous_value, yoy_change (fraction, e.g. -0.05 = 5 % lower), ranked, rank
    (1 = lowest value), peer_size (ranked institutions in the group), percentile
    (0 best .. 1 worst), peer_median, leader, laggard, estimated_share; sorted by
    peer group and rank.
    """
    df = ind
    peer_region = df["region"]
    if regions is not None and region_level is not None:
        peer_region = lift_regions(df["region"], regions, region_level)
    out = pd.DataFrame({
        "institution_id": df["institution_id"].to_numpy(),
        "name": df["name"].to_numpy() if "name" in df else "",
        "region": df["region"].to_numpy(),
        "category": df["category"].to_numpy(),
        "peer_region": peer_region.to_numpy(),
        "indicator": indicator,
        "value": df[indicator].to_numpy(float),
        "estimated_share": df["estimated_share"].to_numpy(float) if "estimated_share" in df else 0.0,
    })
    if previous is not None and len(previous):
        prev = previous.drop_duplicates("institution_id").set_index("institution_id")[indicator]
        out["previous_value"] = out["institution_id"].map(prev).to_numpy(float)
    else:
        out["previous_value"] = np.nan
    out["yoy_change"] = yoy_change(out["value"], out["previous_value"])
    keys = ["peer_region" if p == "region" else p for p in peers]
    value = out["value"].to_numpy(float)
    valid = np.isfinite(value) & (value > 0)
    out["ranked"] = valid
    g = out[valid].groupby(keys, sort=False, dropna=False)["value"]
    out["rank"] = np.nan
    out.loc[valid, "rank"] = g.rank(method="min", ascending=True).to_numpy()
    out["peer_size"] = 0
    out.loc[valid, "peer_size"] = g.transform("size").to_numpy()
    out["peer_median"] = np.nan
    out.loc[valid, "peer_median"] = g.transform("median").to_numpy()
    size = out["peer_size"].to_numpy(float)
    r = out["rank"].to_numpy(float)
    out["percentile"] = np.where(valid & (size > 1), (r - 1) / np.maximum(size - 1, 1), np.where(valid, 0.0, np.nan))
    big = valid & (size >= min_peers)
    n_lead = np.maximum(1, np.floor(size * leader_share))
    n_lag = np.maximum(1, np.floor(size * laggard_share))
    out["leader"] = big & (r <= n_lead) & (out["estimated_share"].to_numpy(float) <= max_estimated_share)
    out["laggard"] = big & (r > size - n_lag)
    out = out.sort_values([*keys, "rank"], kind="stable", na_position="last").reset_index(drop=True)
    return out[["institution_id", "name", "region", "category", "peer_region", "indicator", "value",
                "previous_value", "yoy_change", "ranked", "rank", "peer_size", "percentile", "peer_median",
                "leader", "laggard", "estimated_share"]]
