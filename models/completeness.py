"""The one completeness rule (domain.md §5: >= 90 % of the expected samples per day).

Used by the data-completeness alert, the dashboard's data-quality table and the
monthly report: pure, vectorised functions on sample frames. Over months and years the
rule is summed per meter and month (`completeness_sums`): by the store where it can
(the embedded store's SQL, `storage.embedded.EmbeddedStore._completeness_sums`, must
equal `completeness_from_counts`: tests/test_completeness_sums.py), else from the day
counts a few thousand meters at a time, so no meter-day of a province year is held."""

from __future__ import annotations

import numpy as np
import pandas as pd

from core import localtime
from core.frames import positions_in
from storage import rollup
from storage.base import expected_samples

COMPLETENESS_TARGET = 0.90  # domain.md §5: >= 90 % of expected samples per day
COMPLETENESS_LOOKBACK_DAYS = 7  # a meter's usual spacing: median over the day and the week before
DAY_S = 86_400  # seconds in a calendar day (23 or 25 h on DST days are taken from the clock)


def live_meters(meters: pd.DataFrame) -> pd.DataFrame:
    """meter_id, institution_id, interval_s (float) of the live (Modbus-polled) meters
    among `meters` (rows of `Registry.meters_frame`: a live meter has a poll interval)."""
    live = meters[np.isfinite(meters["interval_s"].to_numpy(float))]
    return pd.DataFrame({"meter_id": live["meter_id"].to_numpy(object),
                         "institution_id": live["institution_id"].to_numpy(object),
                         "interval_s": live["interval_s"].to_numpy(float)})


def sample_spacing(samples: pd.DataFrame) -> pd.Series:
    """Median spacing (s) between consecutive samples of each meter (`samples`:
    meter_id, time; any order)."""
    if samples.empty:
        return pd.Series(dtype=float)
    s = samples.sort_values(["meter_id", "time"], kind="stable")
    step = pd.to_datetime(s["time"], utc=True).diff().dt.total_seconds().where(s["meter_id"].eq(s["meter_id"].shift()))
    return step.groupby(s["meter_id"]).median()


def _local_day_numbers(t: pd.DatetimeIndex, tz) -> np.ndarray:
    """Local calendar day of each instant, as days since 1970-01-01 (int64)."""
    return t.tz_convert(tz).tz_localize(None).normalize().as_unit("s").asi8 // DAY_S


DAILY_COLUMNS = ["meter_id", "day", "samples", "expected", "interval_s", "stored", "share", "max_gap_s"]


COUNT_DAILY_COLUMNS = DAILY_COLUMNS[:-1]  # the rule from day counts: everything but max_gap_s


def day_edges(start: pd.Timestamp, end: pd.Timestamp) -> tuple[pd.DatetimeIndex, np.ndarray]:
    """The local days in [start, end) (tz-aware local midnights) and their edges (epoch s)."""
    start, end = pd.Timestamp(start), pd.Timestamp(end)
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("completeness: start and end must be tz-aware local midnights")
    days = localtime.local_days(start, end, start.tz)  # each day's first instant (DST, odd offsets)
    return days, days.append(pd.DatetimeIndex([end.tz_convert(start.tz)])).as_unit("s").asi8


def day_counts(samples: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    """Per meter and local day in [start, end) with a sample: meter_id, period_start,
    samples, stored, step, from raw samples (meter_id, time, quality) by the arithmetic
    the stores materialise them with (`storage.rollup.sample_counts`), so this equals
    `Store.period_counts("day", ...)` on the same samples."""
    days, edges = day_edges(start, end)
    if samples.empty or len(days) == 0:
        return pd.DataFrame({"meter_id": pd.Series(dtype=object), "period_start": pd.DatetimeIndex([], tz=days.tz),
                             "samples": pd.Series(dtype=np.int64), "stored": pd.Series(dtype=np.int64),
                             "step": pd.Series(dtype=float)})
    q = samples["quality"].to_numpy(np.int64) if "quality" in samples else np.zeros(len(samples), np.int64)
    c = rollup.sample_counts(pd.DataFrame({"meter_id": samples["meter_id"].to_numpy(object),
                                           "t": pd.DatetimeIndex(pd.to_datetime(samples["time"], utc=True))
                                           .as_unit("s").asi8, "quality": q}), edges)
    return pd.DataFrame({"meter_id": c["meter_id"].to_numpy(object), "period_start": days[c["period"].to_numpy()],
                         "samples": c["samples"].to_numpy(np.int64), "stored": c["stored"].to_numpy(np.int64),
                         "step": c["step"].to_numpy(float)})


def completeness_from_counts(counts: pd.DataFrame, live_interval: pd.Series, start: pd.Timestamp,
                             end: pd.Timestamp, lookback_days: int = COMPLETENESS_LOOKBACK_DAYS) -> pd.DataFrame:
    """Completeness of each meter on each local day in [start, end) (tz-aware local
    midnights) from day counts (meter_id, period_start, samples, stored, step: the
    materialised `Store.period_counts("day", start - lookback_days days, end)`, or
    `day_counts` of raw samples): the one rule the `data_completeness` alert, the
    dashboard's data-quality table, the monthly report's `incomplete` sheet and the
    monthly submissions use (domain.md §5: >= 90 % of the expected samples per day).

    Expected samples of a day = floor(day length / interval_s), at least 1, where
    interval_s is, in this order:

    1. for a day whose samples are *all* backfilled or imported (storage.quality
       BACKFILL | IMPORTED): the resolution that day actually carries, the median
       spacing of its samples (`step`). Archived history (re-read from a meter's
       memory, imported CSV, generated demo history) is legitimately at the resolution
       it was stored at: an hourly backfilled day of a 15-minute meter is 24/24 =
       100 %, not 24/96, whatever the days around it look like;
    2. otherwise (any live sample that day, or no sample) the live poll interval
       (`live_interval`: meter_id -> s, the Modbus `interval_s`): a live day with 10 %
       of its polls missing is 90 %, a 6-hour outage is 75 %;
    3. for a meter without a poll interval (fed only by imports) the meter's usual
       spacing: the median of the daily spacings of the day and the `lookback_days`
       before it;
    4. failing all of these (a lone sample with no neighbour in the window), one a day.

    A sample's spacing is the time since the meter's previous sample, counted only when
    that sample lies within `lookback_days` days of the judged day's start, so a day's
    figure does not depend on the window asked for. Returns one row per meter and day:
    every day of a meter with a live interval, and the days of any other meter with a
    sample in the day's window (the day and the `lookback_days` before it); absent
    meters have nothing, share 0. Columns: meter_id, day (local midnight), samples,
    expected, interval_s, stored (judged at the stored resolution), share (samples /
    expected, capped at 1). Vectorised."""
    days, edges = day_edges(start, end)
    if len(days) == 0:
        return pd.DataFrame({c: [] for c in COUNT_DAILY_COLUMNS})
    tz = days.tz
    day_num = _local_day_numbers(days, tz)
    first_day, last_day = int(day_num[0]), int(day_num[-1])
    day_pos = pd.Index(day_num)

    live = live_interval.astype(float)
    live = live[np.isfinite(live.to_numpy()) & (live.to_numpy() > 0)]

    c = counts[counts["samples"].to_numpy(np.int64) > 0]
    dn = _local_day_numbers(pd.DatetimeIndex(c["period_start"]), tz) if len(c) else np.zeros(0, np.int64)
    inside = (dn >= first_day - lookback_days) & (dn <= last_day)
    c, dn = c[inside], dn[inside]
    codes, names = pd.factorize(c["meter_id"])
    names = np.asarray(names, dtype=object)
    # the grid: every meter (sorted) x every day, addressed by position (meter * n_days + day)
    meters = pd.Index(sorted(set(live.index) | set(names)), name="meter_id")
    n_days = len(day_num)
    row_meter = meters.get_indexer(names)[codes] if len(c) else np.zeros(0, np.int64)
    size = len(meters) * n_days
    mine = dn >= first_day
    day_of = day_pos.get_indexer(dn)  # -1 for the lookback days before the first
    at = row_meter[mine] * n_days + day_of[mine]
    n = np.zeros(size)
    n[at] = c["samples"].to_numpy(float)[mine]
    n_stored = np.zeros(size)
    n_stored[at] = c["stored"].to_numpy(float)[mine]
    step = c["step"].to_numpy(float)
    step = np.where(step > 0, step, np.nan)
    own_step = np.full(size, np.nan)
    own_step[at] = step[mine]
    all_stored = (n > 0) & (n_stored == n)

    # usual spacing of meters without a poll interval: each day's spacing counts for
    # that day and the `lookback_days` after it (a vectorised rolling median)
    k = np.arange(lookback_days + 1)
    # hashed, not np.isin: on object arrays that compares every name with every live meter
    feed = ~pd.Index(names).isin(live.index)[codes] if len(c) else np.zeros(0, bool)
    rep_meter = np.repeat(row_meter[feed], len(k))
    rep_dn = (dn[feed][:, None] + k[None, :]).ravel()
    rep_step = np.repeat(step[feed], len(k))
    ok = (rep_dn >= first_day) & (rep_dn <= last_day)
    rep_at = rep_meter[ok] * n_days + day_pos.get_indexer(rep_dn[ok])
    med = pd.Series(rep_step[ok]).groupby(rep_at).median()
    usual = np.full(size, np.nan)
    usual[med.index.to_numpy(np.int64)] = med.to_numpy(float)

    live_iv = np.repeat(live.reindex(meters).to_numpy(float), n_days)
    # a meter without a poll interval is judged on the days it was heard of in the window
    heard = np.zeros(size, bool)
    heard[rep_at] = True
    keep = np.isfinite(live_iv) | heard
    use_own = all_stored & np.isfinite(own_step) & (own_step > 0)
    interval = np.where(use_own, own_step,
                        np.where(np.isfinite(live_iv), live_iv,
                                 np.where(np.isfinite(usual) & (usual > 0), usual, float(DAY_S))))
    pos = np.tile(np.arange(n_days), len(meters))
    span = (edges[pos + 1] - edges[pos]).astype(float)
    expected = expected_samples(span, interval)
    meter_rows = np.repeat(np.arange(len(meters)), n_days)
    return pd.DataFrame({
        "meter_id": meters.array.take(meter_rows) if size else np.asarray([], dtype=object),
        "day": days[pos],
        "samples": n.astype(int),
        "expected": expected.astype(int),
        "interval_s": interval,
        "stored": use_own,
        "share": np.minimum(n / expected, 1.0),
    })[keep].reset_index(drop=True)


def daily_completeness(samples: pd.DataFrame, live_interval: pd.Series, start: pd.Timestamp,
                       end: pd.Timestamp, lookback_days: int = COMPLETENESS_LOOKBACK_DAYS) -> pd.DataFrame:
    """`completeness_from_counts` of raw samples (meter_id, time, quality; absent: live)
    covering [start - lookback_days days, end), for windows of a few days (the alert of
    one day, the dashboard's week), plus max_gap_s (longest silence inside the day, day
    bounds included), which needs the samples themselves. Columns DAILY_COLUMNS."""
    start = pd.Timestamp(start)
    out = completeness_from_counts(day_counts(samples, start - pd.Timedelta(days=lookback_days), end),
                                   live_interval, start, end, lookback_days)
    if out.empty:
        return pd.DataFrame({c: [] for c in DAILY_COLUMNS})
    days, edges = day_edges(start, end)
    t = pd.DatetimeIndex(pd.to_datetime(samples["time"], utc=True)).as_unit("s").asi8 if len(samples) else np.zeros(0, np.int64)
    s = pd.DataFrame({"meter_id": samples["meter_id"].to_numpy(object) if len(samples) else np.array([], object),
                      "t": t, "day": np.searchsorted(edges, t, side="right") - 1})
    s = s[(s["day"] >= 0) & (s["day"] < len(days))].sort_values(["meter_id", "t"], kind="stable")
    inner = np.where(s["meter_id"].eq(s["meter_id"].shift()) & s["day"].eq(s["day"].shift()),
                     s["t"].diff().to_numpy(float), np.nan)
    g = s.assign(inner=inner).groupby(["meter_id", "day"])
    key = pd.MultiIndex.from_arrays([out["meter_id"].to_numpy(object), days.get_indexer(out["day"])])
    agg = pd.DataFrame({"first": g["t"].min(), "last": g["t"].max(), "inner": g["inner"].max()}).reindex(key)
    d0, d1 = edges[key.get_level_values(1)].astype(float), edges[key.get_level_values(1) + 1].astype(float)
    gap = np.fmax(np.fmax(agg["first"].to_numpy(float) - d0, d1 - agg["last"].to_numpy(float)),
                  agg["inner"].to_numpy(float))
    return out.assign(max_gap_s=np.where(out["samples"].to_numpy() > 0, gap, d1 - d0))[DAILY_COLUMNS]


# Per meter and group of judged days (`completeness_sums`): days (judged days with a
# sample), complete (of them at >= the target), share_sum and share_min (of the day
# shares), samples (their samples). A judged day without a sample has share 0.
SUM_COLUMNS = ["meter_id", "period", "days", "complete", "share_sum", "share_min", "samples"]
METERS_PER_READ = 4_000  # meters whose day counts are read at a time where the store cannot aggregate them


def judged_days(start: pd.Timestamp, end: pd.Timestamp, by: str = "month",
                lookback_days: int = COMPLETENESS_LOOKBACK_DAYS) -> tuple[pd.DataFrame, pd.DatetimeIndex]:
    """The local days in [start, end) (tz-aware local midnights) the completeness rule
    judges, as a backend aggregates them (`Store._completeness_sums`): t (first instant,
    epoch s), lo (first instant of the local day `lookback_days` before: the first day
    of its usual-spacing window), span (its length, s), group (position in the returned
    keys: its local month, naive first day, `by='month'`; or one group, `start`'s naive
    local day, `by='span'`)."""
    if by not in ("month", "span"):
        raise ValueError(f"by must be 'month' or 'span', not {by!r}")
    days, edges = day_edges(start, end)
    tz = days.tz
    wall = localtime.local_wall(days, tz).normalize()
    lo = localtime.first_instant(wall - pd.Timedelta(days=lookback_days), tz)
    if by == "month":
        month = wall.to_period("M").to_timestamp()
        group, keys = pd.factorize(month, sort=True)
        keys = pd.DatetimeIndex(keys)
    else:
        group = np.zeros(len(days), np.int64)
        keys = pd.DatetimeIndex(wall[:1])
    return pd.DataFrame({"t": edges[:-1], "lo": pd.DatetimeIndex(lo).as_unit("s").asi8, "span": np.diff(edges),
                         "group": np.asarray(group, np.int64)}), keys


def sums_of_daily(daily: pd.DataFrame, days: pd.DataFrame, target: float = COMPLETENESS_TARGET) -> pd.DataFrame:
    """`SUM_COLUMNS` (period: the group's position in `days`) of `completeness_from_counts`
    rows over the judged `days` (`judged_days`): the judged days with a sample, per meter
    and group (rows without `samples`, e.g. meter_id, day, share only: those with a
    share > 0, samples counted 0)."""
    if "samples" not in daily:
        daily = daily.assign(samples=0)[daily["share"].to_numpy(float) > 0]
    else:
        daily = daily[daily["samples"].to_numpy(np.int64) > 0]
    d = daily
    at = pd.Index(days["t"].to_numpy(np.int64)).get_indexer(pd.DatetimeIndex(d["day"]).as_unit("s").asi8)
    d, at = d[at >= 0], at[at >= 0]  # only the judged days
    group = days["group"].to_numpy(np.int64)[at]
    share = d["share"].to_numpy(float)
    g = pd.DataFrame({"meter_id": d["meter_id"].to_numpy(object), "period": group, "share": share,
                      "complete": (share >= target).astype(np.int64), "samples": d["samples"].to_numpy(np.int64)}
                     ).groupby(["meter_id", "period"], sort=True)
    out = pd.DataFrame({"days": g.size(), "complete": g["complete"].sum(), "share_sum": g["share"].sum(),
                        "share_min": g["share"].min(), "samples": g["samples"].sum()}).reset_index()
    return out[SUM_COLUMNS]


def completeness_sums(store, live_interval: pd.Series, start: pd.Timestamp, end: pd.Timestamp,
                      meter_ids: list[str], by: str = "month", target: float = COMPLETENESS_TARGET,
                      lookback_days: int = COMPLETENESS_LOOKBACK_DAYS, full: bool = True) -> pd.DataFrame:
    """The completeness rule (`completeness_from_counts`, target > 0) of `meter_ids` over
    the local days in [start, end), summed per meter and local month (`by='month'`) or
    over the whole span (`by='span'`): SUM_COLUMNS, period the group's naive local first
    day (`judged_days`). Memory is bounded by the result, not by the meter-days: the
    store aggregates the rule itself where it can (`Store._completeness_sums`: SQL in
    the embedded store), else the day counts are read METERS_PER_READ meters at a time.
    Not `full`: only complete is needed (the other columns may be NaN, and a group
    without a complete day may have no row: the embedded store then counts a year's
    months in one pass)."""
    days, keys = judged_days(start, end, by, lookback_days)
    ids = [str(m) for m in meter_ids]
    live = live_interval.astype(float)
    live = live[np.isfinite(live.to_numpy()) & (live.to_numpy() > 0)]
    empty = pd.DataFrame({"meter_id": pd.Series(dtype=object), "period": pd.DatetimeIndex([]),
                          "days": pd.Series(dtype=np.int64), "complete": pd.Series(dtype=np.int64),
                          "share_sum": pd.Series(dtype=float), "share_min": pd.Series(dtype=float),
                          "samples": pd.Series(dtype=np.int64)})
    if not ids or days.empty:
        return empty
    meters = pd.DataFrame({"meter_id": ids, "interval_s": live.reindex(ids).to_numpy(float)})
    backend = getattr(store, "_completeness_sums", None)  # (a store that is not a `Store`: none)
    sums = backend(days, meters, target, full) if backend is not None else None
    if sums is None:
        parts = []
        for i in range(0, len(ids), METERS_PER_READ):
            chunk = ids[i:i + METERS_PER_READ]
            counts = store.period_counts("day", start - pd.Timedelta(days=lookback_days), end, chunk)
            daily = completeness_from_counts(counts, live[live.index.isin(chunk)], start, end, lookback_days)
            parts.append(sums_of_daily(daily, days, target))
        sums = pd.concat(parts, ignore_index=True) if parts else empty
    if sums.empty:
        return empty
    return sums.assign(period=keys[sums["period"].to_numpy(np.int64)])[SUM_COLUMNS].reset_index(drop=True)


MONTH_COLUMNS = ["institution_id", "month", "days", "expected", "complete", "completeness"]


def institution_month_completeness(daily: pd.DataFrame, meters: pd.DataFrame, billed: pd.DataFrame,
                                   bill_days: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp,
                                   target: float = COMPLETENESS_TARGET) -> pd.DataFrame:
    """Metering completeness of each institution in each local month of [start, end)
    (tz-aware local midnights): the share of its unit-days that are complete.

    A unit is one of `meters` (meter_id, institution_id: the meters judged, e.g. the
    main meters) or one of `billed` (institution_id, energy: energies it is billed for
    and has no meter of). A meter-day is complete when its share in `daily` (rows of
    `daily_completeness` over the same days) reaches `target` (> 0; 90 %, the rule above; a
    day absent from `daily` had none of its samples); a billed energy's day is complete
    when a bill covers it (`bill_days`: institution_id, energy, period_start = a local
    day, e.g. `models.energy.split_bills(..., "day", ...)`). Vectorised.

    Returns one row per institution with a unit and month: institution_id, month (the
    month's first day, naive local), days (in the month inside [start, end)), expected
    (unit-days), complete (unit-days complete), completeness (complete / expected)."""
    days, keys = judged_days(start, end, "month")
    sums = sums_of_daily(daily, days, target)
    return institution_month_completeness_of_sums(sums.assign(period=keys[sums["period"].to_numpy(np.int64)]),
                                                  meters, billed, bill_days, start, end)


def institution_month_completeness_of_sums(sums: pd.DataFrame, meters: pd.DataFrame, billed: pd.DataFrame,
                                           bill_days: pd.DataFrame, start: pd.Timestamp,
                                           end: pd.Timestamp) -> pd.DataFrame:
    """`institution_month_completeness` from the meters' complete days per local month
    (`sums`: SUM_COLUMNS by month, `completeness_sums(..., by='month')`), so no
    meter-day is held in memory."""
    start, end = pd.Timestamp(start), pd.Timestamp(end)
    tz = start.tz
    days = localtime.local_wall(localtime.local_days(start, end, tz), tz).normalize()
    month_of = days.to_period("M").to_timestamp()
    per_month = pd.Series(1, index=month_of).groupby(level=0).size()
    units = pd.concat([meters[["institution_id"]], billed[["institution_id"]]], ignore_index=True)
    n_units = units.groupby("institution_id").size()
    if n_units.empty or per_month.empty:
        return pd.DataFrame({c: [] for c in MONTH_COLUMNS})
    grid = pd.MultiIndex.from_product([n_units.index, per_month.index], names=["institution_id", "month"])
    expected = pd.Series(np.repeat(n_units.to_numpy(), len(per_month)) * np.tile(per_month.to_numpy(), len(n_units)),
                         index=grid)

    def local_day(values: pd.Series) -> pd.DatetimeIndex:
        t = pd.DatetimeIndex(values)
        return (localtime.local_wall(t, tz) if t.tz is not None else t).normalize()

    in_window = (days[0], days[-1])
    b = bill_days.merge(billed[["institution_id", "energy"]], on=["institution_id", "energy"])
    paid = pd.DataFrame({"institution_id": b["institution_id"], "unit": "bill:" + b["energy"].astype(str),
                         "day": local_day(b["period_start"])}).drop_duplicates()
    paid = paid[(paid["day"] >= in_window[0]) & (paid["day"] <= in_window[1])]
    complete = paid.groupby(["institution_id", paid["day"].dt.to_period("M").dt.to_timestamp()]).size()
    complete = complete.rename_axis(["institution_id", "month"]).reindex(grid, fill_value=0)
    # a meter's complete days of each month (each meter-day counts once: one row per meter and group)
    # (by position in the grid: institution x month, no string per row)
    pos = positions_in(sums["meter_id"], pd.Index(meters["meter_id"]))
    month_pos = per_month.index.get_indexer(pd.DatetimeIndex(sums["period"]))
    inst_pos = n_units.index.get_indexer(meters["institution_id"])[pos]
    keep = (pos >= 0) & (month_pos >= 0)
    met = np.bincount(inst_pos[keep] * len(per_month) + month_pos[keep],
                      weights=sums["complete"].to_numpy(np.int64)[keep], minlength=len(grid))
    complete = complete + met.astype(np.int64)
    return pd.DataFrame({
        "institution_id": grid.get_level_values("institution_id").to_numpy(object),
        "month": grid.get_level_values("month"),
        "days": np.tile(per_month.to_numpy(), len(n_units)),
        "expected": expected.to_numpy(int),
        "complete": complete.to_numpy(int),
        "completeness": complete.to_numpy(float) / expected.to_numpy(float),
    })[MONTH_COLUMNS]


def complete_months(months: pd.DataFrame, institution_ids, month_starts,
                    threshold: float = COMPLETENESS_TARGET) -> np.ndarray:
    """Per institution of `institution_ids`: every month of `month_starts` (first days,
    naive local) reaches `threshold` completeness with something due (`months`: rows of
    `institution_month_completeness` or `Submissions.months`; duplicates harmless). The
    one rule for "this period is complete": a year-on-year change is shown only where
    both periods are (the assessment, the statistics tables)."""
    ids = pd.Index(list(institution_ids))
    wanted = pd.DatetimeIndex(month_starts)
    if months.empty or not len(ids):
        return np.zeros(len(ids), bool)
    ok = (months["completeness"].to_numpy(float) >= threshold) & (months["expected"].to_numpy(float) > 0)
    m = pd.DatetimeIndex(months["month"])
    good = pd.DataFrame({"institution_id": months["institution_id"].to_numpy(object), "month": m})[ok & m.isin(wanted)]
    n = good.drop_duplicates().groupby("institution_id").size()
    return (n.reindex(ids).fillna(0).to_numpy(int) >= len(wanted.unique())) & (len(wanted) > 0)


def complete_span(months: pd.DataFrame, institution_ids, threshold: float = COMPLETENESS_TARGET) -> pd.Series:
    """`complete_months` over every month `months` holds (one span: a year, or the part
    of a running year that is compared), as a bool Series indexed by `institution_ids`.
    An institution without a row for one of those months is not complete."""
    ids = pd.Index(list(institution_ids), name="institution_id")
    wanted = pd.DatetimeIndex(months["month"]).unique() if len(months) else pd.DatetimeIndex([])
    return pd.Series(complete_months(months, ids, wanted, threshold), index=ids)
