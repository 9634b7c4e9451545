"""The entry checks (models.submission_checks): each flag against its definition, by property."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from models.submission_checks import CHECKS, COST_BAND_CNY, YOY_LIMIT, blocking, run_checks

ENERGIES = ["electricity", "water", "heat", "gasoline"]
finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)


def items_frame(rows) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=["energy", "quantity", "cost_cny", "last_year_c", "metered"])
    return df.assign(index=np.arange(len(df)), institution_id="I", unit="u", known_energy=True, unit_ok=True,
                     quantity_c=df["quantity"], duplicate=df["energy"].duplicated())


def empty_inst() -> pd.DataFrame:
    return pd.DataFrame(columns=["institution_id", "floor_area_m2", "occupants", "floor_area_given",
                                 "occupants_given", "kgce_per_m2", "peer_low", "peer_high"])


def empty_missing() -> pd.DataFrame:
    return pd.DataFrame(columns=["institution_id", "energy", "last_year_c"])


row = st.tuples(st.sampled_from(ENERGIES), finite, st.one_of(st.just(np.nan), finite),
                st.one_of(st.just(np.nan), finite), st.booleans())


@settings(max_examples=200, deadline=None)
@given(st.lists(row, min_size=1, max_size=8))
def test_item_checks_flag_exactly_their_definition(rows):
    items = items_frame(rows)
    found = run_checks(items, empty_inst(), empty_missing())
    flagged = {code: set(found.loc[found["code"] == code, "index"]) for code in CHECKS}
    for r in items.itertuples():
        q, c, ly = r.quantity, r.cost_cny, r.last_year_c
        assert (r.index in flagged["NEGATIVE"]) == (q < 0 or (not np.isnan(c) and c < 0))
        assert (r.index in flagged["ZERO"]) == (q == 0)
        assert (r.index in flagged["METERED_ENERGY"]) == r.metered
        assert (r.index in flagged["DUPLICATE_ITEM"]) == r.duplicate
        yoy = not np.isnan(ly) and ly > 0 and q > 0 and abs(q / ly - 1) > YOY_LIMIT
        assert (r.index in flagged["YOY_CHANGE"]) == yoy
        lo, hi = COST_BAND_CNY[r.energy]
        band = q > 0 and not np.isnan(c) and c > 0 and not lo <= c / q <= hi
        assert (r.index in flagged["COST_PER_UNIT"]) == band
    severities = dict(zip(found["code"], found["severity"], strict=False))
    assert all(severities[c] == CHECKS[c].severity for c in severities)
    errors = (found["severity"] == "error").to_numpy()
    assert not (np.diff(errors.astype(int)) > 0).any()  # errors come first


@settings(max_examples=100, deadline=None)
@given(st.floats(min_value=0, max_value=100), st.floats(min_value=0, max_value=50), st.floats(min_value=0, max_value=50),
       st.one_of(st.none(), st.floats(min_value=0, max_value=1e5)), st.floats(min_value=1, max_value=1e5))
def test_institution_checks(intensity, lo, width, area_given, area):
    inst = pd.DataFrame({"institution_id": ["I"], "floor_area_m2": [area], "occupants": [100.0],
                         "floor_area_given": [area_given], "occupants_given": [None], "kgce_per_m2": [intensity],
                         "peer_low": [lo], "peer_high": [lo + width]})
    found = set(run_checks(items_frame([]), inst, empty_missing())["code"])
    assert ("PEER_INTENSITY" in found) == (not lo <= intensity <= lo + width)
    assert ("AREA_CHANGE" in found) == (area_given is not None and abs(area_given - area) / area > 0.005)
    assert "OCCUPANCY_CHANGE" not in found and "BAD_AREA" not in found


def test_every_check_has_both_messages_and_a_known_severity():
    for code, check in CHECKS.items():
        assert code.isupper() and check.severity in ("error", "warning")
        assert check.zh and check.en and check.zh != check.en


def test_blocking_needs_a_written_reason_per_warning():
    items = items_frame([("electricity", 0.0, np.nan, np.nan, False), ("water", -1.0, np.nan, np.nan, False)])
    found = run_checks(items, empty_inst(), empty_missing())
    errors, open_w = blocking(found, {"ZERO": "  "})
    assert errors["code"].tolist() == ["NEGATIVE"] and open_w["code"].tolist() == ["ZERO"]
    assert blocking(found, {"ZERO": "停电检修"})[1].empty
