"""The collectors' per-meter state machine (collectors.meter_state), without sockets or threads."""

from __future__ import annotations

import dataclasses
import itertools
from collections import Counter

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collectors.meter_state import (
    MeterState,
    MeterTable,
    polls_frame,
    restore_state,
    seed_state,
    slot_s,
    step,
)
from collectors.queue import DiskQueue
from storage import quality

IV = 900
T0 = 1767578400  # 2026-01-05 02:00 UTC, a multiple of 900 s
NOW = pd.Timestamp("2026-01-05 12:00", tz="UTC")
nan = float("nan")


def table(n: int = 1, rated: float = nan, rollover_at: float = nan, multiplier: float = 1.0) -> MeterTable:
    return MeterTable(meter_ids=[f"M{i}" for i in range(n)], institution=[f"I{i}" for i in range(n)],
                      interval_s=np.full(n, IV, np.int64), rated=np.full(n, rated), multiplier=np.full(n, multiplier),
                      rollover_at=np.full(n, rollover_at))


def ok(k: int, value: float, row: int = 0, power: float = nan) -> tuple:
    return (row, T0 + k * IV, value, power, None)


def fail(k: int, row: int = 0, error: str = "no answer (TimeoutError)") -> tuple:
    return (row, T0 + k * IV, nan, nan, error)


def run(tab: MeterTable, results: list[tuple], state: MeterState | None = None, **kw):
    return step(tab, state if state is not None else MeterState.empty(len(tab)), polls_frame(results), NOW, **kw)


def chain(tab: MeterTable, results: list[tuple], **kw):
    """One step per result: the state after each, and every step."""
    state, steps = MeterState.empty(len(tab)), []
    for r in results:
        out = run(tab, [r], state, **kw)
        state = out.state
        steps.append(out)
    return state, steps


def iso(k: int) -> str:
    return pd.Timestamp(T0 + k * IV, unit="s", tz="UTC").isoformat()


# -- examples ---------------------------------------------------------------------------
def test_a_first_answer_is_the_baseline_and_one_sample():
    out = run(table(), [ok(0, 100.0)])
    assert out.samples.to_dict("records") == [{"meter_id": "M0", "t": T0, "value": 100.0, "quality": 0}]
    assert (out.state.last_t[0], out.state.last_v[0], out.state.seen_t[0]) == (T0, 100.0, T0)
    assert out.counts == {"polls": 1, "ok": 1, "failed": 0, "estimated": 0, "samples_queued": 1}
    assert out.state_rows.to_dict("records") == [{"meter_id": "M0", "t": T0, "value": 100.0, "fails": 0,
                                                  "offline_since": -1, "spike_run": 0, "seen_t": T0}]
    assert out.events == []


def test_offline_once_after_n_failures_since_the_first_missed_slot_then_the_gap_is_filled():
    tab = table()
    state, steps = chain(tab, [ok(0, 100.0), fail(1), fail(2), fail(3), fail(4)])
    assert [len(s.events) for s in steps] == [0, 0, 0, 1, 0]  # at the 3rd failure in a row, once
    off = steps[3].events[0]
    assert (off["rule"], off["severity"], off["meter_id"], off["institution_id"]) == (
        "meter_offline", "warning", "M0", "I0")
    assert off["since"] == iso(1) and off["key"] == f"meter_offline:M0:{T0 + IV}"
    assert "TimeoutError" in off["message_en"] and off["first_seen"] == NOW.isoformat()
    assert all(len(s.samples) == 0 and s.counts["failed"] == 1 for s in steps[1:])
    assert (state.fails[0], state.offline_since[0]) == (4, T0 + IV)
    back = run(tab, [ok(6, 160.0)], state)
    # slots 1..5 interpolated between 100 at slot 0 and 160 at slot 6; the new sample estimated too
    assert back.samples["t"].tolist() == [T0 + k * IV for k in range(1, 7)]
    assert back.samples["value"].tolist() == pytest.approx([110.0, 120.0, 130.0, 140.0, 150.0, 160.0])
    assert back.samples["quality"].tolist() == [quality.ESTIMATED] * 6
    assert back.counts == {"polls": 1, "ok": 1, "failed": 0, "estimated": 5, "samples_queued": 6}
    [online] = back.events
    assert (online["rule"], online["since"], online["until"]) == ("meter_online", iso(1), iso(6))
    assert "5 missed polls" in online["message_en"]
    assert (back.state.fails[0], back.state.offline_since[0], back.state.last_v[0]) == (0, -1, 160.0)


def test_a_short_gap_is_filled_without_an_offline_event():
    state, _ = chain(table(), [ok(0, 10.0), fail(1), fail(2)])
    out = run(table(), [ok(3, 40.0)], state)
    assert out.samples["value"].tolist() == pytest.approx([20.0, 30.0, 40.0])
    assert out.events == [] and out.state.offline_since[0] == -1


def test_failures_after_an_answer_in_one_batch_count_in_slot_order():
    """A batch that holds several polls of one meter (a retried commit) is applied in slot
    order: one offline event, and the meter stays offline."""
    out = run(table(), [fail(3), ok(0, 5.0), fail(2), fail(1)])
    assert [e["rule"] for e in out.events] == ["meter_offline"]
    assert out.events[0]["since"] == iso(1)
    assert (out.state.fails[0], out.state.offline_since[0], out.state.last_t[0]) == (3, T0 + IV, T0)
    assert out.counts == {"polls": 4, "ok": 1, "failed": 3, "estimated": 0, "samples_queued": 1}


def test_a_one_off_spike_is_not_the_next_baseline_two_in_a_row_are():
    tab = table(rated=10.0)  # at most 1.5 x 10 kW x 0.25 h = 3.75 kWh per slot
    values = [100.0, 200.0, 101.0, 300.0, 400.0, 401.0]
    _, steps = chain(tab, [ok(k, v) for k, v in enumerate(values)])
    flags = [int(s.samples["quality"].iloc[0]) for s in steps]
    # 200: spike; 101 vs 100 is fine; 300: spike; 400: a second spike in a row, the new baseline; 401 vs 400 fine
    assert flags == [0, quality.SPIKE, 0, quality.SPIKE, quality.SPIKE, 0]
    assert [int(s.state.last_v[0]) for s in steps] == [100, 100, 101, 101, 400, 401]


def test_a_wrap_is_a_rollover_event_and_a_fall_is_a_decrease_never_filled():
    wrap = run(table(rollover_at=1000.0), [ok(1, 2.0)], run(table(rollover_at=1000.0), [ok(0, 999.0)]).state)
    assert wrap.samples["quality"].tolist() == [0]
    assert wrap.rollovers.to_dict("records") == [{"meter_id": "M0", "t": T0 + IV, "kind": "rollover",
                                                  "old_index": 1000.0, "new_index": 0.0}]
    fell = run(table(), [ok(4, 50.0)], run(table(), [ok(0, 100.0)]).state)  # after 3 missed slots
    assert fell.samples["quality"].tolist() == [quality.DECREASE | quality.ESTIMATED]  # the gap is not filled
    assert fell.counts["estimated"] == 0 and len(fell.rollovers) == 0


def test_a_step_leaves_its_input_state_unchanged():
    """What a refused queue commit relies on: the caller keeps the old state."""
    state, _ = chain(table(2), [ok(0, 1.0), ok(0, 2.0, row=1), fail(1), fail(2)])
    before = state.copy()
    out = run(table(2), [fail(3), ok(3, 9.0, row=1)], state)
    assert out.state.fails[0] == 3 and before.fails[0] == 2
    for f in dataclasses.fields(MeterState):
        np.testing.assert_array_equal(getattr(state, f.name), getattr(before, f.name), err_msg=f.name)


def test_state_survives_the_disk_queue_and_seeding_only_fills_the_unseeded(tmp_path):
    tab = table(3)
    state, _ = chain(tab, [ok(0, 7.5), fail(1), ok(0, 3.0, row=1)])
    q = DiskQueue(tmp_path)
    q.put(pd.DataFrame(columns=["meter_id", "t", "value", "quality"]), None, state.frame(tab, np.arange(3)))
    saved = q.load_state()
    assert sorted(saved["meter_id"]) == ["M0", "M1"]  # M2 has no baseline: nothing to keep
    bigger = MeterTable(**{**tab.__dict__, "meter_ids": ["M1", "NEW", "M0"]})  # another order, a new meter
    back = restore_state(bigger, saved)
    assert back.last_v.tolist()[::2] == [3.0, 7.5] and back.fails.tolist() == [0, 0, 1]
    assert back.unseeded().tolist() == [1]
    last = pd.DataFrame({"meter_id": ["M0", "NEW"], "time": pd.to_datetime([T0 + 5 * IV] * 2, unit="s", utc=True),
                         "value": [99.0, 42.0]})
    seeded = seed_state(bigger, back, last)
    assert seeded.last_v.tolist() == [3.0, 42.0, 7.5]  # M0 keeps its queue state; NEW takes the store's
    assert seeded.seen_t[1] == T0 + 5 * IV and back.last_t[1] == -1


def test_poll_slots():
    assert slot_s(T0 + 899.9, np.array([900, 60, 3600])).tolist() == [T0, T0 + 840, T0]


# -- properties ---------------------------------------------------------------------------
PROPERTY_TABLE = MeterTable(meter_ids=["plain", "rated", "wraps"], institution=["I"] * 3,
                            interval_s=np.array([IV, IV, 60], np.int64), rated=np.array([nan, 5.0, nan]),
                            multiplier=np.array([1.0, 80.0, 1.0]), rollover_at=np.array([nan, nan, 50.0]))

result = st.tuples(st.integers(0, 2),  # meter row
                   st.integers(0, 3),  # slots since that meter's previous result (0: the same slot again)
                   st.sampled_from(["ok", "ok", "ok", "error", "nan"]),
                   st.floats(-3.0, 20.0))  # index change


@st.composite
def sequences(draw) -> list[tuple]:
    """Poll results in time order: each meter's slots never go back."""
    slot = [0, 0, 0]
    index = [10.0, 10.0, 40.0]
    out = []
    for row, skip, kind, change in draw(st.lists(result, max_size=40)):
        slot[row] += skip
        t = T0 + slot[row] * int(PROPERTY_TABLE.interval_s[row])
        if kind == "ok":
            index[row] = max(0.0, index[row] + change)
            if row == 2:
                index[row] %= 50.0
            out.append((row, t, index[row], nan, None))
        else:
            out.append((row, t, nan, nan, "Modbus exception 4" if kind == "error" else None))
    return out


@settings(max_examples=150)
@given(results=sequences())
def test_every_poll_result_is_one_queued_sample_or_one_counted_failure(results):
    out = run(PROPERTY_TABLE, results)
    answered = [(PROPERTY_TABLE.meter_ids[r], t, v) for r, t, v, _, e in results if e is None and np.isfinite(v)]
    assert out.counts["polls"] == len(results)
    assert out.counts["ok"] == len(answered) and out.counts["failed"] == len(results) - len(answered)
    queued = Counter(zip(out.samples["meter_id"], out.samples["t"], out.samples["value"], strict=True))
    for key in answered:  # every answer is queued, with the index it returned
        assert queued[key] > 0, key
        queued[key] -= 1
    extra = out.samples.set_index(["meter_id", "t", "value"]).index.isin(list(+queued))
    fills = out.samples[extra]
    # whatever else is queued is a filled slot: estimated, at a slot no answer of that meter has
    assert sum(queued.values()) == out.counts["estimated"] == len(fills)
    assert (fills["quality"] == quality.ESTIMATED).all()
    assert not set(zip(fills["meter_id"], fills["t"], strict=True)) & {(m, t) for m, t, _ in answered}
    assert out.counts["samples_queued"] == len(out.samples) == len(answered) + out.counts["estimated"]


@settings(max_examples=150)
@given(results=sequences(), cuts=st.lists(st.integers(0, 40), max_size=4))
def test_any_split_into_batches_gives_the_same_samples_events_and_state(results, cuts):
    whole = run(PROPERTY_TABLE, results)
    state, parts = MeterState.empty(3), []
    bounds = [0, *sorted(c for c in cuts if c <= len(results)), len(results)]
    for a, b in itertools.pairwise(bounds):
        parts.append(run(PROPERTY_TABLE, results[a:b], state))
        state = parts[-1].state
    for f in dataclasses.fields(MeterState):
        np.testing.assert_array_equal(getattr(state, f.name), getattr(whole.state, f.name), err_msg=f.name)

    def rows(frames: list[pd.DataFrame]) -> list[tuple]:
        return sorted(map(tuple, pd.concat(frames).itertuples(index=False)))

    assert rows([p.samples for p in parts]) == rows([whole.samples])
    assert rows([p.rollovers for p in parts]) == rows([whole.rollovers])
    assert sorted(e["key"] for p in parts for e in p.events) == sorted(e["key"] for e in whole.events)
    assert {k: sum(p.counts[k] for p in parts) for k in whole.counts} == whole.counts
    persisted = pd.concat([p.state_rows for p in parts]).drop_duplicates("meter_id", keep="last")
    assert rows([persisted]) == rows([whole.state_rows])  # what the queue holds at the end
