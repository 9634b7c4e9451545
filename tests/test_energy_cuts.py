"""`energy_use(..., sums=..., cuts=[...])`: one read serves the months and a rolling
window starting inside a month (what `quotas check` does): the rows from the cut on sum
to the window read on its own, the months to the months read without the cut."""

from __future__ import annotations

import numpy as np
import pandas as pd

from core import localtime
from models.api import energy_use, indicators, load_factors
from tests.support_ledger_world import TZ, open_world


def test_cut_rows_sum_to_the_window_and_to_the_months(tmp_path):
    registry, store, _, _ = open_world(tmp_path)
    factors = load_factors()
    try:
        start, end = pd.Timestamp("2023-01-01"), pd.Timestamp("2024-12-31")
        cut = localtime.first_instant_of(pd.Timestamp("2023-12-31"), TZ)
        both = energy_use(store, registry, start, end, "day", factors, sums="month", cuts=[cut])
        months = energy_use(store, registry, start, end, "day", factors, sums="month")
        window = energy_use(store, registry, cut, end, "day", factors, sums="year")
        # the cut splits December 2023: one more span than months for the summed meters
        at_cut = [int((pd.DatetimeIndex(f["period_start"]) == cut).sum()) for f in (both, months)]
        assert at_cut[0] > at_cut[1]  # (daily rows, bills and billed meters, start there in both)
        part = both[np.asarray(pd.DatetimeIndex(both["period_start"]) >= cut)]
        for got, want, by in ((part, window, None), (both, months, "month")):
            g = indicators(got, registry, factors, freq="day", by_period=by)
            w = indicators(want, registry, factors, freq="day", by_period=by)
            key = ["institution_id"] + (["period_start"] if by else [])
            g, w = (f.sort_values(key).reset_index(drop=True) for f in (g, w))
            assert len(g) == len(w) and (g["kgce"] > 0).any()
            for col in ("kgce", "kgco2", "water_m3", "heating_kgce", "estimated_share"):
                if col in g:
                    np.testing.assert_allclose(g[col].to_numpy(float), w[col].to_numpy(float), rtol=1e-12,
                                               atol=1e-9, equal_nan=True, err_msg=col)
    finally:
        store.close()
