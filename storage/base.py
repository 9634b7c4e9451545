"""The one storage interface everything else uses.

Frames at the interface (all times tz-aware UTC `time` columns, or epoch-second `t`
inside the backends):

* samples: meter_id (str), time, value (float, cumulative index before the
  multiplier: "raw"), quality (int, flags of `storage.quality`).
* events: meter_id, time, kind (replacement | rollover | reset), old_index, new_index.
* bills: institution_id, energy, period_start, period_end (dates, inclusive),
  quantity, unit, cost_cny.
* consumption (`consumption(freq, start, end, meter_ids)`): meter_id, period_start
  (local, tz-aware), quantity (index unit x multiplier), estimated_share.
* period counts (`period_counts(freq, start, end, meter_ids)`): meter_id,
  period_start, samples (samples with time in the period), stored (of them flagged
  BACKFILL or IMPORTED), flags (OR of the quality flags of the period's intervals), and
  for hours and days step (median spacing in s of the period's samples, 0 when none):
  what the completeness rule (`models.completeness.completeness_from_counts`) and the
  month views need without raw samples. A backend may also sum the rule itself
  (`_completeness_sums`: per meter and month, memory bounded by the result; the embedded
  store does it in SQL, the others leave it to `models.completeness.completeness_sums`,
  which reads the counts a few thousand meters at a time).

Writes of samples are idempotent: (meter_id, time) is the key and the last write wins,
as in InfluxDB. `import_samples` is all-or-nothing and refuses a sample that would
change a stored value.

**Consumption is materialised as samples arrive.** Every write (`write_samples`,
`import_samples`, `write_events`) recomputes, with the one `storage.rollup` arithmetic,
exactly the local days its samples or events touch (see `Store._touched`: the days from
the CONTEXT-th stored sample before the batch to the CONTEXT-th after it, since an
interval's gap test looks GAP_RADIUS intervals to each side), from the stored samples
of those days plus CONTEXT on each side merged with the batch, and stores one row per
meter and local hour and day (PERIOD_COLUMNS): quantity and est (its estimated part, quantity x the
estimated share) in index units *before* the multiplier, flags, samples, stored, covered (an interval
overlaps the period). Writes go in chunks of WRITE_CHUNK rows, so memory is bounded by
the chunk, never by the history. `consumption('hour')` reads the hourly table;
day/month/year read the daily one (months and years are sums of local days, `regroup`);
raw samples are read only by `read_samples` and `last_samples_before`. The pure
reference path the tables must equal is `rollup.consumption` over a meter's whole raw
history (the contract tests compare them).

The multiplier is applied at read, not stored: the tables are a function of the stored
samples and events alone, so a corrected CT/PT ratio in the registry applies to the
whole history at once with nothing to recompute, and one store can serve registries
that differ only in multipliers. A changed register maximum (`rollover_at`, which
decides whether a fall is a rollover) or time zone does change the stored periods:
`set_meters` and the constructor detect it (the settings the periods were computed with
are stored) and `rebuild_consumption` recomputes the meters concerned.
"""

from __future__ import annotations

import re
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import pandas as pd

from core import localtime
from core.frames import positions_in
from core.yamlfile import ConfigError, Problem
from storage import rollup

SAMPLE_COLUMNS = ["meter_id", "time", "value", "quality"]
EVENT_COLUMNS = ["meter_id", "time", "kind", "old_index", "new_index"]
EVENT_KINDS = ("replacement", "rollover", "reset")
# Optional figures of a bill (NaN: not given), in the bill's unit, both parts of `quantity` and used by
# `models.energy.split_bills`: heating_quantity, the heating-season use of heating equipment (counted as
# heating energy; not given: the rule for bills, purchased heat is heating); estimated_quantity, the part
# estimated over gaps of the meters it was read from (not given: none). Both travel upward (纵向直报).
BILL_FIGURES = ("heating_quantity", "estimated_quantity")
BILL_COLUMNS = ["institution_id", "energy", "period_start", "period_end", "quantity", "unit", "cost_cny",
                *BILL_FIGURES]
WRITE_CHUNK = 500_000  # samples per chunk of a write or import (and per progress step): bounds memory
MAX_CONFLICTS_LISTED = 50  # conflicting samples named in a refused import
KEEP_NEW = 4_000_000  # new samples of an import kept from its check for the write (beyond: read again)
CONSUMPTION_COLUMNS = ["meter_id", "period_start", "quantity", "estimated_share"]
COUNT_COLUMNS = ["meter_id", "period_start", "samples", "stored", "flags"]
PERIODS_VERSION = 2  # of the stored period rows: a store with older rows is rebuilt at open (2: `step`)
CONTEXT = rollup.GAP_RADIUS + 1  # stored samples read on each side of a recomputed window
REBUILD_METERS = 64  # meters x ...
REBUILD_DAYS = 32  # ... days recomputed at a time by rebuild_consumption
# A stored period row (hourly and daily tables): t = local period start (epoch s),
# quantity and est in index units before the multiplier.
# step: median spacing (s) of the period's samples (`rollup.sample_counts`; 0 when none).
PERIOD_DTYPES = {"meter_id": object, "t": np.int64, "quantity": float, "est": float, "flags": np.int64,
                 "samples": np.int64, "stored": np.int64, "covered": np.int64, "step": float}
PERIOD_COLUMNS = list(PERIOD_DTYPES)


class StoreError(Exception):
    """The store cannot be reached or refused a request."""


class StoreMissing(StoreError):
    """Opened with `create=False`, and there is no store at that URL."""


@dataclass(frozen=True)
class Imported:
    """What an all-or-nothing import did: `new` rows written, `identical` rows already
    stored with the same values (left alone), `replaced` rows that corrected a stored one
    (bills only: a corrected bill replaces the old)."""

    new: int
    identical: int
    replaced: int = 0


class ImportRejected(Exception):
    """An import that was refused whole; `problems` lists every reason; `rows` the
    conflicting samples (meter_id, t, new value, stored value), the first ones;
    `rejected` how many rows were refused (nothing was written)."""

    def __init__(self, problems: list[str], rows: list[tuple[str, int, float, float]] | None = None,
                 rejected: int | None = None):
        self.problems = problems
        self.rows = rows or []
        self.rejected = len(problems) if rejected is None else rejected
        self.located: list[Problem] = []  # the same at file lines, when known (storage.imports.located)
        self.bills: list[tuple] = []  # refused bills: the (institution, energy, start, end) of each problem
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
        return cls(problems, rows[:MAX_CONFLICTS_LISTED], rejected=len(rows) if total is None else total)


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
    return localtime.first_instant_of(out, tz) if out.tzinfo is None else out


_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def date_range(start: str, end: str, tz: str, where: str = "<command line>",
               fields: tuple[str, str] = ("--start", "--end")) -> tuple[pd.Timestamp, pd.Timestamp]:
    """[start, end) from user dates (the CLI's --start/--end, the API's start/end): local
    dates of `tz`, a bare end date inclusive; a time of day is an exact, exclusive end.
    ConfigError naming `where` and the field otherwise."""
    try:
        lo = ts(start, tz)
        hi = ts(end, tz) + (pd.Timedelta(days=1) if _DATE.match(end) else pd.Timedelta(0))
    except (ValueError, OverflowError) as exc:
        raise ConfigError([Problem(where, 0, "/".join(fields), str(exc))]) from None
    if hi <= lo:
        raise ConfigError([Problem(where, 0, fields[1], f"must be after {fields[0]}")])
    return lo, hi


def normalize_samples(samples: pd.DataFrame) -> pd.DataFrame:
    """meter_id, t (epoch s), value, quality from a frame with `time` or `t`. meter_id is
    a Categorical of strings (sorted categories): the write path works on its integer
    codes, never on a string per row."""
    t = samples["t"].to_numpy(np.int64) if "t" in samples else to_epoch_s(samples["time"])
    q = samples["quality"].to_numpy(np.int64) if "quality" in samples else np.zeros(len(samples), np.int64)
    values = samples["value"].to_numpy(np.float64)
    bad = ~np.isfinite(values)
    if bad.any():
        first = samples[bad].iloc[0]
        raise ValueError(f"{int(bad.sum())} sample(s) without a finite value, e.g. meter {first['meter_id']} "
                         f"at {first['time'] if 'time' in samples else first['t']}: {first['value']}")
    return pd.DataFrame({"meter_id": meter_categorical(samples["meter_id"]), "t": t, "value": values, "quality": q})


def meter_categorical(ids: pd.Series | np.ndarray) -> pd.Categorical:
    """Meter ids as a Categorical of strings with sorted categories."""
    if isinstance(getattr(ids, "dtype", None), pd.CategoricalDtype):
        cat = pd.Categorical(ids)
        cat = cat.rename_categories([str(c) for c in cat.categories])
        return cat if cat.categories.is_monotonic_increasing else cat.reorder_categories(sorted(cat.categories))
    codes, uniques = pd.factorize(ids, sort=True)
    names = [str(u) for u in uniques]
    if names != sorted(names):  # ids that were not strings sort differently as strings
        return meter_categorical(pd.Categorical.from_codes(codes, categories=names))
    return pd.Categorical.from_codes(codes, categories=names)


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
    """A place for samples, meter events and bills, with consumption materialised as
    samples arrive (see the module docstring)."""

    url: str
    tz: str

    def __init__(self, tz: str = "Asia/Shanghai"):
        self.tz = tz
        self._meters = pd.DataFrame(columns=["meter_id", "multiplier", "rollover_at"])
        self._write_lock = threading.RLock()
        self._write_depth = 0
        self._rollover_used: dict[str, float] = {}  # rollover_at the stored periods were computed with
        self._writer: ThreadPoolExecutor | None = None
        self._judging = threading.local()  # `judging_completeness` of each thread

    # -- meters -----------------------------------------------------------------
    def set_meters(self, meters: pd.DataFrame) -> None:
        """Tell the store each meter's multiplier and register maximum (`rollover_at`),
        e.g. `store.set_meters(registry.meters_frame())`. A changed register maximum
        recomputes that meter's stored consumption (the multiplier is applied at read)."""
        self._meters = meters[["meter_id", "multiplier", "rollover_at"]].copy()
        new = {str(k): float(v) for k, v in self.rollovers.items() if pd.notna(v)}
        if self._load_settings().get("rollover", {}) == new:  # a read: no write lock when nothing changed
            self._rollover_used = new
            return
        with self._writing():
            settings = self._load_settings()
            used = settings.get("rollover", {})
            changed = sorted(m for m in set(used) | set(new) if used.get(m) != new.get(m))
            self._save_settings({**settings, "rollover": new})
            self._rollover_used = new
            have = set(self.meter_ids())
            self.rebuild_consumption([m for m in changed if m in have])

    @property
    def multipliers(self) -> pd.Series:
        return self._meters.set_index("meter_id")["multiplier"].astype(float)

    def _multiplier_of(self, meter_ids: pd.Series) -> np.ndarray:
        """Each row's meter multiplier (1.0 for a meter the registry does not know),
        looked up once per meter, not per row."""
        mult = self.multipliers
        found = np.r_[mult.to_numpy(float), np.nan][positions_in(meter_ids, mult.index)]
        return np.where(np.isnan(found), 1.0, found)

    @property
    def rollovers(self) -> pd.Series:
        return self._meters.set_index("meter_id")["rollover_at"].astype(float)

    def _open_settings(self) -> None:
        """At open: load the settings the stored periods were computed with; a changed
        time zone recomputes every meter's periods."""
        settings = self._load_settings()
        self._rollover_used = settings.get("rollover", {})
        if settings.get("tz") == self.tz and settings.get("version") == PERIODS_VERSION:
            return  # a read: no write lock when nothing changed
        with self._writing():
            settings = self._load_settings()
            self._save_settings({**settings, "tz": self.tz, "version": PERIODS_VERSION})
            if "tz" in settings and (settings["tz"] != self.tz or settings.get("version") != PERIODS_VERSION):
                self._drop_periods()
                self.rebuild_consumption()

    # -- samples ----------------------------------------------------------------
    def write_samples(self, samples: pd.DataFrame) -> int:
        """Write samples idempotently, maintaining the hourly and daily consumption of
        the periods they touch, in chunks of WRITE_CHUNK rows; return how many rows
        were written."""
        return self._write_norm(normalize_samples(samples))

    def _write_norm(self, norm: pd.DataFrame, progress: Callable[[int], object] | None = None) -> int:
        for chunk in chunks(norm):
            with self._writing():
                self._upkeep(chunk)
            if progress is not None:
                progress(len(chunk))
        return len(norm)

    @abstractmethod
    def read_samples(self, start: pd.Timestamp | None = None, end: pd.Timestamp | None = None,
                     meter_ids: Iterable[str] | None = None) -> pd.DataFrame:
        """Samples with start <= time < end, sorted by meter_id and time."""

    @abstractmethod
    def last_samples_before(self, t: pd.Timestamp, meter_ids: Iterable[str] | None = None) -> pd.DataFrame:
        """Per meter, the last sample with time < t."""

    def ping(self) -> bool:
        """Whether the store answers now (a cheap request; False instead of an error)."""
        try:
            self._load_settings()
        except Exception:
            return False
        return True

    @abstractmethod
    def meter_ids(self) -> list[str]:
        """Meters that have at least one sample."""

    def import_samples(self, samples: pd.DataFrame, progress: Callable[[int], object] | None = None) -> Imported:
        """All-or-nothing import of one frame (`import_stream` of it)."""
        return self.import_stream(lambda: iter([samples]), progress)

    def import_stream(self, frames: Callable[[], Iterable[pd.DataFrame]],
                      progress: Callable[[int], object] | None = None) -> Imported:
        """All-or-nothing import of the samples `frames()` yields (frames of samples, e.g.
        a file read block by block: `core.csvio.reading_blocks`). Refuse the whole import
        if any sample would change a stored value (ImportRejected), or if `frames()`
        raises while it is checked; otherwise write the samples not stored yet (with
        consumption upkeep). Returns how many were new and how many were stored already
        with the same value (left as they are), so importing a file twice writes nothing
        the second time. The new samples of up to KEEP_NEW rows are kept from the check
        for the write; beyond that `frames()` is called a second time (so it must give the
        same frames again) and memory is bounded by a frame.

        `progress(n)` is called with the number of rows written since the last call.
        Every frame is checked against stored values before the first write, so bad
        input never leaves anything half-written; the embedded store also does it all
        in one transaction."""
        with self._writing():
            found: list[pd.DataFrame] = []
            kept: list[pd.DataFrame] | None = []
            n_conflicts = n_rows = n_new = 0
            for frame in frames():
                for chunk in chunks(normalize_samples(frame)):
                    diff, new = self._against_stored(chunk)
                    n_rows, n_new, n_conflicts = n_rows + len(chunk), n_new + len(new), n_conflicts + len(diff)
                    if len(diff) and sum(map(len, found)) < MAX_CONFLICTS_LISTED:
                        found.append(diff.head(MAX_CONFLICTS_LISTED))
                    if kept is not None:
                        kept.append(new)
                        if n_new > KEEP_NEW:
                            kept = None
            if n_conflicts:
                rows = pd.concat(found).sort_values(["meter_id", "t"]).head(MAX_CONFLICTS_LISTED)
                raise ImportRejected.conflicts(list(rows.itertuples(index=False, name=None)), total=n_conflicts)
            to_write: Iterable[pd.DataFrame] = (
                (self._against_stored(c)[1] for frame in frames() for c in chunks(normalize_samples(frame)))
                if kept is None  # a second pass: the new samples again, chunk by chunk
                else [pd.concat(kept, ignore_index=True)] if n_new else [])
            written = sum(self._write_norm(new, progress) for new in to_write if len(new))
            identical = n_rows - n_new  # repeated keys inside a chunk count once (chunks keeps the last)
            if progress is not None and identical:
                progress(identical)
            return Imported(written, identical)

    def _against_stored(self, chunk: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Of a normalised chunk of samples: those that would change a stored value
        (meter_id, t, value, value_old) and those not stored yet (the chunk's columns)."""
        lo_hi = chunk.groupby("meter_id", sort=False, observed=True)["t"].agg(["min", "max"])
        stored = self._samples_near(pd.DataFrame({"meter_id": np.asarray(lo_hi.index, dtype=object),
                                                  "lo": lo_hi["min"].to_numpy(), "hi": lo_hi["max"].to_numpy() + 1}),
                                    0, 0)
        index = pd.Index(np.asarray(lo_hi.index, dtype=object))
        merged = coded(chunk, index).assign(pos=np.arange(len(chunk))).merge(
            coded(stored, index)[["meter_id", "t", "value"]], on=["meter_id", "t"], suffixes=("", "_old"))
        merged["meter_id"] = index.to_numpy()[merged["meter_id"].to_numpy()]
        same = np.isclose(merged["value"], merged["value_old"], rtol=0, atol=1e-9)
        keep = np.ones(len(chunk), dtype=bool)
        keep[merged["pos"].to_numpy()[same]] = False
        return merged[~same][["meter_id", "t", "value", "value_old"]], chunk[keep]

    # -- events -----------------------------------------------------------------
    def write_events(self, events: pd.DataFrame) -> None:
        """Record meter events (replacement, rollover, reset); recompute the periods of
        the intervals they fall in."""
        ev = normalize_events(events)
        if ev.empty:
            return
        with self._writing():
            self._put_events(ev)
            lo_hi = ev.groupby("meter_id", sort=False)["t"].agg(["min", "max"])
            self._recompute(self._touched(lo_hi.index.to_numpy(), lo_hi["min"].to_numpy(np.int64),
                                          lo_hi["max"].to_numpy(np.int64)))

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

    def import_bills(self, bills: pd.DataFrame, replace: bool = False) -> BillImport:
        """Append-only import of bills (issue 15): a bill identical to a stored one is
        skipped, a new one written; one that differs from the stored bill of the same
        (institution, energy, period) is refused (ImportRejected, nothing written) unless
        `replace`, and then returned in `BillImport.replaced` with the stored values (the
        caller records them in the audit trail). A period that overlaps a stored bill of
        the same institution and energy without being the same period is always refused."""
        with self._writing():
            incoming = normalize_bills(bills)
            stored = normalize_bills(self.read_bills(incoming["institution_id"].unique().tolist()))
            result = compare_bills(incoming, stored)
            found = [(bill_key(r), f"bill {bill_label(r)} overlaps the stored bill {r.other_start}..{r.other_end}")
                     for r in result.overlaps.itertuples(index=False)]
            if not replace:
                found += [(bill_key(r), f"bill {bill_label(r)}: {r.differs} differs from the stored bill "
                                        f"({_bill_values(r, '_old')} stored, {_bill_values(r, '')} here); "
                                        "import with --replace to correct it (the old value is kept in the audit trail)")
                          for r in result.replaced.itertuples(index=False)]
            if found:
                listed = [p for _, p in found[:MAX_CONFLICTS_LISTED]]
                if len(found) > MAX_CONFLICTS_LISTED:
                    listed.append(f"... and {len(found) - MAX_CONFLICTS_LISTED} more conflicting bills")
                exc = ImportRejected(listed)
                exc.bills = [k for k, _ in found[:MAX_CONFLICTS_LISTED]]
                raise exc
            changed = pd.concat([result.new, result.replaced[BILL_COLUMNS]], ignore_index=True)
            if len(changed):
                self.write_bills(changed)
        return result

    # -- consumption ------------------------------------------------------------
    def consumption(self, freq: str, start: str | pd.Timestamp, end: str | pd.Timestamp,
                    meter_ids: Iterable[str] | None = None) -> pd.DataFrame:
        """Consumption per meter and local period (hour, day, month, year) in [start, end)
        (CONSUMPTION_COLUMNS), from the materialised tables: `hour` from the hourly one,
        the others from the daily one (months and years are sums of local days).

        Naive `start`/`end` are local time of the store's time zone; the period
        containing `start` is included whole.
        """
        if freq in ("month", "year"):
            sums = self._period_sums(freq, start, end, meter_ids)
            if sums is not None:
                return self._with_multiplier(sums)
        rows = self._periods_between(freq, start, end, meter_ids, ["quantity", "est", "covered"])
        rows = rows[rows["covered"].to_numpy(bool)]
        ids = rows["meter_id"]
        mult = self._multiplier_of(ids)
        quantity = rows["quantity"].to_numpy(float) * mult
        out = pd.DataFrame({
            "meter_id": _id_column(ids),
            "period_start": from_epoch_s(rows["t"].to_numpy(np.int64)).tz_convert(self.tz),
            "quantity": quantity,
            "estimated_share": rollup.estimated_share(rows["est"].to_numpy(float) * mult, quantity),
        })
        return out if freq in ("hour", "day") else regroup(out, freq, self.tz)

    def consumption_between(self, starts: pd.DatetimeIndex, end: str | pd.Timestamp,
                            meter_ids: Iterable[str] | None = None) -> pd.DataFrame:
        """Consumption per meter summed over local spans of days: [starts[k], starts[k+1])
        and [starts[-1], end), `starts` being sorted local midnights (tz-aware):
        CONSUMPTION_COLUMNS, period_start the span's start, for the spans with covered
        days (summed by the server where the backend can, `_sums_between`)."""
        end = ts(end, self.tz)
        if len(starts) == 0 or end <= starts[0]:
            return self._with_multiplier(pd.DataFrame({"meter_id": [], "period_start": pd.DatetimeIndex([], tz=self.tz),
                                                       "quantity": [], "est": []}))
        keys = pd.DatetimeIndex(starts).tz_convert(self.tz)
        cuts = np.r_[keys.as_unit("s").asi8, int(np.ceil(end.timestamp()))]
        sums = self._sums_between(keys, cuts, meter_ids)
        if sums is not None:
            return self._with_multiplier(sums)
        daily = self.consumption("day", keys[0], end, meter_ids)
        span = np.searchsorted(cuts, pd.DatetimeIndex(daily["period_start"]).as_unit("s").asi8, side="right") - 1
        return regroup(daily.assign(period_start=keys[span]), "native", self.tz)

    def _period_sums(self, freq: str, start: str | pd.Timestamp, end: str | pd.Timestamp,
                     meter_ids: Iterable[str] | None) -> pd.DataFrame | None:
        """Months or years of [start's day, end) summed by the backend (`_sums_between`)."""
        found = self._sum_cuts(freq, start, end)
        return None if found is None else self._sums_between(*found, meter_ids)

    def _sums_between(self, keys: pd.DatetimeIndex, cuts: np.ndarray,
                      meter_ids: Iterable[str] | None) -> pd.DataFrame | None:
        """A backend that sums days itself (server-side) returns, for the spans
        [cuts[k], cuts[k+1]) (epoch s) labelled keys[k]: meter_id, period_start, quantity,
        est (index units, covered days only), sorted by meter and period; None: the daily
        rows are read and summed here."""
        return None

    def _completeness_sums(self, days: pd.DataFrame, meters: pd.DataFrame, target: float,
                           full: bool = True) -> pd.DataFrame | None:
        """A backend that can aggregate the completeness rule of
        `models.completeness.completeness_from_counts` over its stored day rows returns,
        per meter of `meters` (meter_id, interval_s: the live poll interval, NaN when
        none) and group of the judged `days` (t: first instant, epoch s; lo: first
        instant of the first day of its usual-spacing window; span: length in s; group:
        int), over the judged days with a sample: meter_id, period (the group), days,
        complete (share >= `target`), share_sum, share_min, samples (the columns of
        `models.completeness.SUM_COLUMNS`; not `full`: only complete is needed, the others
        may be NaN and a group without a complete day may have no row); None: the caller
        reads the day counts (`period_counts`) and applies the rule itself. Here: the
        counts kept inside `judging_completeness` when they cover every meter, else None."""
        found, rest = self._complete_alongside(days, meters, target) if not full else (None, meters)
        return found if found is not None and not len(rest) else None

    @contextmanager
    def judging_completeness(self, interval: pd.Series, target: float) -> Iterator[None]:
        """Inside (in this thread): month or span sums (`_sums_between`) of the live meters
        of `interval` (meter_id -> poll interval, s) count their complete days (the rule
        of `_completeness_sums` at `target`) in the same pass where the backend can (the
        spans' days of one length), and `_completeness_sums(..., target, full=False)`
        answers from those counts for the days they tile (`_complete_alongside`): one
        read of the days where a year table needs both
        (`quotas.tables.YearTables.ranking_table`)."""
        iv = interval.astype(float)
        iv = iv[np.isfinite(iv.to_numpy()) & (iv.to_numpy() > 0)]
        before = getattr(self._judging, "now", None)
        self._judging.now = {"target": float(target), "parts": [],
                             "interval": pd.Series(iv.to_numpy(float), index=[str(m) for m in iv.index])}
        try:
            yield
        finally:
            self._judging.now = before

    def _judged_sets(self, meter_ids: Iterable[str] | None, cuts: np.ndarray,
                     judgeable: bool = True) -> tuple[list[tuple[float, list[str] | None]], np.ndarray]:
        """For a sums read of the spans [cuts[k], cuts[k+1]) (`_sums_between`): the
        (interval, meter ids) sets to read and the length (s) of each span's days. Inside
        `judging_completeness`, when every span's days are of one length (and
        `judgeable`: the backend can count them in this read), `meter_ids` by the poll
        interval they are judged at (NaN: not judged); else one set of all of them (None:
        every meter) and NaN lengths."""
        ids = None if meter_ids is None else [str(m) for m in meter_ids]
        unjudged = [(np.nan, ids)], np.full(len(cuts) - 1, np.nan)
        judge = getattr(self._judging, "now", None)
        if judge is None or ids is None or not judgeable:
            return unjudged
        length = self._day_length(cuts)
        if not np.isfinite(length).all():
            return unjudged
        by = np.asarray(ids, object)
        iv = judge["interval"].reindex(by).to_numpy(float)
        return [(float(v), by[iv == v if np.isfinite(v) else ~np.isfinite(iv)].tolist()) for v in pd.unique(iv)], length

    def _keep_judged(self, interval: float, cuts: np.ndarray, meter_ids: list[str], counts: pd.DataFrame) -> None:
        """Keep the complete days a span read counted (`counts`: meter_id, span: k of
        [cuts[k], cuts[k+1]), complete > 0) of `meter_ids` judged at `interval`."""
        self._judging.now["parts"].append({"interval": interval, "cuts": np.asarray(cuts, np.int64),
                                           "ids": pd.Index(meter_ids), "counts": counts})

    def _judging_target(self) -> float | None:
        judge = getattr(self._judging, "now", None)
        return None if judge is None else judge["target"]

    def _day_length(self, cuts: np.ndarray) -> np.ndarray:
        """Per span [cuts[k], cuts[k+1]) (epoch s): the length (s) of its local days, NaN
        where they differ (a clock change) or the span does not end at a midnight."""
        edges = localtime.local_edges(from_epoch_s(cuts[:1])[0], from_epoch_s(cuts[-1:])[0], "day", self.tz)
        edges = np.asarray(edges.as_unit("s").asi8, np.int64)
        lo, hi = np.searchsorted(edges, cuts[:-1]), np.searchsorted(edges, cuts[1:])
        step = np.diff(edges).astype(float)
        whole = (hi > lo) & (edges[np.minimum(hi, len(edges) - 1)] == cuts[1:]) & (edges[lo] == cuts[:-1])
        first = step[np.minimum(lo, len(step) - 1)]
        same = np.array([whole[k] and (step[lo[k]:hi[k]] == first[k]).all() for k in range(len(lo))], bool)
        return np.where(same, first, np.nan)

    def _complete_alongside(self, days: pd.DataFrame, meters: pd.DataFrame,
                            target: float) -> tuple[pd.DataFrame | None, pd.DataFrame]:
        """Inside `judging_completeness` at `target`: the complete days per group of
        `days` (`_completeness_sums`, not full) of the meters whose sums counted them
        over spans that tile the groups (`_keep_judged`), and the meters still to judge."""
        judge = getattr(self._judging, "now", None)
        if judge is None or judge["target"] != float(target) or not judge["parts"] or not len(days):
            return None, meters
        t, span, group = (days[c].to_numpy(np.int64) for c in ("t", "span", "group"))
        if (np.diff(t) != span[:-1]).any():  # the judged days must follow each other
            return None, meters
        first = np.flatnonzero(np.r_[True, group[1:] != group[:-1]])
        edges = np.r_[t[first], t[-1] + span[-1]]
        ids = meters["meter_id"].astype(str)
        index = pd.Index(ids)
        if not index.is_unique:
            return None, meters
        interval = meters["interval_s"].to_numpy(float)
        done = np.zeros(len(meters), bool)
        keys, complete = [], []  # per counted row: meter position x len(first) + group position
        for part in judge["parts"]:
            if not np.isin(edges, part["cuts"]).all():
                continue
            hit = ~done & (interval == part["interval"]) & (part["ids"].get_indexer(index) >= 0)
            done |= hit
            c = part["counts"]
            start = part["cuts"][c["span"].to_numpy(np.int64)]
            pos = positions_in(c["meter_id"], index)
            inside = (start >= edges[0]) & (start < edges[-1]) & (pos >= 0)
            inside[inside] = hit[pos[inside]]
            keys.append(pos[inside] * len(first) + np.searchsorted(edges, start[inside], side="right") - 1)
            complete.append(c["complete"].to_numpy(np.int64)[inside])
        if not done.any():
            return None, meters
        key, inverse = np.unique(np.concatenate(keys), return_inverse=True)
        total = np.bincount(inverse, weights=np.concatenate(complete), minlength=len(key)).astype(np.int64)
        meter, at = key // len(first), key % len(first)
        rank = pd.factorize(ids, sort=True)[0]  # the meters in id order, as a groupby sorts them
        order = np.lexsort((at, rank[meter]))
        nan = np.full(len(key), np.nan)
        return pd.DataFrame({"meter_id": ids.array.take(meter[order]), "period": group[first][at[order]],
                             "days": nan, "complete": total[order], "share_sum": nan, "share_min": nan,
                             "samples": nan}), meters[~done]

    def _sum_cuts(self, freq: str, start: str | pd.Timestamp,
                  end: str | pd.Timestamp) -> tuple[pd.DatetimeIndex, np.ndarray] | None:
        """For `_period_sums`: the local month or year starts (keys) of [start's day, end)
        and the epoch-second cuts between them (len(keys) + 1: the first cut is start's
        day, the last `end`); None when the range is empty."""
        start, end = ts(start, self.tz), ts(end, self.tz)
        lo = int(rollup.period_edges(start, end, "day", self.tz)[0])
        hi = int(np.ceil(end.timestamp()))
        if hi <= lo:
            return None
        keys = localtime.local_edges(from_epoch_s([lo])[0], from_epoch_s([hi])[0], freq, self.tz)[:-1]
        return keys, np.r_[np.maximum(keys.as_unit("s").asi8, lo), hi]

    def _with_multiplier(self, sums: pd.DataFrame) -> pd.DataFrame:
        """CONSUMPTION_COLUMNS of period sums in index units (`_period_sums`)."""
        mult = self._multiplier_of(sums["meter_id"])
        quantity = sums["quantity"].to_numpy(float) * mult
        return pd.DataFrame({"meter_id": _id_column(sums["meter_id"]),
                             "period_start": sums["period_start"].array, "quantity": quantity,  # keeps the tz
                             "estimated_share": rollup.estimated_share(sums["est"].to_numpy(float) * mult, quantity)})

    def period_counts(self, freq: str, start: str | pd.Timestamp, end: str | pd.Timestamp,
                      meter_ids: Iterable[str] | None = None) -> pd.DataFrame:
        """Per meter and local period in [start, end) with at least one sample or
        interval: meter_id, period_start, samples (samples with time in the period),
        stored (of them, flagged BACKFILL or IMPORTED), flags (OR of the quality flags of
        the intervals overlapping the period); hours and days also step (median spacing
        in s of the period's samples, `rollup.sample_counts`; 0 when none). Months and
        years are sums of days (without step)."""
        rows = self._periods_between(freq, start, end, meter_ids, ["samples", "stored", "flags", "step"])
        out = pd.DataFrame({
            "meter_id": _id_column(rows["meter_id"]),
            "period_start": from_epoch_s(rows["t"].to_numpy(np.int64)).tz_convert(self.tz),
            "samples": rows["samples"].to_numpy(np.int64),
            "stored": rows["stored"].to_numpy(np.int64),
            "flags": rows["flags"].to_numpy(np.int64),
        })
        if freq in ("hour", "day"):
            out["step"] = rows["step"].to_numpy(float)
            return out
        if out.empty:
            return out
        out["period_start"] = period_key(out["period_start"], freq, self.tz)
        out = out.sort_values(["meter_id", "period_start"], kind="stable")  # groups contiguous, as groupby sorts
        sums = out.groupby(["meter_id", "period_start"], as_index=False, sort=True)[["samples", "stored"]].sum()
        m, p = out["meter_id"].to_numpy(), out["period_start"].to_numpy()
        starts = np.flatnonzero(np.r_[True, (m[1:] != m[:-1]) | (p[1:] != p[:-1])])
        sums["flags"] = np.bitwise_or.reduceat(out["flags"].to_numpy(np.int64), starts)
        return sums[COUNT_COLUMNS]

    def _periods_between(self, freq: str, start: str | pd.Timestamp, end: str | pd.Timestamp,
                         meter_ids: Iterable[str] | None, columns: list[str]) -> pd.DataFrame:
        start, end = ts(start, self.tz), ts(end, self.tz)
        table = "hour" if freq == "hour" else "day"
        if freq not in rollup.FREQS:
            raise ValueError(f"freq must be one of {rollup.FREQS}, not {freq!r}")
        first = int(rollup.period_edges(start, end, table, self.tz)[0])
        ids = None if meter_ids is None else [str(m) for m in meter_ids]
        if ids is not None and not ids:
            return empty_periods(columns)
        return self._read_periods(table, first, int(np.ceil(end.timestamp())), ids, columns)

    def rebuild_consumption(self, meter_ids: Iterable[str] | None = None,
                            progress: Callable[[int], object] | None = None) -> int:
        """Recompute the stored hourly and daily consumption of `meter_ids` (default:
        all) from their samples and events, REBUILD_METERS meters x REBUILD_DAYS days
        at a time (memory bounded by that, not by the history). Returns the number of
        meters rebuilt; `progress(n)` after each group of meters."""
        span = self._sample_span(None if meter_ids is None else list(meter_ids))
        day = pd.Timedelta(days=REBUILD_DAYS).value // 10**9
        with self._writing():
            for i in range(0, len(span), REBUILD_METERS):
                part = span.iloc[i:i + REBUILD_METERS]
                lo = local_floor_day(part["first"].to_numpy(np.int64), self.tz)
                hi = part["last"].to_numpy(np.int64)
                while len(part):
                    w_hi = np.minimum(local_floor_day(lo + day, self.tz), local_next_day(hi, self.tz))
                    self._recompute(pd.DataFrame({"meter_id": part["meter_id"].to_numpy(), "lo": lo, "hi": w_hi}))
                    more = w_hi <= hi
                    part, lo, hi = part[more], w_hi[more], hi[more]
                if progress is not None:
                    progress(min(REBUILD_METERS, len(span) - i))
        return len(span)

    # -- consumption upkeep -------------------------------------------------------
    def _upkeep(self, chunk: pd.DataFrame) -> None:
        """Write one chunk of normalised samples (sorted by meter and time, one per key)
        and recompute the periods it touches."""
        cat = pd.Categorical(chunk["meter_id"])  # each meter's rows contiguous, by time (`chunks`)
        t = chunk["t"].to_numpy(np.int64)
        first = np.flatnonzero(np.r_[True, cat.codes[1:] != cat.codes[:-1]])
        ids = np.asarray(cat.categories, dtype=object)[cat.codes[first]]
        windows = self._touched(ids, t[first], t[np.r_[first[1:], len(t)] - 1])
        self._recompute(windows, chunk)

    def _touched(self, meter_ids: np.ndarray, b0: np.ndarray, b1: np.ndarray) -> pd.DataFrame:
        """The local days whose periods change when samples (or events) in [b0, b1] of
        each meter change: from the day of the CONTEXT-th stored sample before b0 to the
        day of the CONTEXT-th stored sample after b1 (an interval's gap test looks
        GAP_RADIUS intervals to each side). Returns meter_id, lo, hi (local midnights) and
        hour_lo, the local hour of that CONTEXT-th sample before b0: no hourly period before
        it changes (the intervals before it keep their samples and gap tests), so the hours of
        the day before a batch that continues a meter's history are not recomputed."""
        near = coded(self._samples_near(pd.DataFrame({"meter_id": meter_ids, "lo": b0, "hi": b1 + 1}),
                                        CONTEXT, CONTEXT, inside=False), pd.Index(meter_ids))
        m, t = near["meter_id"].to_numpy(), near["t"].to_numpy(np.int64)
        t_lo, t_hi = b0.copy(), b1.copy()
        np.minimum.at(t_lo, m[t < b0[m]], t[t < b0[m]])
        np.maximum.at(t_hi, m[t > b1[m]], t[t > b1[m]])
        return pd.DataFrame({"meter_id": meter_ids, "lo": local_floor_day(t_lo, self.tz),
                             "hi": local_next_day(t_hi, self.tz),
                             "hour_lo": to_epoch_s(localtime.local_floor(from_epoch_s(t_lo), "hour", self.tz))})

    def _recompute(self, windows: pd.DataFrame, new: pd.DataFrame | None = None) -> None:
        """Recompute and store the hourly and daily periods of each meter in [lo, hi)
        (local midnights) from its stored samples there (plus CONTEXT on each side),
        merged with `new` samples (which win), and write `new`."""
        index = pd.Index(windows["meter_id"].to_numpy())
        merged = coded(self._samples_near(windows, CONTEXT, CONTEXT), index)
        if new is not None:
            merged = merge_coded(merged, coded(new, index))
        events = self._events_norm(windows["meter_id"].to_numpy())
        # the samples go in (in the backend's writer thread) while the periods are computed
        pending = self._put_samples_async(new) if new is not None else None
        try:
            rows = period_rows(merged, events, windows, self.tz, self._rollover_used)
        finally:
            if pending is not None:
                pending.result()
        for freq, frame in rows.items():
            self._put_periods(freq, frame)

    def _events_norm(self, ids: np.ndarray) -> pd.DataFrame | None:
        ev = self.read_events(list(ids))
        return normalize_events(ev) if len(ev) else None

    @contextmanager
    def _writing(self) -> Iterator[None]:
        """One writer at a time in this process; the outermost call runs in the
        backend's transaction (`_transaction`)."""
        with self._write_lock:
            if self._write_depth:
                yield
                return
            self._write_depth += 1
            try:
                with self._transaction():
                    yield
            finally:
                self._write_depth -= 1

    # -- what a backend provides ------------------------------------------------------
    @contextmanager
    def _transaction(self) -> Iterator[None]:
        """All-or-nothing scope of a write, where the backend has one."""
        yield

    @abstractmethod
    def _samples_near(self, windows: pd.DataFrame, before: int, after: int, inside: bool = True) -> pd.DataFrame:
        """Stored samples (normalised: meter_id, t, value, quality), per row of `windows`
        (meter_id, lo, hi; epoch s): the `before` last with t < lo, those with
        lo <= t < hi (if `inside`) and the `after` first with t >= hi."""

    @abstractmethod
    def _put_samples(self, norm: pd.DataFrame) -> None:
        """Write normalised samples (upsert on meter_id, t)."""

    def _put_samples_async(self, norm: pd.DataFrame) -> Future:
        """`_put_samples` in this store's writer thread (a backend whose write does not
        hold the GIL runs it alongside the consumption arithmetic); wait on the result
        before the next write."""
        if self._writer is None:
            self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store-writer")
        return self._writer.submit(self._put_samples, norm)

    @abstractmethod
    def _put_events(self, events: pd.DataFrame) -> None:
        """Write normalised events."""

    @abstractmethod
    def _put_periods(self, freq: str, rows: pd.DataFrame) -> None:
        """Upsert period rows (PERIOD_COLUMNS) into the hour or day table."""

    @abstractmethod
    def _read_periods(self, freq: str, lo: int, hi: int, meter_ids: list[str] | None,
                      columns: list[str]) -> pd.DataFrame:
        """meter_id, t and `columns` (of PERIOD_COLUMNS) of the stored period rows of the
        hour or day table with lo <= t < hi, sorted by meter and t."""

    @abstractmethod
    def _drop_periods(self) -> None:
        """Delete every stored period row."""

    @abstractmethod
    def _sample_span(self, meter_ids: list[str] | None) -> pd.DataFrame:
        """meter_id, first, last (epoch s) of the stored samples of each meter."""

    @abstractmethod
    def _load_settings(self) -> dict:
        """What the stored periods were computed with ({} if nothing yet)."""

    @abstractmethod
    def _save_settings(self, settings: dict) -> None:
        """Record what the stored periods are computed with."""

    def close(self) -> None:
        """Release resources (backends extend this)."""
        if self._writer is not None:
            self._writer.shutdown()
            self._writer = None

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class BillImport:
    """What `Store.import_bills` found: `new` bills (BILL_COLUMNS), the number
    `identical` to stored ones, `replaced` (BILL_COLUMNS, quantity_old, unit_old,
    cost_cny_old, differs: the fields that differ) and `overlaps` (BILL_COLUMNS,
    other_start, other_end: the stored bill it overlaps)."""

    new: pd.DataFrame
    identical: int
    replaced: pd.DataFrame
    overlaps: pd.DataFrame


def normalize_bills(bills: pd.DataFrame) -> pd.DataFrame:
    """Bills in BILL_COLUMNS with str ids, `datetime.date` periods, float quantity and cost."""
    return pd.DataFrame({
        "institution_id": bills["institution_id"].astype(str).to_numpy(object),
        "energy": bills["energy"].astype(str).to_numpy(object),
        "period_start": pd.to_datetime(bills["period_start"]).dt.date.to_numpy(object),
        "period_end": pd.to_datetime(bills["period_end"]).dt.date.to_numpy(object),
        "quantity": pd.to_numeric(bills["quantity"]).to_numpy(float),
        "unit": bills["unit"].astype(str).to_numpy(object),
        **{c: pd.to_numeric(bills[c], errors="coerce").to_numpy(float) if c in bills else np.full(len(bills), np.nan)
           for c in ("cost_cny", *BILL_FIGURES)},
    })


def compare_bills(incoming: pd.DataFrame, stored: pd.DataFrame) -> BillImport:
    """Compare normalised bills with the stored ones (pure): which are new, identical,
    differing (same institution, energy and period) or overlapping another stored period."""
    keys = ["institution_id", "energy", "period_start", "period_end"]
    same = incoming.reset_index(drop=True).merge(stored, on=keys, how="left", suffixes=("", "_old"),
                                                 indicator=True)
    found = (same["_merge"] == "both").to_numpy()
    q_diff = ~np.isclose(same["quantity"], same["quantity_old"], rtol=0, atol=1e-9)
    u_diff = (same["unit"] != same["unit_old"]).to_numpy()
    what = np.where(q_diff, "quantity", np.where(u_diff, "unit", ""))
    for c in ("cost_cny", *BILL_FIGURES):
        what = np.where(what == "", np.where(_differ(same[c].to_numpy(float), same[f"{c}_old"].to_numpy(float)), c, ""),
                        what)
    differs = found & (what != "")
    replaced = same[differs].drop(columns="_merge").assign(differs=what[differs]).reset_index(drop=True)
    new = same.loc[~found, BILL_COLUMNS].reset_index(drop=True)
    pairs = new.reset_index().merge(stored, on=["institution_id", "energy"], suffixes=("", "_s"))
    hit = ((pairs["period_start"] <= pairs["period_end_s"]) & (pairs["period_start_s"] <= pairs["period_end"]))
    overlaps = pairs[hit.to_numpy(bool)].drop_duplicates("index").rename(
        columns={"period_start_s": "other_start", "period_end_s": "other_end"})
    return BillImport(new=new, identical=int((found & ~differs).sum()), replaced=replaced,
                      overlaps=overlaps[[*BILL_COLUMNS, "other_start", "other_end"]].reset_index(drop=True))


def _differ(new: np.ndarray, old: np.ndarray) -> np.ndarray:
    """Optional figures (NaN: none) that differ."""
    return ~((np.isnan(new) & np.isnan(old)) | np.isclose(new, old, rtol=0, atol=1e-9))


def bill_key(r) -> tuple:
    """(institution_id, energy, period_start, period_end) of a bill row."""
    return (r.institution_id, r.energy, r.period_start, r.period_end)


def bill_label(r) -> str:
    """'INSTITUTION ENERGY START..END' of a bill row (a namedtuple with BILL_COLUMNS)."""
    return f"{r.institution_id} {r.energy} {r.period_start}..{r.period_end}"


def _bill_values(r, suffix: str) -> str:
    cost = getattr(r, f"cost_cny{suffix}")
    return (f"{getattr(r, f'quantity{suffix}'):g} {getattr(r, f'unit{suffix}')}"
            + ("" if np.isnan(cost) else f", {cost:g} CNY"))


def chunks(norm: pd.DataFrame) -> Iterator[pd.DataFrame]:
    """Normalised samples sorted by meter and time, the last of any repeated key kept
    (the last write wins), in chunks of WRITE_CHUNK rows."""
    if norm.empty:
        return
    codes = pd.Categorical(norm["meter_id"]).codes
    t = norm["t"].to_numpy(np.int64)
    order = np.lexsort((np.arange(len(t)), t, codes))
    c, tt = codes[order], t[order]
    last = np.r_[(c[1:] != c[:-1]) | (tt[1:] != tt[:-1]), True]
    order = order[last]
    ordered = len(order) == len(norm) and bool((order[1:] > order[:-1]).all())  # as given: no copy
    for i in range(0, len(order), WRITE_CHUNK):
        yield (norm.iloc[i:i + WRITE_CHUNK] if ordered else norm.iloc[order[i:i + WRITE_CHUNK]]).reset_index(drop=True)


def expected_samples(span_s: np.ndarray | float, step_s: np.ndarray | float) -> np.ndarray:
    """Samples a day of `span_s` seconds should hold at one per `step_s`: max(floor(span
    / step), 1), in the IEEE arithmetic SQLite uses (the completeness rule,
    `models.completeness.completeness_from_counts`)."""
    return np.maximum(np.floor(np.divide(span_s, step_s)), 1.0)


def local_floor_day(t: np.ndarray, tz: str) -> np.ndarray:
    """Epoch s of the start (first instant) of the local day containing each `t` (epoch s)."""
    return to_epoch_s(localtime.local_floor(from_epoch_s(t), "day", tz))


def local_next_day(t: np.ndarray, tz: str) -> np.ndarray:
    """Epoch s of the start of the local day after the one containing each `t` (epoch s)."""
    return to_epoch_s(localtime.local_next(from_epoch_s(t), "day", tz))


def empty_periods(columns: list[str] | None = None) -> pd.DataFrame:
    keep = ["meter_id", "t", *(columns or PERIOD_COLUMNS[2:])]
    return pd.DataFrame({c: pd.Series(dtype=PERIOD_DTYPES[c]) for c in keep})


def period_rows(merged: pd.DataFrame, events: pd.DataFrame | None, windows: pd.DataFrame, tz: str,
                rollover_at: dict[str, float]) -> dict[str, pd.DataFrame]:
    """The stored rows (PERIOD_COLUMNS) of each meter's hourly and daily periods in
    [lo, hi) of `windows`, from `merged` samples covering them (with context; meter_id
    = position in `windows`, see `coded`): the one `storage.rollup` arithmetic,
    intervals computed once."""
    if merged.empty:
        return {"hour": empty_periods(), "day": empty_periods()}
    ids = windows["meter_id"].to_numpy()
    codes = pd.Index(ids)
    known = merged["meter_id"].to_numpy() >= 0
    s = merged if known.all() else merged[known]
    ev = None
    if events is not None:
        ev = events.assign(meter_id=codes.get_indexer(events["meter_id"]))
        ev = ev[ev["meter_id"] >= 0]
    roll = pd.Series([rollover_at.get(str(m), np.nan) for m in ids], dtype=float)
    intervals = rollup.interval_increases(s, ev, roll)
    day_lo, hi = windows["lo"].to_numpy(np.int64), windows["hi"].to_numpy(np.int64)
    hour_lo = windows["hour_lo"].to_numpy(np.int64) if "hour_lo" in windows else day_lo
    out = {}
    for freq in ("hour", "day"):
        lo = hour_lo if freq == "hour" else day_lo
        edges = rollup.period_edges(from_epoch_s([day_lo.min()])[0], from_epoch_s([hi.max()])[0], freq, tz)
        later = intervals["t1"].to_numpy(np.int64) > lo[intervals["meter_id"].to_numpy(np.int64)]
        spread = rollup.spread_over_periods(intervals if later.all() else pd.DataFrame(
            {c: intervals[c].to_numpy()[later] for c in intervals.columns}, copy=False), edges)
        counts = rollup.sample_counts(s, edges)
        # the outer join of the two on (meter, period): both come sorted by that key, unique
        k_spread = spread["meter_id"].to_numpy(np.int64) * len(edges) + spread["period"].to_numpy(np.int64)
        k_counts = counts["meter_id"].to_numpy(np.int64) * len(edges) + counts["period"].to_numpy(np.int64)
        keys = sorted_union(k_spread, k_counts)
        m, t = keys // len(edges), edges[keys % len(edges)]
        keep = (t >= lo[m]) & (t < hi[m])
        at_spread, at_counts = np.searchsorted(keys, k_spread), np.searchsorted(keys, k_counts)

        quantity = _joined(keys, keep, spread["quantity"].to_numpy(float), at_spread, 0.0, float)
        # the estimated part as the share of it (0..1) says: sums of it over days are the
        # sums of months and years (`regroup`), on the server too (`_period_sums`)
        est = quantity * rollup.estimated_share(
            _joined(keys, keep, spread["estimated_quantity"].to_numpy(float), at_spread, 0.0, float), quantity)
        step = counts["step"].to_numpy(float)
        out[freq] = pd.DataFrame({
            "meter_id": pd.Categorical.from_codes(m[keep], categories=codes),
            "t": t[keep],
            "quantity": quantity,
            "est": est,
            "flags": _joined(keys, keep, spread["flags"].to_numpy(np.int64), at_spread, 0, np.int64),
            "samples": _joined(keys, keep, counts["samples"].to_numpy(np.int64), at_counts, 0, np.int64),
            "stored": _joined(keys, keep, counts["stored"].to_numpy(np.int64), at_counts, 0, np.int64),
            "covered": _joined(keys, keep, np.ones(len(k_spread), np.int64), at_spread, 0, np.int64),
            "step": _joined(keys, keep, np.where(np.isnan(step), 0.0, step), at_counts, 0.0, float),
        }, copy=False)
    return out


def _joined(keys: np.ndarray, keep: np.ndarray, values: np.ndarray, at: np.ndarray, fill: float | int,
            dtype: type) -> np.ndarray:
    """`values` placed at positions `at` of the joined `keys` (`fill` elsewhere), then `keep`."""
    out = np.full(len(keys), fill, dtype)
    out[at] = values
    return out[keep]


def sorted_union(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The sorted union of two sorted arrays of unique keys, in linear time when one
    holds nearly all of the other (no sort of the two)."""
    if np.array_equal(a, b):
        return a
    if len(a) < len(b):
        a, b = b, a
    pos = np.searchsorted(a, b)
    extra = b[(pos >= len(a)) | (a[np.minimum(pos, len(a) - 1)] != b)] if len(a) else b
    return np.insert(a, np.searchsorted(a, extra), extra)


def merge_coded(stored: pd.DataFrame, new: pd.DataFrame) -> pd.DataFrame:
    """Coded samples (`coded`) of `stored` and `new` in one frame sorted by meter and
    time, one row per key, `new` winning: the stores pass both sorted, so the duplicate
    test is a binary search and the sort a merge of two sorted runs."""
    if stored.empty:
        return new
    k_old = stored["meter_id"].to_numpy(np.int64) * (1 << 40) + stored["t"].to_numpy(np.int64)
    k_new = new["meter_id"].to_numpy(np.int64) * (1 << 40) + new["t"].to_numpy(np.int64)
    if len(k_new) > 1 and not (k_new[1:] >= k_new[:-1]).all():
        replaced = np.isin(k_old, k_new)
    else:
        pos = np.minimum(np.searchsorted(k_new, k_old), max(len(k_new) - 1, 0))
        replaced = (k_new[pos] == k_old) if len(k_new) else np.zeros(len(k_old), bool)
    keys = np.r_[k_old[~replaced], k_new]
    order = np.argsort(keys, kind="stable")  # timsort: two sorted runs merge in linear time
    both = {c: np.r_[stored[c].to_numpy()[~replaced], new[c].to_numpy()][order] for c in new.columns}
    return pd.DataFrame(both, copy=False)


def coded(norm: pd.DataFrame, index: pd.Index) -> pd.DataFrame:
    """Normalised samples with meter_id replaced by its position in `index` (-1: absent)."""
    return pd.DataFrame({"meter_id": positions_in(norm["meter_id"], index), "t": norm["t"].to_numpy(np.int64),
                         "value": norm["value"].to_numpy(float), "quality": norm["quality"].to_numpy(np.int64)}, copy=False)


def period_key(period_start: pd.Series | pd.DatetimeIndex, freq: str, tz: str) -> pd.DatetimeIndex:
    """The local month or year (its first instant) of each period start."""
    if freq not in ("month", "year"):
        raise ValueError(f"freq must be one of {rollup.FREQS}, not {freq!r}")
    return localtime.local_floor(pd.DatetimeIndex(period_start), freq, tz)


def _id_column(ids: pd.Series):
    """A meter-id column for a new frame: strings already in pandas' str dtype stay as
    they are (no per-row round trip through Python objects), others as objects."""
    return ids.array if len(ids) and isinstance(ids.dtype, pd.StringDtype) else ids.to_numpy(object)


def regroup(daily: pd.DataFrame, freq: str, tz: str) -> pd.DataFrame:
    """Daily consumption regrouped into local months or years ('native': by the
    period_start the rows already carry)."""
    if daily.empty:
        return daily
    df = pd.DataFrame({
        "meter_id": daily["meter_id"].to_numpy(),
        "period_start": daily["period_start"] if freq == "native" else period_key(daily["period_start"], freq, tz),
        "quantity": daily["quantity"].to_numpy(float),
        "est": daily["quantity"].to_numpy(float) * daily["estimated_share"].to_numpy(float),
    })
    g = df.groupby(["meter_id", "period_start"], as_index=False, sort=True).sum()
    q = g["quantity"].to_numpy(float)
    return pd.DataFrame({"meter_id": g["meter_id"], "period_start": g["period_start"], "quantity": q,
                         "estimated_share": rollup.estimated_share(g["est"].to_numpy(float), q)})
