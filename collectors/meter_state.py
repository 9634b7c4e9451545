"""The per-meter state machine of the collectors: poll results in, samples, events and new state out.

Pure: no threads, no I/O, no clock reads (the caller passes `now`). A step takes the
state of every meter and a batch of poll results and returns a new state; the input
state is never modified, so a caller whose commit fails keeps the old state and can
run the same batch again.

What happens to a meter on a poll result (domain.md section 5):

* ok (an answer with a finite index): validity flags (`collectors.validate.check`); a
  one-off spike is not taken as the next baseline, two in a row are; a wrap at the
  register maximum is a `rollover` event, not a decrease. Failures so far are reset.
* failed (no answer, an exception, or a non-finite index): counted; at the meter's
  `offline_polls` failures in a row (`core.rules.OFFLINE_POLLS`, or its gateway's
  `offline_polls` option) the meter is offline (a `meter_offline` event,
  once), `since` the first of those slots.
* the first ok after missed slots (offline or not, or the collector itself down):
  every missed slot gets a sample interpolated linearly between the last good index and
  the new one (`validate.attribute_gaps`), flagged ESTIMATED, and so is the new sample;
  a meter that was offline raises `meter_online`.

Results of one batch are applied per meter in slot order, as if they came one at a
time: any split of a sequence of results into batches gives the same samples, events
and final state.

Times are epoch seconds (int) of poll slots: multiples of the meter's interval.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import pandas as pd

from collectors import validate
from core.rules import OFFLINE_POLLS
from core.schemas.gateways import GatewayOptions, options_for
from storage import quality

MAX_FILL_SLOTS = 20_000  # longest gap filled sample by sample (longer gaps: the rollup interpolates)

POLL_COLUMNS = ["row", "t", "value", "power", "error"]  # t: slot (epoch s); value: raw index; power: kW or unit/h
SAMPLE_COLUMNS = ("meter_id", "t", "value", "quality")
EVENT_COLUMNS = ("meter_id", "t", "kind", "old_index", "new_index")  # queued events: rollovers
# the persisted state of one meter (collectors.queue keeps it beside the samples)
STATE_COLUMNS = ["meter_id", "t", "value", "fails", "offline_since", "spike_run", "seen_t"]


def slot_s(at_s: float, interval_s: np.ndarray) -> np.ndarray:
    """The start (int64 epoch s) of the poll slot of each `interval_s` (s) that contains `at_s`."""
    return np.floor(at_s / interval_s).astype(np.int64) * interval_s


@dataclass(frozen=True)
class MeterTable:
    """What the state machine knows of each meter (row r of every array is meter r)."""

    meter_ids: list[str]
    institution: list[str]
    interval_s: np.ndarray  # int64, poll interval in s
    rated: np.ndarray  # rated power kW (or flow unit/h); NaN: unknown
    multiplier: np.ndarray  # CT x PT: raw index x multiplier = primary quantity
    rollover_at: np.ndarray  # register maximum of the raw index; NaN: none
    offline_polls: np.ndarray | None = None  # int64 failed polls in a row: offline; None: OFFLINE_POLLS for all

    @classmethod
    def from_meters(cls, meters: Sequence[Any], interval_s: int | None = None,
                    gateway_options: Mapping[str, GatewayOptions] | None = None) -> MeterTable:
        """From registry meters with a `modbus` block; `interval_s` overrides theirs;
        each meter's offline threshold is its gateway's `offline_polls`."""
        opts = gateway_options or {}
        return cls(
            meter_ids=[m.id for m in meters], institution=[m.institution for m in meters],
            interval_s=np.array([int(interval_s or m.modbus.interval_s) for m in meters], dtype=np.int64),
            rated=np.array([m.rated if m.rated else np.nan for m in meters], dtype=float),
            multiplier=np.array([m.multiplier for m in meters], dtype=float),
            rollover_at=np.array([m.rollover_at if m.rollover_at else np.nan for m in meters], dtype=float),
            offline_polls=np.array([options_for(opts, m.modbus.host, m.modbus.port).offline_polls for m in meters],
                                   dtype=np.int64))

    def offline_after(self, rows: np.ndarray) -> np.ndarray:
        """The offline threshold (failed polls in a row) of each of `rows`."""
        if self.offline_polls is None:
            return np.full(len(rows), OFFLINE_POLLS, dtype=np.int64)
        return self.offline_polls[rows]

    def __len__(self) -> int:
        return len(self.meter_ids)

    def rows_of(self, meter_ids: Sequence[str] | pd.Series) -> np.ndarray:
        """Row of each id (-1: not one of ours)."""
        return pd.Index(self.meter_ids).get_indexer(pd.Index(meter_ids))


@dataclass(frozen=True)
class MeterState:
    """Per-meter state, one array entry per row of the `MeterTable`; -1 / NaN: none yet."""

    last_t: np.ndarray  # int64 slot (epoch s) of the baseline: the last good sample
    last_v: np.ndarray  # raw index of the baseline
    fails: np.ndarray  # int64 failed polls in a row
    offline_since: np.ndarray  # int64 epoch s the meter went silent, if it is offline; else -1
    spike_run: np.ndarray  # int64 spikes in a row (a second one is a real jump: the new baseline)
    seen_t: np.ndarray  # int64 last slot answered, flagged or not (>= last_t once set)

    @classmethod
    def empty(cls, n: int) -> MeterState:
        return cls(last_t=np.full(n, -1, dtype=np.int64), last_v=np.full(n, np.nan),
                   fails=np.zeros(n, dtype=np.int64), offline_since=np.full(n, -1, dtype=np.int64),
                   spike_run=np.zeros(n, dtype=np.int64), seen_t=np.full(n, -1, dtype=np.int64))

    def copy(self) -> MeterState:
        return MeterState(**{f.name: getattr(self, f.name).copy() for f in fields(self)})

    def unseeded(self) -> np.ndarray:
        """Rows without a baseline (never answered, nothing restored or seeded)."""
        return np.flatnonzero(self.last_t < 0)

    def frame(self, table: MeterTable, rows: np.ndarray) -> pd.DataFrame:
        """The persisted state (STATE_COLUMNS) of `rows` that have a baseline."""
        rows = np.asarray(rows, dtype=np.int64)
        rows = rows[self.last_t[rows] >= 0]
        return pd.DataFrame({
            "meter_id": np.array(table.meter_ids, dtype=object)[rows], "t": self.last_t[rows],
            "value": np.nan_to_num(self.last_v[rows], nan=0.0), "fails": self.fails[rows],
            "offline_since": self.offline_since[rows], "spike_run": self.spike_run[rows],
            "seen_t": self.seen_t[rows]}, columns=STATE_COLUMNS)


def restore_state(table: MeterTable, saved: pd.DataFrame) -> MeterState:
    """The state persisted by an earlier run (`saved`: STATE_COLUMNS); meters no longer in
    the table are ignored, meters not saved start empty."""
    state = MeterState.empty(len(table))
    if not len(saved):
        return state
    rows = table.rows_of(saved["meter_id"])
    ok = rows >= 0
    r = rows[ok]
    state.last_t[r] = saved["t"].to_numpy(np.int64)[ok]
    state.last_v[r] = saved["value"].to_numpy(float)[ok]
    state.fails[r] = saved["fails"].to_numpy(np.int64)[ok]
    state.offline_since[r] = saved["offline_since"].to_numpy(np.int64)[ok]
    state.spike_run[r] = saved["spike_run"].to_numpy(np.int64)[ok]
    state.seen_t[r] = saved["seen_t"].to_numpy(np.int64)[ok]
    return state


def seed_state(table: MeterTable, state: MeterState, last: pd.DataFrame) -> MeterState:
    """Meters without a baseline take the store's last sample (`last`: meter_id, time
    (tz-aware), raw value) as theirs, so checks and gap attribution continue from the
    stored history (e.g. `civicwatt demo`'s backfill). Others are left as they are."""
    out = state.copy()
    if not len(last):
        return out
    rows = table.rows_of(last["meter_id"])
    t = pd.DatetimeIndex(last["time"]).as_unit("s").asi8
    ok = rows >= 0
    ok[ok] &= out.last_t[rows[ok]] < 0
    out.last_t[rows[ok]] = t[ok]
    out.seen_t[rows[ok]] = t[ok]
    out.last_v[rows[ok]] = last["value"].to_numpy(float)[ok]
    return out


def polls_frame(results: Sequence[tuple]) -> pd.DataFrame:
    """Poll results as the pollers report them, (row, slot t, raw index, instantaneous
    primary kW or unit/h, error or None), as a frame of POLL_COLUMNS."""
    return pd.DataFrame(list(results), columns=POLL_COLUMNS)


@dataclass(frozen=True)
class Step:
    """What one batch of poll results did."""

    state: MeterState  # the new state of every meter
    samples: pd.DataFrame  # SAMPLE_COLUMNS: to queue (raw index; quality flags of storage.quality)
    rollovers: pd.DataFrame  # EVENT_COLUMNS: `rollover` events to queue with the samples
    state_rows: pd.DataFrame  # STATE_COLUMNS of the meters this batch touched, to persist with them
    events: list[dict[str, Any]]  # meter_offline / meter_online alerts (see `meter_event`)
    counts: dict[str, int]  # polls, ok, failed, estimated (filled slots), samples_queued


def step(table: MeterTable, state: MeterState, polls: pd.DataFrame, now: pd.Timestamp,
         offline_after: int | None = None, max_fill_slots: int = MAX_FILL_SLOTS) -> Step:
    """Apply a batch of poll results (POLL_COLUMNS, see `polls_frame`) to `state`.

    `now` (tz-aware) is when the batch is ingested: the `first_seen` of its events.
    `offline_after` overrides every meter's threshold (default: `table.offline_after`).
    Every result ends in exactly one of: a sample at its (meter, slot) with its index
    (ok), or a counted failure; filled slots add ESTIMATED samples.
    """
    out = state.copy()
    polls = polls.sort_values(["t", "row"], kind="stable")
    rows, t = polls["row"].to_numpy(np.int64), polls["t"].to_numpy(np.int64)
    value, power, error = polls["value"].to_numpy(float), polls["power"].to_numpy(float), polls["error"].to_numpy(object)
    ok = pd.isna(error) & np.isfinite(value)
    rnd = polls.groupby("row").cumcount().to_numpy()  # the k-th result of a meter goes in round k
    acc = _Acc(now=now)
    for k in range(int(rnd.max()) + 1 if len(polls) else 0):
        f, a = (rnd == k) & ~ok, (rnd == k) & ok
        _fail(table, out, rows[f], t[f], error[f], offline_after, acc)
        _answer(table, out, rows[a], t[a], value[a], power[a], max_fill_slots, acc)
    samples = _with_ids(table, acc.samples, SAMPLE_COLUMNS)
    rollovers = _with_ids(table, acc.rollovers, EVENT_COLUMNS)
    n_ok = int(ok.sum())
    counts = {"polls": len(polls), "ok": n_ok, "failed": len(polls) - n_ok, "estimated": acc.estimated,
              "samples_queued": len(samples)}
    touched = np.unique(rows)
    return Step(state=out, samples=samples, rollovers=rollovers,
                state_rows=out.frame(table, touched), events=acc.events, counts=counts)


@dataclass
class _Acc:
    """What the rounds of one step have produced so far (frames keyed by row)."""

    now: pd.Timestamp
    samples: list[pd.DataFrame] = field(default_factory=list)
    rollovers: list[pd.DataFrame] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    estimated: int = 0


def _with_ids(table: MeterTable, parts: list[pd.DataFrame], columns: tuple[str, ...]) -> pd.DataFrame:
    """The parts as one frame of `columns`, rows replaced by meter ids."""
    if not parts:
        return pd.DataFrame(columns=list(columns))
    df = pd.concat(parts, ignore_index=True)
    df["meter_id"] = np.array(table.meter_ids, dtype=object)[df["row"].to_numpy(np.int64)]
    return df[list(columns)]


def _fail(table: MeterTable, st: MeterState, rows: np.ndarray, t: np.ndarray, error: np.ndarray,
          offline_after: int | None, acc: _Acc) -> None:
    """Failed polls of `rows` (each at most once) at slots `t`: count them; raise
    `meter_offline` once, at the meter's threshold-th in a row."""
    st.fails[rows] += 1
    n = table.offline_after(rows) if offline_after is None else np.full(len(rows), offline_after, dtype=np.int64)
    newly = (st.fails[rows] >= n) & (st.offline_since[rows] < 0)
    since = t[newly] - (n[newly] - 1) * table.interval_s[rows[newly]]
    st.offline_since[rows[newly]] = since
    acc.events.extend(meter_event(table, "meter_offline", int(r), int(s), None, e, acc.now)
                      for r, s, e in zip(rows[newly], since, error[newly], strict=True))


def _answer(table: MeterTable, st: MeterState, rows: np.ndarray, t: np.ndarray, v: np.ndarray, power: np.ndarray,
            max_fill_slots: int, acc: _Acc) -> None:
    """Answers of `rows` (each at most once) at slots `t`: raw index `v`, instantaneous
    `power` (kW or unit/h): flags, gap attribution, back online, new baseline."""
    if not len(rows):
        return
    last_t, last_v, iv = st.last_t[rows], st.last_v[rows], table.interval_s[rows]
    has_prev = last_t >= 0
    newer = ~has_prev | (t > last_t)
    flags, wrap = validate.check(v, power, np.where(has_prev, last_v, np.nan),
                                 np.where(has_prev, t - last_t, np.nan).astype(float), table.rated[rows],
                                 table.multiplier[rows], table.rollover_at[rows])
    spike = (flags & quality.SPIKE) != 0
    seen = np.maximum(st.seen_t[rows], last_t)
    gap = has_prev & newer & (t - seen > iv)
    # attribute the gap: interpolate the index at every missed slot (from the last good
    # sample to this one, at the slots after the last answered one)
    fill = gap & ~spike & ((flags & quality.DECREASE) == 0) & ~wrap
    if fill.any():
        rep, ft, fv = validate.attribute_gaps(last_t[fill], last_v[fill], seen[fill], t[fill], v[fill], iv[fill],
                                              max_fill_slots)
        if len(ft):
            acc.samples.append(pd.DataFrame({"row": rows[fill][rep], "t": ft, "value": fv,
                                             "quality": np.full(len(ft), quality.ESTIMATED, np.int64)}))
            acc.estimated += len(ft)
    acc.samples.append(pd.DataFrame({"row": rows, "t": t, "value": v,
                                     "quality": np.where(gap, flags | quality.ESTIMATED, flags)}))
    if wrap.any():
        acc.rollovers.append(pd.DataFrame({"row": rows[wrap], "t": t[wrap], "kind": "rollover",
                                           "old_index": table.rollover_at[rows][wrap], "new_index": 0.0}))
    back = st.offline_since[rows] >= 0
    acc.events.extend(meter_event(table, "meter_online", int(r), int(st.offline_since[r]), int(tt), None, acc.now)
                      for r, tt in zip(rows[back], t[back], strict=True))
    st.offline_since[rows] = -1
    st.fails[rows] = 0
    # the new baseline: not a one-off spike (a second spike in a row is a real jump)
    run = np.where(spike, st.spike_run[rows] + 1, 0)
    take = newer & (~spike | (run >= 2))
    st.spike_run[rows] = np.where(take, 0, run)
    st.seen_t[rows] = np.maximum(st.seen_t[rows], t)
    st.last_t[rows[take]] = t[take]
    st.last_v[rows[take]] = v[take]


def meter_event(table: MeterTable, rule: str, row: int, since_s: int, until_s: int | None, error: str | None,
                now: pd.Timestamp) -> dict[str, Any]:
    """A `meter_offline` (warning) or `meter_online` (info) alert of meter `row`: silent
    since `since_s` (epoch s), answering again at `until_s`; `now` is its first_seen."""
    mid = table.meter_ids[row]
    iso = pd.Timestamp(since_s, unit="s", tz="UTC").isoformat()
    if rule == "meter_offline":
        en = f"meter {mid} has not answered since {iso} ({error})"
        zh = f"计量表 {mid} 自 {iso} 起无应答（{error}）"
        severity = "warning"
    else:
        missed = (until_s - since_s) // int(table.interval_s[row]) if until_s else 0
        en = f"meter {mid} answers again; {missed} missed polls since {iso} filled as estimated"
        zh = f"计量表 {mid} 已恢复；自 {iso} 起缺失的 {missed} 次采集已按估算补齐"
        severity = "info"
    return {"rule": rule, "severity": severity, "institution_id": table.institution[row], "meter_id": mid,
            "indicator": "completeness", "period": iso, "since": iso,
            "until": None if until_s is None else pd.Timestamp(until_s, unit="s", tz="UTC").isoformat(),
            "message_en": en, "message_zh": zh, "first_seen": now.isoformat(), "key": f"{rule}:{mid}:{since_s}"}

