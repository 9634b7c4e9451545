"""Local calendar periods (hour, day, month, year) in any IANA time zone.

A local period starts at the zone's *first instant* of its wall-clock label, not at a
literal midnight: where a daylight-saving or historical offset change skips the label
(America/Havana springs forward at 00:00, so 2024-03-10 begins at 01:00; Asia/Shanghai
did the same in 1986-1991) the period begins where the gap ends, and where a change
repeats the label (a fall back over midnight) it begins at the first of the two. A
period with no instant at all (Pacific/Apia skipped 2011-12-30) is absent. Every
local-period computation in the project goes through these functions, so all of them
agree on the boundaries and none raises on a nonexistent or ambiguous time.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

FREQS = ("hour", "day", "month", "year")


def _check(freq: str) -> None:
    if freq not in FREQS:
        raise ValueError(f"freq must be one of {FREQS}, not {freq!r}")


NAT = pd.NaT.value


def _utc_offset_s(utc_s: np.ndarray, tz: str) -> np.ndarray:
    """The zone's UTC offset (s) at each instant (epoch s)."""
    idx = pd.DatetimeIndex(utc_s.astype("datetime64[s]"))
    return idx.tz_localize("UTC").tz_convert(tz).tz_localize(None).asi8 - idx.asi8


def _gap_end(wall_s: np.ndarray, tz: str) -> np.ndarray:
    """The instant (epoch s) at which the offset change that skipped each wall time
    (naive, s since the epoch) took effect: the first instant after the gap. Found by
    bisection, vectorised (pandas' `nonexistent="shift_forward"` assumes one-hour gaps
    and lands 30 or 45 minutes late in Australia/Lord_Howe or Asia/Kathmandu)."""
    before = _utc_offset_s(wall_s - 2 * 86400, tz)  # the offsets on either side of the change
    after = _utc_offset_s(wall_s + 2 * 86400, tz)
    lo, hi = wall_s - after, wall_s - before  # lo is before the change, hi at or after it
    while (hi - lo > 1).any():
        mid = (lo + hi) // 2
        past = _utc_offset_s(mid, tz) != before
        hi, lo = np.where(past, mid, hi), np.where(past, lo, mid)
    return hi


def first_instant(wall: pd.DatetimeIndex | pd.Series | np.ndarray, tz: str) -> pd.DatetimeIndex:
    """The first instant (tz-aware, in `tz`) at which the local clock shows each naive
    wall time or a later one: a wall time skipped by an offset change maps to the end of
    the gap, a repeated one to its first occurrence."""
    w = pd.DatetimeIndex(wall)
    if w.tz is not None:
        w = w.tz_localize(None)
    w = w.as_unit("s")
    if len(w) == 0:
        return w.tz_localize(tz)
    vals, inv = np.unique(w.asi8, return_inverse=True)  # few distinct labels (periods), many rows
    u = pd.DatetimeIndex(vals.astype("datetime64[s]"))
    first = u.tz_localize(tz, ambiguous="NaT", nonexistent="NaT").asi8.copy()
    odd = first == NAT
    if odd.any():  # repeated or skipped wall times (few: one per offset change in range)
        sub = u[odd]
        n = len(sub)
        big = np.iinfo(np.int64).max
        early, late = (np.where(x == NAT, big, x) for x in (
            sub.tz_localize(tz, ambiguous=np.full(n, flag), nonexistent="NaT").asi8 for flag in (True, False)))
        out = np.minimum(early, late)  # a repeated wall time: its first occurrence
        skipped = out == big
        out[skipped] = _gap_end(sub.asi8[skipped], tz)
        first[odd] = out
    return pd.DatetimeIndex(first[inv.reshape(-1)].astype("datetime64[s]")).tz_localize("UTC").tz_convert(tz)


def first_instant_of(value: str | dt.date | pd.Timestamp, tz: str) -> pd.Timestamp:
    """One timestamp in `tz`: a naive value (or a date: its first instant) is taken as a
    local wall time (see `first_instant`); a tz-aware one is converted."""
    t = pd.Timestamp(value)
    if t.tzinfo is not None:
        return t.tz_convert(tz)
    return first_instant(pd.DatetimeIndex([t]), tz)[0]


def wall_floor(wall: pd.DatetimeIndex, freq: str) -> pd.DatetimeIndex:
    """Naive wall times truncated to the start label of their hour, day, month or year."""
    _check(freq)
    w = pd.DatetimeIndex(wall)
    if freq == "hour":
        return w.floor("h")
    if freq == "day":
        return w.normalize()
    return w.to_period("M" if freq == "month" else "Y").to_timestamp().as_unit(w.unit)


def _wall_floor_one(wall: pd.Timestamp, freq: str) -> pd.Timestamp:
    """`wall_floor` of one naive timestamp (the scalar path: no index overhead)."""
    if freq == "hour":
        return wall.floor("h")
    if freq == "day":
        return wall.normalize()
    return wall.normalize().replace(day=1) if freq == "month" else wall.normalize().replace(month=1, day=1)


def local_wall(t: pd.DatetimeIndex | pd.Series | pd.Timestamp, tz: str) -> pd.DatetimeIndex:
    """The naive local wall times of tz-aware instants (naive ones taken as UTC)."""
    idx = pd.DatetimeIndex([t] if isinstance(t, pd.Timestamp) else t)
    if idx.tz is None:
        idx = idx.tz_localize("UTC")
    return idx.tz_convert(tz).tz_localize(None)


def local_floor(t: pd.DatetimeIndex | pd.Series, freq: str, tz: str) -> pd.DatetimeIndex:
    """The start (first instant, in `tz`) of the local period containing each instant
    (tz-aware; naive ones taken as UTC)."""
    return first_instant(wall_floor(local_wall(t, tz), freq), tz)


def local_floor_one(t: pd.Timestamp | str, freq: str, tz: str) -> pd.Timestamp:
    """`local_floor` of one timestamp; a naive one is a local wall time (see
    `first_instant_of`)."""
    return local_floor(pd.DatetimeIndex([first_instant_of(t, tz)]), freq, tz)[0]


def next_label(wall: pd.DatetimeIndex, freq: str, n: int = 1) -> pd.DatetimeIndex:
    """Naive period labels `n` periods after each (already floored) label."""
    _check(freq)
    if freq == "hour":
        return wall + pd.Timedelta(hours=n)
    if freq == "day":
        return wall + pd.Timedelta(days=n)
    return wall + (pd.DateOffset(months=n) if freq == "month" else pd.DateOffset(years=n))


def local_next(t: pd.DatetimeIndex | pd.Series, freq: str, tz: str) -> pd.DatetimeIndex:
    """The start of the local period after the one containing each instant."""
    return first_instant(next_label(wall_floor(local_wall(t, tz), freq), freq), tz)


def local_edges(start: pd.Timestamp, end: pd.Timestamp, freq: str, tz: str) -> pd.DatetimeIndex:
    """Starts (in `tz`) of the local periods covering [start, end), plus the end of the
    last: the first is the start of the period containing `start`, the last is at or
    after `end`. Labels without an instant (a skipped day) are left out."""
    _check(freq)
    start_t, end_t = first_instant_of(start, tz), first_instant_of(end, tz)
    lo, hi = (_wall_floor_one(t.tz_localize(None), freq) for t in (start_t, end_t))
    step = {"hour": "h", "day": "D", "month": "MS", "year": "YS"}[freq]
    labels = pd.date_range(lo, max(lo, hi), freq=step)
    edges = first_instant(labels, tz).unique()
    if hi < lo or edges[-1] < end_t:  # (an empty range still has one period)
        edges = edges.append(first_instant(next_label(labels[-1:], freq), tz))
    return edges


def local_days(start: pd.Timestamp, end: pd.Timestamp, tz: str) -> pd.DatetimeIndex:
    """Starts (first instants, in `tz`) of the local days beginning in [start, end)."""
    edges = local_edges(start, end, "day", tz)
    return edges[(edges >= first_instant_of(start, tz)) & (edges < first_instant_of(end, tz))]
