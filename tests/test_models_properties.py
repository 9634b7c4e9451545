"""Property tests: totals add up over institutions and periods; scaling behaves."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.vocab import ENERGIES
from models.api import aggregate, indicators_from_frames, load_factors
from models.indicators import EXTENSIVE, INTENSITIES

FACTORS = load_factors()
TZ = "Asia/Shanghai"
START = pd.Timestamp("2021-01-01", tz=TZ)
SETTINGS = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def portfolios(draw):
    n = draw(st.integers(1, 4))
    inst = pd.DataFrame({
        "institution_id": [f"I{i}" for i in range(n)],
        "name": "x",
        "region": draw(st.lists(st.sampled_from(["hebei", "beijing", "zz"]), min_size=n, max_size=n)),
        "category": draw(st.lists(st.sampled_from(["school", "hospital"]), min_size=n, max_size=n)),
        "floor_area_m2": draw(st.lists(st.floats(10, 1e5), min_size=n, max_size=n)),
        "heated_area_m2": draw(st.lists(st.just(0.0) | st.floats(1, 10), min_size=n, max_size=n)),
        "occupants": draw(st.lists(st.integers(1, 5000), min_size=n, max_size=n)),
    })
    rows = draw(st.lists(st.tuples(st.integers(0, n - 1), st.sampled_from(ENERGIES), st.integers(0, 1000),
                                   st.floats(0.01, 1e6), st.floats(0, 1), st.booleans()),
                         min_size=1, max_size=40))
    use = pd.DataFrame({
        "institution_id": [f"I{r[0]}" for r in rows],
        "energy": [r[1] for r in rows],
        "period_start": [START + pd.Timedelta(days=r[2]) for r in rows],
        "quantity": [r[3] for r in rows],
        "estimated_share": [r[4] for r in rows],
        "heating": [r[5] or r[1] == "heat" for r in rows],
    })
    return inst, use


def _ind(use: pd.DataFrame, inst: pd.DataFrame) -> pd.DataFrame:
    return indicators_from_frames(use, inst, FACTORS, freq="day").set_index("institution_id")


@SETTINGS
@given(portfolios(), st.integers(0, 1000))
def test_totals_are_additive_over_periods(p, cut_day):
    inst, use = p
    cut = START + pd.Timedelta(days=cut_day)
    whole = _ind(use, inst)
    a = _ind(use[use["period_start"] < cut], inst)
    b = _ind(use[use["period_start"] >= cut], inst)
    for col in EXTENSIVE:
        np.testing.assert_allclose(a[col] + b[col], whole[col], rtol=1e-9, atol=1e-9)


@SETTINGS
@given(portfolios())
def test_totals_are_additive_over_institutions(p):
    inst, use = p
    ind = _ind(use, inst).reset_index()
    total = aggregate(ind.assign(all="all"), ["all"]).iloc[0]
    by_cat = aggregate(ind, ["category"])
    for col in EXTENSIVE:
        assert total[col] == pytest.approx(ind[col].sum(), rel=1e-9, abs=1e-9)
        assert by_cat[col].sum() == pytest.approx(total[col], rel=1e-9, abs=1e-9)
    # an institution's figures do not depend on the others in the frame
    first = inst.iloc[:1]
    alone = _ind(use[use["institution_id"] == first["institution_id"].iloc[0]], first)
    for col in EXTENSIVE:
        assert alone[col].iloc[0] == pytest.approx(ind[col].iloc[0], rel=1e-9, abs=1e-9)
    # aggregate intensity = ratio of the sums
    has = ind["has_data"]
    area = ind.loc[has, "floor_area_m2"].sum()
    if has.any():
        assert total["kgce_per_m2"] == pytest.approx(ind["kgce"].sum() / area, rel=1e-9)


@SETTINGS
@given(portfolios(), st.floats(0.1, 10))
def test_scaling_readings_scales_totals_and_intensities(p, k):
    inst, use = p
    base = _ind(use, inst)
    scaled = _ind(use.assign(quantity=use["quantity"] * k), inst)
    for col in EXTENSIVE:
        np.testing.assert_allclose(scaled[col], base[col] * k, rtol=1e-9, atol=1e-6)
    for col in INTENSITIES:
        np.testing.assert_allclose(scaled[col], base[col] * k, rtol=1e-9, atol=1e-9)
    # shares of estimated data do not change
    np.testing.assert_allclose(scaled["estimated_share"], base["estimated_share"], rtol=1e-9, atol=1e-12)


@SETTINGS
@given(portfolios(), st.floats(0.1, 10))
def test_scaling_one_quantity_changes_only_its_intensities(p, k):
    inst, use = p
    base = _ind(use, inst)
    water = use["energy"] == "water"
    scaled = _ind(use.assign(quantity=np.where(water, use["quantity"] * k, use["quantity"])), inst)
    np.testing.assert_allclose(scaled["water_m3_per_person"], base["water_m3_per_person"] * k, rtol=1e-9)
    for col in INTENSITIES:
        if col != "water_m3_per_person":
            np.testing.assert_allclose(scaled[col], base[col], rtol=1e-12)
    # floor areas scaled: per-m2 intensities divide by k, per-person ones stay
    bigger = _ind(use, inst.assign(floor_area_m2=inst["floor_area_m2"] * k))
    for col in ("kgce_per_m2", "kgco2_per_m2", "nonheating_kgce_per_m2"):
        np.testing.assert_allclose(bigger[col], base[col] / k, rtol=1e-9)
    for col in ("kgce_per_person", "water_m3_per_person", "heating_kgce_per_m2"):
        np.testing.assert_allclose(bigger[col], base[col], rtol=1e-12)
