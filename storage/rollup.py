"""Consumption from cumulative indices: pure, vectorised functions.

Consumption of a period is the increase of a meter's cumulative index times its
multiplier (domain.md section 4). The increase between two consecutive samples is
`v[i] - v[i-1]`, corrected by recorded events and, failing those, by rules:

* a recorded event (replacement, rollover, reset) at time te in (t[i-1], t[i]] with the
  old register's final index `old_index` and the new register's first index
  `new_index` adds `old_index - new_index` to the raw difference, so the increase is
  `(old_index - v[i-1]) + (v[i] - new_index)`;
* an unrecorded fall that a wrap at the register maximum explains (`rollover_at - v[i-1]
  + v[i]` is under 10 % of the register range) is a rollover;
* any other unrecorded fall is a counter reset to zero: the increase is `v[i]`, and the
  interval is flagged `DECREASE` so it is visible.

The increase of an interval is spread over the periods it overlaps in proportion to
time (linear interpolation of the cumulative index). An interval is *estimated* when it
is a gap, longer than GAP_FACTOR (2.5) x the median length of the intervals around it
(itself and GAP_RADIUS = 2 intervals of the same meter on each side, the upper middle
one where a meter's first or last intervals leave an even number: a missed poll or an
outage is interpolated, while a meter whose archived history is hourly and whose live
polls are every 15 minutes has no gap where the resolution changes), or when its closing
sample is flagged ESTIMATED. Each period reports the estimated share of its quantity, and
the OR of its intervals' flags.

Everything here is local: an interval's increase, flags and gap test depend only on its
own samples, the events inside it and GAP_RADIUS intervals on each side, so consumption
can be maintained as samples arrive (`storage.base.Store` recomputes only the periods a
batch touches) and equals `consumption()` over all raw samples, the reference path.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from core import localtime
from storage import quality

FREQS = localtime.FREQS

GAP_FACTOR = 2.5  # an interval longer than this x the median of the intervals around it is a gap
GAP_RADIUS = 2  # ... around it: this many intervals of the same meter on each side (and itself)
ROLLOVER_PLAUSIBLE = 0.1  # a wrap explains a fall if the wrapped increase < 10 % of range


def period_edges(start: pd.Timestamp, end: pd.Timestamp, freq: str, tz: str) -> np.ndarray:
    """Epoch-second boundaries of the local-time periods covering [start, end).

    The first edge is the start of the period containing `start`; the last is at or
    after `end`. A period starts at the zone's first instant of its label
    (`core.localtime`: a midnight skipped by daylight saving is not an edge, the end of
    the gap is).
    """
    edges = localtime.local_edges(pd.Timestamp(start), pd.Timestamp(end), freq, tz)
    return (edges.tz_convert("UTC").as_unit("s").asi8).astype(np.int64)


def interval_increases(samples: pd.DataFrame, events: pd.DataFrame | None = None,
                       rollover_at: pd.Series | None = None) -> pd.DataFrame:
    """Increase of each meter's index over each sampling interval (raw units, before
    the multiplier).

    samples: meter_id, t (epoch s, int64), value, quality.
    events: meter_id, t, old_index, new_index (optional).
    rollover_at: register maximum by meter_id (optional).
    Returns one row per interval: meter_id, t0, t1, increase, estimated (bool), flags.
    """
    s = by_meter_time(samples)
    meter = s["meter_id"].to_numpy()
    t = s["t"].to_numpy(np.int64)
    v = s["value"].to_numpy(np.float64)
    q = s["quality"].to_numpy(np.int64) if "quality" in s else np.zeros(len(s), np.int64)
    same = np.zeros(len(s), bool)
    if len(s) > 1:
        same[1:] = meter[1:] == meter[:-1]
    idx = np.flatnonzero(same)  # interval i closes at sample i
    t0, t1 = t[idx - 1], t[idx]
    inc = v[idx] - v[idx - 1]
    flags = np.zeros(len(idx), np.int64)

    if events is not None and len(events) and len(idx):
        # Find, per event, the interval containing it: the first sample at or after te.
        codes, uniques = pd.factorize(meter)
        ev = events[events["meter_id"].isin(uniques)]
        ev_code = pd.Index(uniques).get_indexer(ev["meter_id"])
        key = codes.astype(np.int64) * (1 << 40) + t
        ev_key = ev_code.astype(np.int64) * (1 << 40) + ev["t"].to_numpy(np.int64)
        pos = np.searchsorted(key, ev_key, side="left")  # first sample with t >= te
        ok = (pos < len(s)) & (pos > 0)
        ok[ok] &= same[pos[ok]] & (codes[pos[ok]] == ev_code[ok])
        correction = np.zeros(len(s))
        np.add.at(correction, pos[ok], (ev["old_index"].to_numpy(float) - ev["new_index"].to_numpy(float))[ok])
        inc = inc + correction[idx]

    fell = inc < 0
    if fell.any():
        wrap = np.full(len(idx), np.nan)
        if rollover_at is not None:
            wrap = pd.Series(meter[idx]).map(rollover_at).to_numpy(float)
        wrapped = inc + wrap
        is_wrap = fell & np.isfinite(wrapped) & (wrapped >= 0) & (wrapped < ROLLOVER_PLAUSIBLE * wrap)
        inc = np.where(is_wrap, wrapped, inc)
        reset = fell & ~is_wrap
        inc = np.where(reset, v[idx], inc)
        flags[reset] |= quality.DECREASE

    dt = (t1 - t0).astype(float)
    gap = is_gap(dt, meter[idx])
    return pd.DataFrame({"meter_id": meter[idx], "t0": t0, "t1": t1, "increase": inc,
                         "estimated": gap | ((q[idx] & quality.ESTIMATED) != 0), "flags": flags | q[idx]}, copy=False)


def is_gap(dt: np.ndarray, group: np.ndarray, radius: int = GAP_RADIUS) -> np.ndarray:
    """Whether each interval (length `dt`, grouped by meter in contiguous runs) is longer
    than GAP_FACTOR x the median of itself and the `radius` intervals on each side in its
    group (the upper middle one of an even count). Vectorised without sorting: dt exceeds
    GAP_FACTOR x that median exactly when more than half of the window's intervals are
    shorter than dt / GAP_FACTOR."""
    n = len(dt)
    shorter = np.zeros(n, np.int16)  # counts up to 2 x radius + 1
    size = np.ones(n, np.int16)  # the interval itself (never shorter than itself / GAP_FACTOR)
    scaled = GAP_FACTOR * dt
    for k in range(1, radius + 1):
        if k >= n:
            break
        same = group[k:] == group[:-k]  # interval i and i + k belong to one meter
        size[:-k] += same
        size[k:] += same
        shorter[:-k] += same & (scaled[k:] < dt[:-k])  # the k-th after is short
        shorter[k:] += same & (scaled[:-k] < dt[k:])  # the k-th before is short
    return 2 * shorter > size


def spread_over_periods(intervals: pd.DataFrame, edges: np.ndarray) -> pd.DataFrame:
    """Split each interval's increase over the periods given by `edges` (epoch s) in
    proportion to time; drop what falls outside [edges[0], edges[-1]).

    Returns meter_id, period (index into edges), quantity, estimated_quantity, flags
    (the OR of the flags of the intervals overlapping the period), sorted by meter_id
    and period.
    """
    if intervals.empty or len(edges) < 2:
        return pd.DataFrame({"meter_id": pd.Series(dtype=intervals["meter_id"].dtype), "period": pd.Series(dtype=np.int64),
                             "quantity": pd.Series(dtype=float), "estimated_quantity": pd.Series(dtype=float),
                             "flags": pd.Series(dtype=np.int64)})
    t0 = intervals["t0"].to_numpy(np.int64)
    t1 = intervals["t1"].to_numpy(np.int64)
    first = period_index(edges, t0, "right")  # period containing t0
    inc = intervals["increase"].to_numpy(float)
    est = intervals["estimated"].to_numpy(bool)
    flags = intervals["flags"].to_numpy(np.int64) if "flags" in intervals else np.zeros(len(t0), np.int64)
    meter = intervals["meter_id"].to_numpy()
    last = period_index(edges, t1, "left")  # period containing t1 (t1 exclusive end)
    if (first == last).all() and first.min() >= 0 and first.max() < len(edges) - 1:
        # every interval inside one period (samples finer than the periods): its whole
        # increase is that period's (the general path's fraction is exactly 1 there)
        period, qty = first, inc
    else:
        first = np.clip(first, -1, len(edges) - 1)
        last = np.clip(last, -1, len(edges) - 2)
        lo = np.maximum(first, 0)
        n = np.maximum(last - lo + 1, 0)
        rows = np.repeat(np.arange(len(t0)), n)
        period = lo[rows] + np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n)
        p_start = np.maximum(edges[period], t0[rows])
        p_end = np.minimum(edges[period + 1], t1[rows])
        span = (t1 - t0)[rows].astype(float)
        frac = np.where(span > 0, (p_end - p_start) / np.where(span > 0, span, 1), 1.0)
        qty = inc[rows] * frac
        est, meter, flags = est[rows], meter[rows], flags[rows]
    codes, uniques = _codes(meter)
    key = codes * len(edges) + period  # (meter, period), in that order
    order, starts = group_starts(key)
    qty, est_qty = qty[order], np.where(est, qty, 0.0)[order]
    keys = key[order][starts]
    return pd.DataFrame({
        "meter_id": uniques[keys // len(edges)],
        "period": keys % len(edges),
        "quantity": np.add.reduceat(qty, starts) if len(starts) else qty[:0],
        "estimated_quantity": np.add.reduceat(est_qty, starts) if len(starts) else est_qty[:0],
        "flags": np.bitwise_or.reduceat(flags[order], starts) if len(starts) else flags[:0],
    }, copy=False)


def period_index(edges: np.ndarray, t: np.ndarray, side: str) -> np.ndarray:
    """`np.searchsorted(edges, t, side) - 1`: with side "right" the period of `edges`
    containing each t, with "left" the one containing an interval ending at t (-1 before
    the first edge, len(edges) - 1 from the last). Evenly spaced edges (hours and days
    without a daylight-saving change) are divided into, not searched."""
    step = int(edges[1] - edges[0]) if len(edges) > 1 else 0
    if step <= 0 or not (np.diff(edges) == step).all():
        return np.searchsorted(edges, t, side=side) - 1
    # right: edges[k] <= t < edges[k + 1]; left: edges[k] < t <= edges[k + 1]
    k = (t - edges[0]) // step if side == "right" else -((edges[0] - t) // step) - 1
    if len(k) and (k.min() < -1 or k.max() > len(edges) - 1):  # (np.clip is slow; rarely needed)
        k = np.maximum(np.minimum(k, len(edges) - 1), -1)
    return k


def group_starts(key: np.ndarray) -> tuple[np.ndarray | slice, np.ndarray]:
    """(order, starts): `key[order]` is sorted (order is a no-op slice when `key` already
    is, as for samples and intervals sorted by meter and time) and `starts` the positions
    in it where each run of equal keys begins, for `np.ufunc.reduceat`."""
    order: np.ndarray | slice = slice(None)
    if len(key) > 1 and not (key[1:] >= key[:-1]).all():
        order = np.argsort(key, kind="stable")
    k = key[order]
    return order, np.flatnonzero(np.r_[True, k[1:] != k[:-1]]) if len(k) else np.zeros(0, np.int64)


def group_median(values: np.ndarray, key: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Median of `values` per run of equal `key` (sorted; runs begin at `starts`),
    ignoring NaN (NaN where a run has none), as pandas' groupby median."""
    if not len(starts):
        return values[:0].astype(float)
    x = values.astype(float, copy=False)
    low, high = np.fmin.reduceat(x, starts), np.fmax.reduceat(x, starts)  # NaN only where a run has no value
    has = ~np.isnan(low)
    if (low == high)[has].all() and (np.abs(low[has]) < 1e300).all():  # (no overflow of the mean below)
        return low  # each run one value (or none): that is its median, no sort
    order = np.lexsort((values, key))  # by key, then value; NaN last within a run
    x = values[order].astype(float)
    n = np.add.reduceat((~np.isnan(x)).astype(np.int64), starts)
    lo = starts + np.maximum(n - 1, 0) // 2
    hi = starts + np.maximum(n, 1) // 2
    hi = np.where(n > 0, hi, lo)
    return np.where(n > 0, (x[lo] + x[hi]) / 2, np.nan)


def by_meter_time(samples: pd.DataFrame) -> pd.DataFrame:
    """Samples (or any frame with meter_id, t) sorted by meter_id and t, stable, with a
    fresh index; not copied when integer meter codes already come sorted (as the stores
    pass them)."""
    m = samples["meter_id"].to_numpy()
    if m.dtype.kind in "iu" and is_sorted(m, samples["t"].to_numpy(np.int64)):
        return samples.reset_index(drop=True)
    return samples.sort_values(["meter_id", "t"], kind="stable").reset_index(drop=True)


def is_sorted(codes: np.ndarray, t: np.ndarray) -> bool:
    """Whether rows are sorted by integer meter code, then time."""
    return len(t) < 2 or bool(((codes[1:] > codes[:-1]) | ((codes[1:] == codes[:-1]) & (t[1:] >= t[:-1]))).all())


def _codes(meter: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted integer codes of meter ids and the ids they stand for (non-negative
    integer ids, as the stores pass them, are their own codes)."""
    if meter.dtype.kind in "iu" and (len(meter) == 0 or meter.min() >= 0):
        return meter.astype(np.int64, copy=False), np.arange(int(meter.max()) + 1 if len(meter) else 0)
    codes, uniques = pd.factorize(meter, sort=True)
    return codes.astype(np.int64), np.asarray(uniques)


STEP_LOOKBACK_S = 7 * 86_400  # a sample's step counts for a period when its previous sample is this recent


def sample_counts(samples: pd.DataFrame, edges: np.ndarray) -> pd.DataFrame:
    """Per meter and period of `edges` (epoch s), the number of samples with time in
    the period, how many of them are flagged BACKFILL or IMPORTED (stored history,
    which the completeness rule judges at its own resolution) and `step`, the median
    time (s) since each one's previous sample of the meter, counting only previous
    samples at most STEP_LOOKBACK_S before the period start (NaN when none): the
    resolution the period carries. `samples` should include the samples before the
    first period that these steps need. Returns meter_id, period, samples, stored, step."""
    t = samples["t"].to_numpy(np.int64)
    codes_all, uniques = _codes(samples["meter_id"].to_numpy())
    q_all = samples["quality"].to_numpy(np.int64)
    if not is_sorted(codes_all, t):
        order = np.lexsort((t, codes_all))
        t, codes_all, q_all = t[order], codes_all[order], q_all[order]
    prev_t = np.r_[np.iinfo(np.int64).min, t[:-1]]
    same = np.r_[False, codes_all[1:] == codes_all[:-1]]
    period = period_index(edges, t, "right")
    ok = (period >= 0) & (period < len(edges) - 1)
    q = q_all[ok]
    codes = codes_all[ok]
    step = np.where(same & (prev_t >= edges[np.maximum(period, 0)] - STEP_LOOKBACK_S),
                    (t - np.where(same, prev_t, t)).astype(float), np.nan)[ok]
    key = codes.astype(np.int64) * len(edges) + period[ok]  # sorted, as the samples now are
    order, starts = group_starts(key)
    key, step = key[order], step[order]
    keys = key[starts]
    stored = (((q & (quality.BACKFILL | quality.IMPORTED)) != 0).astype(np.int64))[order]
    return pd.DataFrame({"meter_id": uniques[keys // len(edges)], "period": keys % len(edges),
                         "samples": np.diff(np.r_[starts, len(key)]).astype(np.int64),
                         "stored": np.add.reduceat(stored, starts) if len(starts) else stored[:0],
                         "step": group_median(step, key, starts)}, copy=False)


def consumption(samples: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp, freq: str,
                tz: str, events: pd.DataFrame | None = None,
                multiplier: pd.Series | None = None,
                rollover_at: pd.Series | None = None) -> pd.DataFrame:
    """Consumption per meter and local period in [start, end).

    samples must include, per meter, the last sample before `start` so the first
    period is complete. Returns meter_id, period_start (tz-aware, local), quantity
    (index unit x multiplier), estimated_share (0..1).
    """
    edges = period_edges(start, end, freq, tz)
    intervals = interval_increases(samples, events, rollover_at)
    spread = spread_over_periods(intervals, edges)
    if multiplier is not None:
        m = spread["meter_id"].map(multiplier).fillna(1.0).to_numpy(float)
        spread = spread.assign(quantity=spread["quantity"] * m, estimated_quantity=spread["estimated_quantity"] * m)
    qty = spread["quantity"].to_numpy(float)
    share = estimated_share(spread["estimated_quantity"].to_numpy(float), qty)
    period_start = pd.to_datetime(edges[spread["period"].to_numpy()], unit="s", utc=True).tz_convert(tz)
    return pd.DataFrame({
        "meter_id": spread["meter_id"].to_numpy(),
        "period_start": period_start,
        "quantity": qty,
        "estimated_share": share,
    }).reset_index(drop=True)


def estimated_share(estimated: np.ndarray | pd.Series, quantity: np.ndarray | pd.Series) -> np.ndarray:
    """The share (0..1) of `quantity` that is estimated, given the estimated part of it:
    estimated / quantity, 0 where the quantity is (numerically) zero. The one home of this
    arithmetic: every aggregate carries its share as sum(estimated) / sum(quantity)."""
    q = np.asarray(quantity, dtype=float)
    e = np.asarray(estimated, dtype=float)
    return np.minimum(np.maximum(np.divide(e, q, out=np.zeros_like(q), where=np.abs(q) > 1e-12), 0.0), 1.0)
