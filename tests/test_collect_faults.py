"""Collectors facing faulty meters and gateways (device_sim faults over real TCP)."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from collectors.service import CollectorService
from device_sim.server import Simulator
from storage import open_store, quality
from tests.support_collect import Clock, registry_doc, sim_reading, write_registry

FAST = {"*": {"timeout_s": 0.3, "retries": 1, "backoff_s": 0.02}}
# a timeout long enough that a loaded machine's healthy cycle stays well below one
SLOW_DEAD = {"*": {"timeout_s": 2.0, "retries": 1, "backoff_s": 0.02}}


@pytest.fixture
def rig(tmp_path):
    def make(n_institutions=1, start_values=None, gateway_options=FAST):
        registry, meters, _ = write_registry(tmp_path, registry_doc(n_institutions=n_institutions))
        clock = Clock()
        sim = Simulator(meters, clock=clock, start_values=start_values).start()
        store = open_store(f"embedded:{tmp_path / 'store'}", tz=registry.timezone)
        store.set_meters(registry.meters_frame())
        events: list[dict] = []
        svc = CollectorService(registry, store, tmp_path / "q", gateway_options=gateway_options,
                               on_event=events.append)
        made.append((sim, svc, store))
        return registry, meters, clock, sim, svc, store, events

    made: list = []
    yield make
    for sim, svc, store in made:
        svc.stop(flush_timeout_s=5)
        sim.stop()
        store.close()


def test_dead_and_failing_units_do_not_delay_healthy_ones(rig):
    _, meters, clock, sim, svc, store, events = rig(gateway_options=SLOW_DEAD)
    ids = [m["id"] for m in meters]
    dead, failing = "HB-0001-E2", "HB-0001-E3"
    healthy = [i for i in ids if i not in (dead, failing)]
    slots, expected = [], {}
    for k in range(7):
        if k == 1:
            sim.inject(dead, "offline")
            sim.inject(failing, "exception", code=4)
        if k == 6:
            sim.clear()  # both come back
        slots.append(int(clock()))
        started = time.perf_counter()
        got = svc.poll_once(at=clock())
        elapsed = time.perf_counter() - started
        expected.update({(m["id"], slots[-1]): sim_reading(sim, m, clock()) for m in meters})
        assert got["ok"] == (len(ids) if k in (0, 6) else len(healthy))
        # on time: a dead unit costs one timeout and one retry (4 s) in the first cycle, at most
        # one timeout after (a cycle that retried it would take 4 s)
        assert elapsed < (5.5 if k == 1 else 3.5), (k, elapsed)
        clock.advance(900)
    assert svc.flush(10)
    samples = store.read_samples()
    for mid in healthy:
        mine = samples[samples["meter_id"] == mid]
        assert [int(t.timestamp()) for t in mine["time"]] == slots
        assert (mine["quality"] == 0).all()
        assert mine["value"].to_numpy() == pytest.approx([expected[(mid, s)] for s in slots], rel=1e-9)
    # the gap of the dead unit is attributed when it returns: linear in the index, estimated
    for mid in (dead, failing):
        mine = samples[samples["meter_id"] == mid].reset_index(drop=True)
        assert [int(t.timestamp()) for t in mine["time"]] == slots
        assert mine["quality"].tolist() == [0] + [quality.ESTIMATED] * 6
        v0, v6 = expected[(mid, slots[0])], expected[(mid, slots[6])]
        assert mine["value"].to_numpy() == pytest.approx(np.linspace(v0, v6, 7), rel=1e-9)
    rules = [(e["rule"], e["meter_id"]) for e in events]
    assert sorted(rules) == sorted([("meter_offline", dead), ("meter_offline", failing),
                                    ("meter_online", dead), ("meter_online", failing)])
    offline = next(e for e in events if e["rule"] == "meter_offline" and e["meter_id"] == dead)
    assert offline["since"] == pd.Timestamp(slots[1], unit="s", tz="UTC").isoformat()
    assert "exception 4" in next(e for e in events if e["meter_id"] == failing)["message_en"]
    day = store.consumption("hour", pd.Timestamp(slots[0], unit="s", tz="UTC"),
                            pd.Timestamp(slots[6], unit="s", tz="UTC"), [dead])
    assert day["estimated_share"].max() == pytest.approx(1.0)


def test_a_hung_gateway_is_reconnected_without_stalling_the_others(rig):
    _, meters, clock, sim, svc, store, _ = rig(n_institutions=2)
    port_a = meters[0]["port"]
    on_a = [m["id"] for m in meters if m["port"] == port_a]
    on_b = [m["id"] for m in meters if m["port"] != port_a]
    svc.poll_once(at=clock())
    sim.inject_gateway(port_a, "hang", duration_s=2000)
    for _ in range(2):
        clock.advance(900)
        started = time.perf_counter()
        got = svc.poll_once(at=clock())
        assert got["ok"] == len(on_b)
        assert time.perf_counter() - started < 3.0  # fail fast after 3 timeouts, not 7 x (timeout + retry)
    clock.advance(900)  # the hang is over
    poller = svc.pollers[("127.0.0.1", port_a)]
    reconnects = poller.reconnects
    assert svc.poll_once(at=clock())["ok"] == len(meters)
    assert poller.reconnects > reconnects
    assert svc.flush(10)
    samples = store.read_samples()
    assert samples.groupby("meter_id").size().to_dict() == {m: 4 for m in on_a + on_b}
    assert (samples[samples["meter_id"].isin(on_b)]["quality"] == 0).all()


def test_counter_reset_rollover_and_spikes_are_flagged(rig):
    _, meters, clock, sim, svc, store, _ = rig(n_institutions=3)
    adl = next(m for m in meters if m["profile"] == "adl400")
    roll = 21474836.48
    sim.inject(adl["id"], "rollover", margin=1.0)  # the ADL400 index is 1 kWh short of its maximum
    water = "HB-0001-W0"
    light = "HB-0001-E1"
    for k in range(4):
        if k == 1:
            sim.inject(water, "spike", duration_s=60, amount=5000.0)
            sim.inject(light, "reset")
        svc.poll_once(at=clock())
        clock.advance(900)
    assert svc.flush(10)
    s = store.read_samples()
    q = {mid: g["quality"].tolist() for mid, g in s.groupby("meter_id")}
    assert q[water] == [0, quality.SPIKE, 0, 0]  # a glitch: the next sample is compared with the last good one
    assert q[light] == [0, quality.DECREASE, 0, 0]  # reset to zero: flagged once, then the new baseline
    assert q[adl["id"]] == [0, 0, 0, 0]  # a wrap at the register maximum is no fault
    ev = store.read_events([adl["id"]])
    assert ev["kind"].tolist() == ["rollover"]
    assert ev["old_index"].iloc[0] == pytest.approx(roll)
    adl_s = s[s["meter_id"] == adl["id"]]["value"].to_numpy()
    assert adl_s[0] > roll - 1.01 and adl_s[1] < 500  # it wrapped between the 1st and 2nd poll
    hours = store.consumption("hour", pd.Timestamp(int(clock()) - 3600, unit="s", tz="UTC"),
                              pd.Timestamp(int(clock()), unit="s", tz="UTC"), [adl["id"]])
    wrapped_use = (adl_s[1] + roll - adl_s[0]) * adl["multiplier"]
    assert wrapped_use == pytest.approx(sim.power(adl["id"], int(clock()) - 3600) / 4, rel=0.05)
    assert hours["quantity"].sum() == pytest.approx((adl_s[3] - adl_s[0] + roll) * adl["multiplier"], rel=1e-6)


def test_scheduler_polls_every_slot(tmp_path):
    registry, meters, _ = write_registry(tmp_path, registry_doc(n_institutions=1))
    sim = Simulator(meters).start()
    store = open_store(f"embedded:{tmp_path / 'store'}")
    store.set_meters(registry.meters_frame())
    svc = CollectorService(registry, store, tmp_path / "q", interval_s=1)
    try:
        svc.start()
        time.sleep(4.2)
    finally:
        assert svc.stop(flush_timeout_s=10)
        sim.stop()
    s = store.read_samples()
    for _, g in s.groupby("meter_id"):
        t = np.array([int(x.timestamp()) for x in g["time"]])
        assert len(t) >= 3
        assert (np.diff(t) == 1).all()  # every 1-s slot, none missed, none twice
    assert s["meter_id"].nunique() == len(meters)
    assert not svc.scheduler.running  # stop() shut the scheduler down


def test_slow_unit_goes_last_and_parallel_connections(rig):
    opts = {"*": {"timeout_s": 0.5, "retries": 0, "connections": 2}}
    _, meters, clock, sim, svc, store, _ = rig(gateway_options=opts)
    slow = "HB-0001-W0"  # flow and index in one request
    sim.inject(slow, "slow", delay_s=0.3)
    poller = next(iter(svc.pollers.values()))
    assert len(poller._conns) == 2
    first = svc.poll_once(at=clock())
    assert first["ok"] == len(meters)  # 0.3 s is slow but inside the timeout
    target = next(t for t in poller.targets if t.meter_id == slow)
    assert target.slow
    order: list[str] = []
    real = poller._read_target

    async def spy(conn, t):
        order.append(t.meter_id)
        return await real(conn, t)

    poller._read_target = spy
    clock.advance(900)
    started = time.perf_counter()
    assert svc.poll_once(at=clock())["ok"] == len(meters)
    assert order[-1] == slow  # the slow unit is read after every healthy one
    # the slow unit costs its own 0.3 s once per cycle, and delays no one
    assert time.perf_counter() - started < 0.55
    assert svc.flush(10)
    assert len(store.read_samples()) == 2 * len(meters)


def test_a_refused_queue_commit_keeps_the_samples_and_retries(rig):
    import sqlite3

    _, meters, clock, sim, svc, store, _ = rig()
    real_put = svc.queue.put
    refusals = []

    def disk_full_once(*args, **kwargs):
        if not refusals:
            refusals.append(1)
            raise sqlite3.OperationalError("database or disk is full")  # what SQLite says on ENOSPC
        return real_put(*args, **kwargs)

    svc.queue.put = disk_full_once
    first_slot = int(clock())
    expected = {m["id"]: sim_reading(sim, m, clock()) for m in meters}
    svc.poll_once(at=clock())  # polled, but the commit is refused: kept in memory
    assert svc.queue.backlog() == 0 and refusals
    clock.advance(900)
    svc.poll_once(at=clock())  # the retry commits both slots, validated as if nothing happened
    assert svc.flush(10)
    s = store.read_samples()
    assert len(s) == 2 * len(meters)
    assert (s["quality"] == 0).all()
    first = s[s["time"] == s["time"].min()].set_index("meter_id")["value"]
    assert int(s["time"].min().timestamp()) == first_slot
    for m in meters:
        assert first[m["id"]] == pytest.approx(expected[m["id"]], rel=1e-9)
