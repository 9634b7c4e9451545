"""The provincial headline of domain.md §1 (Hebei, 2020) from a synthetic portfolio."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.api import aggregate, indicators_from_frames, load_factors

N_INSTITUTIONS = 31_600  # Hebei's public institutions in 2020
TOTAL_TCE = 2_948_600  # total energy, tce
# Denominators implied by the printed intensities (domain.md: "about 187 million m2 and
# 11.45 million occupants", "185 million m3" of water).
FLOOR_AREA_M2 = 187_100_000
OCCUPANTS = 11_454_400
WATER_M3 = 184_650_000
# Energy mix in kgce shares (electricity, gas, heat, gasoline, diesel): any mix gives the same totals.
MIX = {"electricity": 0.55, "natural_gas": 0.2, "heat": 0.17, "gasoline": 0.05, "diesel": 0.03}
TZ = "Asia/Shanghai"


def _split(total: float, weights: np.ndarray) -> np.ndarray:
    return total * weights / weights.sum()


@pytest.fixture(scope="module")
def portfolio():
    rng = np.random.default_rng(2020)
    ids = np.array([f"HE-{i:05d}" for i in range(N_INSTITUTIONS)], dtype=object)
    cats = rng.choice(["government", "school", "hospital", "venue"], N_INSTITUTIONS, p=[0.4, 0.4, 0.1, 0.1])
    regions = rng.choice(["sjz", "bd", "ts", "hd", "lf"], N_INSTITUTIONS)
    area = _split(FLOOR_AREA_M2, rng.lognormal(8.5, 0.8, N_INSTITUTIONS))
    people = np.floor(_split(OCCUPANTS, rng.lognormal(4.5, 0.9, N_INSTITUTIONS))).astype(np.int64)
    people[: OCCUPANTS - people.sum()] += 1  # integer occupants adding up exactly
    inst = pd.DataFrame({"institution_id": ids, "name": ids, "region": regions, "category": cats,
                         "floor_area_m2": area, "heated_area_m2": area * 0.9, "occupants": people})
    factors = load_factors()
    months = pd.date_range("2020-01-01", periods=12, freq="MS", tz=TZ)
    shape = np.array([1.4, 1.3, 1.1, 0.8, 0.7, 0.9, 1.1, 1.1, 0.8, 0.7, 0.9, 1.2])
    kgce_inst = _split(TOTAL_TCE * 1000.0, area * rng.uniform(0.5, 1.5, N_INSTITUTIONS))
    water_inst = _split(WATER_M3, people * rng.uniform(0.5, 1.5, N_INSTITUTIONS))
    frames = []
    for energy, share in MIX.items():
        coef = factors.coal_kgce_per_unit(energy, "equivalent")
        q = kgce_inst * share / coef  # physical units of this energy
        frames.append((energy, q))
    frames.append(("water", water_inst))
    parts = []
    for energy, q in frames:
        qm = np.outer(q, shape / shape.sum())  # per institution and month
        parts.append(pd.DataFrame({"institution_id": np.repeat(ids, 12), "energy": energy,
                                   "period_start": pd.Categorical.from_codes(np.tile(np.arange(12), N_INSTITUTIONS),
                                                                             categories=months),
                                   "quantity": qm.ravel()}))
    use = pd.concat(parts, ignore_index=True)
    return use, inst, factors


def test_hebei_2020_headline(portfolio):
    use, inst, factors = portfolio
    ind = indicators_from_frames(use, inst, factors, freq="month")
    province = aggregate(ind.assign(province="hebei"), ["province"]).iloc[0]
    assert province["institutions"] == N_INSTITUTIONS
    assert round(province["tce"]) == TOTAL_TCE
    assert round(province["floor_area_m2"] / 1e6) == 187
    assert round(province["occupants"] / 1e4) / 100 == 11.45
    assert round(province["water_m3"] / 1e6) == 185
    # the printed headline: 15.76 kgce/m2, 257.42 kgce/person, 16.12 m3/person
    assert f"{province['kgce_per_m2']:.2f}" == "15.76"
    assert f"{province['kgce_per_person']:.2f}" == "257.42"
    assert f"{province['water_m3_per_person']:.2f}" == "16.12"
    # the mean of the institutions' intensities is not the headline
    assert f"{ind['kgce_per_m2'].mean():.2f}" != "15.76"
    # and the category aggregates add back up to the province
    by_cat = aggregate(ind, ["category"])
    assert by_cat["kgce"].sum() == pytest.approx(province["kgce"])
    assert by_cat["floor_area_m2"].sum() == pytest.approx(FLOOR_AREA_M2)
