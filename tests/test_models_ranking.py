"""Rankings within peer groups (same category and region), by intensity."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.api import rank


def _ind() -> pd.DataFrame:
    n = 10
    schools = pd.DataFrame({"institution_id": [f"S{i}" for i in range(n)], "name": "s", "region": "sjz",
                            "category": "school", "kgce_per_m2": np.arange(n, 0, -1, dtype=float),  # S9 best
                            "estimated_share": 0.0})
    others = pd.DataFrame({
        "institution_id": ["H1", "H2", "B1", "B2", "B3", "N1", "Z1"],
        "name": "x", "region": ["sjz", "sjz", "bd", "bd", "bd", "sjz", "sjz"],
        "category": ["hospital", "hospital", "school", "school", "school", "school", "school"],
        "kgce_per_m2": [30.0, 20.0, 4.0, 6.0, 5.0, np.nan, 0.0],
        "estimated_share": [0.0, 0.0, 0.5, 0.0, 0.0, 0.0, 0.0],
    })
    return pd.concat([schools, others], ignore_index=True)


def test_rank_within_peer_groups():
    r = rank(_ind()).set_index("institution_id")
    # sjz schools: 10 ranked (N1 has no value, Z1 no energy: not ranked)
    assert r.loc["S9", "rank"] == 1 and r.loc["S0", "rank"] == 10
    assert r.loc["S9", "peer_size"] == 10 and r.loc["S9", "peer_median"] == pytest.approx(5.5)
    assert r.loc["S9", "leader"] and not r.loc["S8", "leader"]  # best 10 % of 10 = 1
    assert r.loc["S0", "laggard"] and not r.loc["S1", "laggard"]
    assert r.loc["S0", "percentile"] == pytest.approx(1.0) and r.loc["S9", "percentile"] == 0
    assert not r.loc["N1", "ranked"] and np.isnan(r.loc["N1", "rank"])
    assert not r.loc["Z1", "ranked"]
    # hospitals: two peers, ranked but too few for leaders and laggards
    assert r.loc["H2", "rank"] == 1 and r.loc["H1", "rank"] == 2
    assert not r.loc[["H1", "H2"], "leader"].any() and not r.loc[["H1", "H2"], "laggard"].any()
    # bd schools are another group; the best (B1) is mostly estimated: no leader
    assert r.loc["B1", "rank"] == 1 and r.loc["B1", "peer_size"] == 3
    assert not r.loc["B1", "leader"] and r.loc["B2", "laggard"]


def test_rank_year_on_year_and_province_level():
    ind = _ind()
    prev = ind.assign(kgce_per_m2=ind["kgce_per_m2"] * 1.25)
    r = rank(ind, previous=prev).set_index("institution_id")
    assert r.loc["S9", "previous_value"] == pytest.approx(1.25)
    assert r.loc["S9", "yoy_change"] == pytest.approx(-0.2)  # 1 vs 1.25
    # at province level the sjz and bd schools are one peer group of 13
    tree = {"hebei": None, "sjz": "hebei", "bd": "hebei"}
    p = rank(ind, regions=tree, region_level=0).set_index("institution_id")
    assert p.loc["S9", "peer_region"] == "hebei" and p.loc["S9", "peer_size"] == 13
    assert p.loc["B1", "rank"] == 4  # after S9 (1), S8 (2), S7 (3)
    assert p.loc["S9", "leader"]  # 10 % of 13 -> 1
    other = rank(ind, indicator="kgce_per_m2", peers=["category"]).set_index("institution_id")
    assert other.loc["B1", "peer_size"] == 13


def test_yoy_change_is_a_fraction_with_no_base_below_zero():
    from models.compare import yoy_change

    out = yoy_change(pd.Series([110.0, 90.0, 5.0, 5.0, 5.0, np.nan]), np.array([100.0, 100.0, 0.0, -2.0, np.nan, 4.0]))
    assert out[:2] == pytest.approx([0.10, -0.10])
    assert np.isnan(out[2:]).all()  # zero, negative or missing previous value, or no current value
