"""Fast history generation straight from the load model.

Fast history generation: cumulative indices computed directly from the load model
(vectorised over meters and time, never polled), so `civicwatt demo` can backfill
400+ days for the sample portfolio in seconds.

A meter dict (built from the registry by `civicwatt.commands.simulate.meters_for_sim`)
carries: id, institution, energy, subitem, parent, category, floor_area_m2, rated
(kW or unit/h), multiplier, heating, rollover, optionally retrofit ({start: YYYY-MM-DD,
factor}: see device_sim.load), and for serving: host, port, unit, profile, interval_s.

Values are raw indices (before the multiplier) rounded to what the meter's energy
register can hold (float32, or integer hundredths), wrapped at the register's rollover,
and flagged BACKFILL. The live `Simulator` started with `start_values=<this frame>`
continues each index exactly where the history ends.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from core.profiles import load_profiles
from device_sim.load import STEP_S, MeterModel

BACKFILL = 64  # storage.quality.BACKFILL (device_sim imports nothing of ours but profiles)
CHUNK_STEPS = 96 * 30  # compute 30 days at a time to keep memory flat


def _epoch(value: Any) -> int:
    stamp = pd.Timestamp(value)
    if stamp.tzinfo is None:
        stamp = stamp.tz_localize("Asia/Shanghai")
    return int(stamp.timestamp())


def energy_spec(meter: dict[str, Any]) -> dict[str, Any] | None:
    profile = load_profiles().get(meter.get("profile") or "")
    return None if profile is None else profile["registers"].get("energy")


def register_resolution(values: np.ndarray, meters: list[dict[str, Any]]) -> np.ndarray:
    """Round raw indices (one row per meter, one column per time) to what each meter's
    energy register holds (vectorised per register type, on whole rows)."""
    out = values.copy()
    types = np.array([(energy_spec(m) or {}).get("type", "float64") for m in meters])
    scales = np.array([float((energy_spec(m) or {}).get("scale", 1.0)) for m in meters])[:, None]
    f32 = types == "float32"
    out[f32] = (values[f32] / scales[f32]).astype(np.float32).astype(np.float64) * scales[f32]
    ints = np.isin(types, ["int16", "uint16", "int32", "uint32"])
    out[ints] = np.floor(values[ints] / scales[ints] + 1e-9) * scales[ints]
    return out


def rollover_of(meter: dict[str, Any]) -> float:
    if meter.get("rollover"):
        return float(meter["rollover"])
    profile = load_profiles().get(meter.get("profile") or "") or {}
    return float(profile.get("rollover") or np.inf)


def generate_history(meters: list[dict[str, Any]], start: Any, end: Any, interval_s: int = 3600,
                     seed: int = 1, progress: Callable[[int, int], object] | None = None) -> pd.DataFrame:
    """Samples meter_id, time (UTC), value (raw cumulative index), quality (BACKFILL) for
    every meter at every multiple of `interval_s` in [start, end]. Naive times are
    Asia/Shanghai. Deterministic for a given seed. `progress(done, total)` is called
    after each block of time steps computed."""
    t0, t1 = _epoch(start), _epoch(end)
    first = -(-t0 // interval_s) * interval_s
    times = np.arange(first, t1 + 1, interval_s, dtype=np.int64)
    model = MeterModel(meters, seed=seed)
    n = len(meters)
    if n == 0 or len(times) == 0:
        return pd.DataFrame({"meter_id": pd.Series(dtype=object), "time": pd.Series(dtype="datetime64[s, UTC]"),
                             "value": pd.Series(dtype=float), "quality": pd.Series(dtype=np.int64)})
    s_lo = int(times[0] // STEP_S)
    s_hi = int(times[-1] // STEP_S) + 1
    values = np.empty((n, len(times)))
    index = model.initial_index.astype(np.float64).copy()  # raw index at step s_lo
    col = 0
    for c_lo in range(s_lo, s_hi, CHUNK_STEPS):  # time chunks, not rows
        c_hi = min(c_lo + CHUNK_STEPS, s_hi)
        steps = np.arange(c_lo, c_hi)
        rate = model.power(steps) / model.multiplier[:, None] / 3600.0  # raw units per second
        cum = np.concatenate([np.zeros((n, 1)), np.cumsum(rate * STEP_S, axis=1)], axis=1)
        in_chunk = times[(times >= c_lo * STEP_S) & (times < c_hi * STEP_S)]
        j = in_chunk // STEP_S - c_lo
        frac = (in_chunk - (c_lo + j) * STEP_S).astype(np.float64)
        values[:, col:col + len(in_chunk)] = index[:, None] + cum[:, j] + rate[:, j] * frac[None, :]
        col += len(in_chunk)
        index = index + cum[:, -1]
        if progress is not None:
            progress(c_hi - s_lo, s_hi - s_lo)
    roll = np.array([rollover_of(m) for m in meters])
    values = np.where(np.isfinite(roll)[:, None], np.mod(values, np.where(np.isfinite(roll), roll, 1.0)[:, None]),
                      values)
    flat = register_resolution(values, meters).ravel()
    ids = np.array([str(m["id"]) for m in meters], dtype=object)
    return pd.DataFrame({
        "meter_id": np.repeat(ids, len(times)),
        "time": pd.to_datetime(np.tile(times, n), unit="s", utc=True),
        "value": flat,
        "quality": np.full(n * len(times), BACKFILL, dtype=np.int64),
    })


def end_values(history: pd.DataFrame) -> pd.DataFrame:
    """The last sample of each meter (meter_id, time, value): what `Simulator` takes as
    `start_values` to continue the indices."""
    last = history.sort_values(["meter_id", "time"]).groupby("meter_id", sort=False).tail(1)
    return last[["meter_id", "time", "value"]].reset_index(drop=True)
