"""InfluxDB: the meter filter (one regex) selects exactly the meters asked for, whatever
their ids, and spans summed here from the day rows (`_day_sums`) equal the server's
`sum()` statements and the plain sums of the rows written."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from storage import influx

TZ = "Asia/Shanghai"
# ids an InfluxQL regex or line protocol could misread: regex metacharacters, the regex
# delimiter, quotes, spaces, commas, equals signs, non-ASCII (not a backslash: InfluxDB 1.x
# keeps `escape_tag`'s doubled backslash in the tag, so no filter finds such a meter)
ODD = ["A.1", "AX1", "B/2", "C|3", "C", "E 5", "F,6", "G=7", "学-8", "H'9", 'I"10', "J(1)", "K*", "KK", "L$",
       "^M", "N[0-9]", "N5", "O+", "OO"]


def day_rows(ids: list[str], days: pd.DatetimeIndex, seed: int) -> pd.DataFrame:
    """Day rows for every meter and day (index units), a quarter of them not covered."""
    rng = np.random.default_rng(seed)
    n = len(ids) * len(days)
    return pd.DataFrame({"meter_id": np.repeat(np.asarray(ids, object), len(days)),
                         "t": np.tile(days.as_unit("s").asi8, len(ids)), "quantity": rng.uniform(0, 100, n),
                         "est": rng.uniform(0, 5, n), "flags": 0, "samples": 96, "stored": 0,
                         "covered": (rng.uniform(size=n) > 0.25).astype(np.int64), "step": 900.0})


def put_days(store, rows: pd.DataFrame) -> None:
    store.set_meters(pd.DataFrame({"meter_id": sorted(set(rows["meter_id"])), "multiplier": 1.0,
                                   "rollover_at": np.nan}))
    with store._writing():
        store._put_periods("day", rows)


def test_meter_filter_selects_exactly_the_ids_asked_for(influx_store):
    days = pd.date_range("2025-03-01", periods=3, freq="D", tz=TZ)
    rows = day_rows(ODD, days, seed=1).assign(covered=1)
    put_days(influx_store, rows)
    asked = ["A.1", "B/2", "C|3", "E 5", "F,6", "G=7", "学-8", "H'9", 'I"10', "J(1)", "K*", "L$", "^M",
             "N[0-9]", "O+"]
    got = influx_store.consumption("day", days[0], days[-1] + pd.Timedelta(days=1), asked)
    assert sorted(set(got["meter_id"])) == sorted(asked)  # not AX1, C, KK, N5, OO, which a loose regex matches
    assert len(got) == 3 * len(asked)
    want = rows[rows["meter_id"].isin(asked)].sort_values(["meter_id", "t"])
    np.testing.assert_array_equal(got.sort_values(["meter_id", "period_start"])["quantity"].to_numpy(),
                                  want["quantity"].to_numpy())
    for one in ("C", "N5", "学-8"):
        assert set(influx_store.consumption("day", days[0], days[-1], [one])["meter_id"]) == {one}
    year = influx_store.consumption("year", days[0], days[-1] + pd.Timedelta(days=1), ["C", "AX1"])
    assert sorted(year["meter_id"]) == ["AX1", "C"]


@pytest.mark.parametrize("reads", ["whole", "tiny_blocks", "shares"])
def test_spans_summed_here_equal_the_servers_sums(influx_store, monkeypatch, reads):
    ids = [f"HB-{k:04d}-E0" for k in range(12)] + ODD[:6]
    days = pd.date_range("2025-01-01", "2025-07-01", freq="D", tz=TZ, inclusive="left")
    rows = day_rows(ids, days, seed=2)
    rows = rows[~((rows["meter_id"] == "HB-0003-E0") & (rows["t"] >= days[40].value // 10**9))]  # ends in February
    put_days(influx_store, rows)
    if reads == "tiny_blocks":  # a meter's span cut by CSV blocks and by the time slices read at once
        monkeypatch.setattr(influx, "CSV_BLOCK_BYTES", 512)
        monkeypatch.setattr(influx, "SLICE_ABOVE_S", 86_400)
    if reads == "shares":  # the meters read as shares of at most 4, two at a time
        monkeypatch.setattr(influx, "SHARE_METERS", 4)
        assert len(influx_store._shares(ids[:-1])) == 5 and len(influx_store._shares(ids[:3], at_least=2)) == 2
        daily = influx_store.consumption("day", days[0], days[-1] + pd.Timedelta(days=1), ids[:-1])
        want = rows[rows["meter_id"].isin(ids[:-1]) & (rows["covered"] == 1)].sort_values(["meter_id", "t"])
        assert list(daily["meter_id"]) == list(want["meter_id"])
        np.testing.assert_array_equal(daily["quantity"].to_numpy(), want["quantity"].to_numpy())
    starts = pd.DatetimeIndex(["2025-01-01", "2025-02-01", "2025-02-10", "2025-03-01", "2025-06-01"]).tz_localize(TZ)
    assert influx.SUM_STATEMENT_DAYS == 50  # so only the 92 days from March are one statement (`mixed`)
    end = pd.Timestamp("2025-06-20", tz=TZ)
    cuts = np.r_[starts.as_unit("s").asi8, end.value // 10**9]
    asked = ids[:-1]  # one meter not asked for
    mixed = influx_store._sums_between(starts, cuts, asked)  # March to May by the server, the rest here
    monkeypatch.setattr(influx, "SUM_STATEMENT_DAYS", 0)  # every span a server sum() statement
    server = influx_store._sums_between(starts, cuts, asked)
    monkeypatch.setattr(influx, "SUM_STATEMENT_DAYS", 10**6)  # every span summed here
    here = influx_store._sums_between(starts, cuts, asked)
    picked = rows[rows["meter_id"].isin(asked) & (rows["covered"] == 1) & (rows["t"] < cuts[-1])]
    span = np.searchsorted(cuts, picked["t"].to_numpy(), side="right") - 1
    want = picked.assign(period_start=starts[span]).groupby(["meter_id", "period_start"], as_index=False)[
        ["quantity", "est"]].sum()
    assert len(want) == len(asked) * len(starts) - 3  # HB-0003-E0 has no day after February's 9th
    for got in (server, here, mixed):
        assert list(got.columns) == ["meter_id", "period_start", "quantity", "est"]
        assert list(zip(got["meter_id"], got["period_start"], strict=True)) == list(
            zip(want["meter_id"], want["period_start"], strict=True))
        np.testing.assert_allclose(got["quantity"], want["quantity"], rtol=1e-12)
        np.testing.assert_allclose(got["est"], want["est"], rtol=1e-12)
    assert str(here["period_start"].dtype) == str(server["period_start"].dtype) == str(mixed["period_start"].dtype)
    every = influx_store._sums_between(starts, cuts, None)  # all meters: read in time slices, not meter shares
    picked = rows[(rows["covered"] == 1) & (rows["t"] < cuts[-1])]
    span = np.searchsorted(cuts, picked["t"].to_numpy(), side="right") - 1
    want = picked.assign(period_start=starts[span]).groupby(["meter_id", "period_start"], as_index=False)[
        ["quantity", "est"]].sum()
    assert list(zip(every["meter_id"], every["period_start"], strict=True)) == list(
        zip(want["meter_id"], want["period_start"], strict=True))
    np.testing.assert_allclose(every["quantity"], want["quantity"], rtol=1e-12)
    np.testing.assert_allclose(every["est"], want["est"], rtol=1e-12)


def test_sample_reads_in_meter_shares_equal_one_read(influx_store, monkeypatch):
    ids = ["M1", "M2", "M3", "M4", "M5"]
    t = pd.date_range("2025-03-01", periods=8, freq="h", tz="UTC")
    samples = pd.DataFrame({"meter_id": np.repeat(ids, len(t)), "time": np.tile(t, len(ids)),
                            "value": np.arange(len(ids) * len(t), dtype=float), "quality": 0})
    influx_store.write_samples(samples)
    asked = ["M1", "M3", "M4", "M5"]
    whole = (influx_store.read_samples(t[1], t[6], asked), influx_store.last_samples_before(t[5], asked),
             influx_store._sample_span(asked))
    monkeypatch.setattr(influx, "SHARE_METERS", 1)
    assert len(influx_store._shares(asked)) == 4
    shared = (influx_store.read_samples(t[1], t[6], asked), influx_store.last_samples_before(t[5], asked),
              influx_store._sample_span(asked))
    for a, b in zip(whole, shared, strict=True):
        pd.testing.assert_frame_equal(a, b)
    assert sorted(set(shared[0]["meter_id"])) == asked and len(shared[0]) == 4 * 5
    assert shared[1]["value"].tolist() == [samples.loc[(samples["meter_id"] == m) & (samples["time"] == t[4]),
                                                       "value"].item() for m in asked]
    assert influx_store.read_samples(t[0], t[6], []).empty and influx_store._sample_span([]).empty
