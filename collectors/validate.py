"""Validity checks at ingestion (domain.md section 5), vectorised over a batch of polls.

Flags are those of `storage.quality`; a flagged sample is stored, never dropped:

* NEGATIVE: the index is below zero.
* DECREASE: the index fell, and a wrap at the register's maximum does not explain it
  (a wrap is a rollover: no flag, a `rollover` event is recorded instead).
* SPIKE: the increase since the last good sample is above `SPIKE_FACTOR` x rated power
  x elapsed time (only for meters with a `rated` value).
* OUT_OF_RANGE: the instantaneous power/flow read with the index is outside
  [-`REVERSE_TOLERANCE`, `RANGE_FACTOR`] x rated.
"""

from __future__ import annotations

import numpy as np

from storage import quality

SPIKE_FACTOR = 1.5  # domain.md section 5: increase <= about 1.5 x rated power x interval
RANGE_FACTOR = 1.5  # instantaneous values above 1.5 x rated are outside the meter's range
REVERSE_TOLERANCE = 0.05  # small reverse readings (-5 % of rated) are measurement noise
ROLLOVER_PLAUSIBLE = 0.1  # as storage.rollup: a wrap explains a fall if the wrapped increase < 10 % of range


def check(value: np.ndarray, power: np.ndarray, prev_value: np.ndarray, dt_s: np.ndarray, rated: np.ndarray,
          multiplier: np.ndarray, rollover_at: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Quality flags and a rollover mask for each new sample.

    value: raw index (before the multiplier); power: primary kW or unit/h (NaN: not
    read); prev_value / dt_s: the last good sample's index and the time since (NaN:
    none); rated: kW or unit/h (NaN: unknown); rollover_at: register maximum (NaN: none).
    """
    value = np.asarray(value, dtype=float)
    flags = np.zeros(len(value), dtype=np.int64)
    flags[value < 0] |= quality.NEGATIVE
    inc = value - prev_value
    has_prev = np.isfinite(inc)
    tol = 1e-6 + 1e-7 * np.abs(np.nan_to_num(prev_value))  # float32 registers jitter in the last bit
    fell = has_prev & (inc < -tol)
    roll = np.where(np.isfinite(rollover_at), rollover_at, np.nan)
    wrapped = inc + roll
    is_wrap = fell & np.isfinite(wrapped) & (wrapped >= 0) & (wrapped < ROLLOVER_PLAUSIBLE * roll)
    flags[fell & ~is_wrap] |= quality.DECREASE
    increase = np.where(is_wrap, wrapped, inc) * multiplier
    limit = SPIKE_FACTOR * rated * dt_s / 3600.0
    spike = has_prev & np.isfinite(limit) & (dt_s > 0) & (increase > limit + tol * multiplier)
    flags[spike] |= quality.SPIKE
    out = np.isfinite(power) & np.isfinite(rated) & ((power > RANGE_FACTOR * rated)
                                                      | (power < -REVERSE_TOLERANCE * rated))
    flags[out] |= quality.OUT_OF_RANGE
    return flags, is_wrap


def attribute_gaps(t0: np.ndarray, v0: np.ndarray, seen: np.ndarray, t1: np.ndarray, v1: np.ndarray,
                   interval: np.ndarray, max_slots: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Samples for the slots a meter missed, by linear interpolation of its index.

    For each gap i: the last good sample (t0, v0), the last slot answered `seen` (>= t0),
    the new sample (t1, v1) and the poll interval. Returns (gap index, slot time, value)
    for every multiple of the interval strictly between `seen` and `t1` (at most
    `max_slots` per gap): the gap's consumption attributed in proportion to time.
    """
    first = (seen // interval + 1) * interval
    count = np.clip((t1 - 1 - first) // interval + 1, 0, max_slots)
    rep = np.repeat(np.arange(len(t0)), count)
    offs = np.arange(int(count.sum())) - np.repeat(np.cumsum(count) - count, count)
    slot = first[rep] + offs * interval[rep]
    frac = (slot - t0[rep]) / (t1[rep] - t0[rep])
    return rep, slot, v0[rep] + (v1[rep] - v0[rep]) * frac
