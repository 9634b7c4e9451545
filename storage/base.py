"""The one storage interface everything else uses.

Frames at the interface (all times tz-aware UTC `time` columns, or epoch-second `t`
inside the backends):

* samples: meter_id (str), time, value (float, cumulative index before the
  multiplier: "raw"), quality (int, flags of `storage.quality`).
* events: meter_id, time, kind (replacement | rollover | reset), old_index, new_index.
* bills: institution_id, energy, period_start, period_end (dates, inclusive),
  quantity, unit, cost_cny.
* consumption: meter_id, period_start (local, tz-aware), quantity (index unit x
  multiplier), estimated_share.

Writes of samples are idempotent: (meter_id, time) is the key and the last write wins,
as in InfluxDB. `import_samples` is all-or-nothing and refuses a sample that would
change a stored value.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable

import numpy as np
import pandas as pd

from storage import rollup

SAMPLE_COLUMNS = ["meter_id", "time", "value", "quality"]
EVENT_COLUMNS = ["meter_id", "time", "kind", "old_index", "new_index"]
EVENT_KINDS = ("replacement", "rollover", "reset")
BILL_COLUMNS = ["institution_id", "energy", "period_start", "period_end", "quantity", "unit", "cost_cny"]
IMPORT_CHUNK = 100_000  # rows per write (and per progress step) of an import
MAX_CONFLICTS_LISTED = 50  # conflicting samples named in a refused import
CONSUMPTION_COLUMNS = ["meter_id", "period_start", "quantity", "estimated_share"]


class StoreError(Exception):
    """The store cannot be reached or refused a request."""


class StoreMissing(StoreError):
    """Opened with `create=False`, and there is no store at that URL."""


class ImportRejected(Exception):
    """An import that was refused whole; `problems` lists every reason."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))

    @classmethod
    def conflicts(cls, rows: list[tuple[str, int, float, float]], total: int | None = None) -> ImportRejected:
        """Refusal for samples that would change stored values: rows of (meter_id, t,
        new value, stored value), the first MAX_CONFLICTS_LISTED listed; `total` is the
        number of conflicts when known (else: more than listed if `rows` is longer)."""
        problems = [f"meter {m} at {from_epoch_s([t])[0].isoformat()}: value {new:g} differs from the stored {old:g}"
                    for m, t, new, old in rows[:MAX_CONFLICTS_LISTED]]
        if total is not None and total > MAX_CONFLICTS_LISTED:
            problems.append(f"... and {total - MAX_CONFLICTS_LISTED} more conflicting samples")
        elif total is None and len(rows) > MAX_CONFLICTS_LISTED:
            problems.append("... and more conflicting samples")
        return cls(problems)


def to_epoch_s(values: pd.Series | pd.DatetimeIndex | Iterable) -> np.ndarray:
    """Epoch seconds (int64) of tz-aware timestamps (naive ones are taken as UTC)."""
    idx = pd.DatetimeIndex(values)
    if idx.tz is None:
        idx = idx.tz_localize("UTC")
    return idx.as_unit("s").asi8.astype(np.int64)


def from_epoch_s(t: np.ndarray | pd.Series) -> pd.DatetimeIndex:
    return pd.to_datetime(np.asarray(t, dtype=np.int64), unit="s", utc=True)


def ts(value: str | pd.Timestamp, tz: str = "UTC") -> pd.Timestamp:
    """A tz-aware timestamp; a naive value or a date is taken in `tz`."""
    out = pd.Timestamp(value)
    return out.tz_localize(tz) if out.tzinfo is None else out


def normalize_samples(samples: pd.DataFrame) -> pd.DataFrame:
    """meter_id, t (epoch s), value, quality from a frame with `time` or `t`."""
    t = samples["t"].to_numpy(np.int64) if "t" in samples else to_epoch_s(samples["time"])
    q = samples["quality"].to_numpy(np.int64) if "quality" in samples else np.zeros(len(samples), np.int64)
    values = samples["value"].to_numpy(np.float64)
    bad = ~np.isfinite(values)
    if bad.any():
        first = samples[bad].iloc[0]
        raise ValueError(f"{int(bad.sum())} sample(s) without a finite value, e.g. meter {first['meter_id']} "
                         f"at {first['time'] if 'time' in samples else first['t']}: {first['value']}")
    return pd.DataFrame({
        "meter_id": samples["meter_id"].astype(str).to_numpy(),
        "t": t,
        "value": values,
        "quality": q,
    })


def normalize_events(events: pd.DataFrame) -> pd.DataFrame:
    bad = set(events["kind"]) - set(EVENT_KINDS)
    if bad:
        raise ValueError(f"unknown event kind(s): {sorted(bad)}")
    return pd.DataFrame({
        "meter_id": events["meter_id"].astype(str).to_numpy(),
        "t": to_epoch_s(events["time"]),
        "kind": events["kind"].astype(str).to_numpy(),
        "old_index": events["old_index"].to_numpy(np.float64),
        "new_index": events["new_index"].to_numpy(np.float64),
    })


class Store(ABC):
    """A place for samples, meter events and bills, with consumption rollups."""

    url: str
    tz: str

    def __init__(self, tz: str = "Asia/Shanghai"):
        self.tz = tz
        self._meters = pd.DataFrame(columns=["meter_id", "multiplier", "rollover_at"])

    # -- meters -----------------------------------------------------------------
    def set_meters(self, meters: pd.DataFrame) -> None:
        """Tell the store each meter's multiplier and register maximum (`rollover_at`),
        e.g. `store.set_meters(registry.meters_frame())`."""
        self._meters = meters[["meter_id", "multiplier", "rollover_at"]].copy()

    @property
    def multipliers(self) -> pd.Series:
        return self._meters.set_index("meter_id")["multiplier"].astype(float)

    @property
    def rollovers(self) -> pd.Series:
        return self._meters.set_index("meter_id")["rollover_at"].astype(float)

    # -- samples ----------------------------------------------------------------
    @abstractmethod
    def write_samples(self, samples: pd.DataFrame) -> int:
        """Write samples idempotently; return how many rows were sent."""

    @abstractmethod
    def read_samples(self, start: pd.Timestamp | None = None, end: pd.Timestamp | None = None,
                     meter_ids: Iterable[str] | None = None) -> pd.DataFrame:
        """Samples with start <= time < end, sorted by meter_id and time."""

    @abstractmethod
    def last_samples_before(self, t: pd.Timestamp, meter_ids: Iterable[str] | None = None) -> pd.DataFrame:
        """Per meter, the last sample with time < t."""

    @abstractmethod
    def meter_ids(self) -> list[str]:
        """Meters that have at least one sample."""

    def import_samples(self, samples: pd.DataFrame, progress: Callable[[int], object] | None = None) -> int:
        """All-or-nothing import: refuse the whole frame if any sample would change a
        stored value; otherwise write it. Returns the number of samples written.

        `progress(n)` is called with the number of rows written since the last call.
        The check against stored values happens before the first write, so bad input
        never leaves anything half-written."""
        norm = normalize_samples(samples)
        if norm.empty:
            return 0
        existing = self._existing_for(norm)
        if not existing.empty:
            merged = norm.merge(existing, on=["meter_id", "t"], suffixes=("", "_old"))
            diff = merged[~np.isclose(merged["value"], merged["value_old"], rtol=0, atol=1e-9)]
            if len(diff):
                rows = list(diff[["meter_id", "t", "value", "value_old"]].head(MAX_CONFLICTS_LISTED)
                            .itertuples(index=False, name=None))
                raise ImportRejected.conflicts(rows, total=len(diff))
        for i in range(0, len(norm), IMPORT_CHUNK):
            chunk = norm.iloc[i:i + IMPORT_CHUNK]
            self.write_samples(chunk)
            if progress is not None:
                progress(len(chunk))
        return len(norm)

    def _existing_for(self, norm: pd.DataFrame) -> pd.DataFrame:
        """Stored samples (meter_id, t, value) that share a key with `norm`."""
        lo, hi = int(norm["t"].min()), int(norm["t"].max()) + 1
        stored = self.read_samples(from_epoch_s([lo])[0], from_epoch_s([hi])[0], norm["meter_id"].unique())
        if stored.empty:
            return pd.DataFrame(columns=["meter_id", "t", "value"])
        stored = normalize_samples(stored)
        return stored[["meter_id", "t", "value"]]

    # -- events -----------------------------------------------------------------
    @abstractmethod
    def write_events(self, events: pd.DataFrame) -> None:
        """Record meter events (replacement, rollover, reset)."""

    @abstractmethod
    def read_events(self, meter_ids: Iterable[str] | None = None) -> pd.DataFrame:
        """Recorded events: meter_id, time, kind, old_index, new_index."""

    # -- bills ------------------------------------------------------------------
    @abstractmethod
    def write_bills(self, bills: pd.DataFrame) -> int:
        """Write bills (key: institution_id, energy, period_start, period_end)."""

    @abstractmethod
    def read_bills(self, institution_ids: Iterable[str] | None = None) -> pd.DataFrame:
        """Bills in BILL_COLUMNS."""

    # -- consumption ------------------------------------------------------------
    def consumption(self, freq: str, start: str | pd.Timestamp, end: str | pd.Timestamp,
                    meter_ids: Iterable[str] | None = None) -> pd.DataFrame:
        """Consumption per meter and local period (hour, day, month, year) in [start, end).

        Naive `start`/`end` are local time of the store's time zone.
        """
        start, end = ts(start, self.tz), ts(end, self.tz)
        ids = None if meter_ids is None else list(meter_ids)
        if freq == "hour":
            return self._consumption_from_samples("hour", start, end, ids)
        daily = self._daily_consumption(start, end, ids)
        if freq == "day":
            return daily
        return regroup(daily, freq, self.tz)

    def _daily_consumption(self, start: pd.Timestamp, end: pd.Timestamp, ids: list[str] | None) -> pd.DataFrame:
        return self._consumption_from_samples("day", start, end, ids)

    def _consumption_from_samples(self, freq: str, start: pd.Timestamp, end: pd.Timestamp,
                                  ids: list[str] | None, apply_multiplier: bool = True) -> pd.DataFrame:
        """Consumption computed from raw samples (with the last one before the first
        period); in index units when not `apply_multiplier` (for caches)."""
        first_edge = rollup.period_edges(start, end, freq, self.tz)[0]
        lo = from_epoch_s([first_edge])[0]
        body = self.read_samples(lo, end + pd.Timedelta(days=1) if freq != "hour" else end + pd.Timedelta(hours=1), ids)
        before = self.last_samples_before(lo, ids)
        samples = pd.concat([before, body], ignore_index=True) if len(before) else body
        if samples.empty:
            return pd.DataFrame({c: pd.Series(dtype=object) for c in CONSUMPTION_COLUMNS})
        norm = normalize_samples(samples)
        ev = self.read_events(ids)
        out = rollup.consumption(norm, start, end, freq, self.tz,
                                 events=normalize_events(ev) if len(ev) else None,
                                 multiplier=self.multipliers if apply_multiplier else None,
                                 rollover_at=self.rollovers)
        return out[out["period_start"] < end].reset_index(drop=True)

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources."""

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def regroup(daily: pd.DataFrame, freq: str, tz: str) -> pd.DataFrame:
    """Daily consumption regrouped into local months or years."""
    if daily.empty:
        return daily
    local = pd.DatetimeIndex(daily["period_start"]).tz_convert(tz)
    if freq == "month":
        key = local.tz_localize(None).to_period("M").to_timestamp()
    elif freq == "year":
        key = local.tz_localize(None).to_period("Y").to_timestamp()
    else:
        raise ValueError(f"freq must be one of {rollup.FREQS}, not {freq!r}")
    df = pd.DataFrame({
        "meter_id": daily["meter_id"].to_numpy(),
        "period_start": key.tz_localize(tz),
        "quantity": daily["quantity"].to_numpy(float),
        "est": daily["quantity"].to_numpy(float) * daily["estimated_share"].to_numpy(float),
    })
    g = df.groupby(["meter_id", "period_start"], as_index=False, sort=True).sum()
    q = g["quantity"].to_numpy(float)
    share = np.divide(g["est"].to_numpy(float), q, out=np.zeros_like(q), where=np.abs(q) > 1e-12)
    return pd.DataFrame({"meter_id": g["meter_id"], "period_start": g["period_start"], "quantity": q,
                         "estimated_share": np.clip(share, 0, 1)})
