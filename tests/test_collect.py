"""Collectors over real TCP: against device_sim and against pymodbus's own simulator."""

from __future__ import annotations

import asyncio
import subprocess
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from collectors import validate
from collectors.decode import plan_reads, profile_plan
from collectors.queue import DiskQueue
from collectors.service import CollectorService
from collectors.shard import gateway_shard, parse_shard
from core.profiles import load_profiles
from device_sim.server import Simulator
from storage import open_store, quality
from tests.servers import free_port
from tests.support_collect import Clock, registry_doc, sim_reading, write_registry


# -- read planning ----------------------------------------------------------------
@settings(max_examples=200, deadline=None)
@given(spans=st.lists(st.tuples(st.integers(0, 300), st.sampled_from([1, 2, 4])), min_size=1, max_size=8),
       limit=st.integers(1, 130))
def test_read_plan_covers_every_register_within_the_limit(spans, limit):
    reads = plan_reads(spans, 3, limit)
    wanted = {a + k for a, n in spans for k in range(n)}
    got = [r.address + k for r in reads for k in range(r.count)]
    assert sorted(got) == sorted(wanted)  # every wanted register exactly once, nothing else
    assert all(1 <= r.count <= min(limit, 125) for r in reads)
    # contiguous registers share a request unless the limit splits them
    assert len(reads) <= len(wanted)
    if limit >= 125 and len(wanted) <= 125 and max(wanted) - min(wanted) + 1 == len(wanted):
        assert len(reads) == 1


def test_profile_plans_read_contiguous_registers_together():
    water = profile_plan("water_ultrasonic")
    assert [(r.address, r.count) for r in water.reads] == [(0, 4)]  # flow + index in one request
    dtsu = profile_plan("dtsu666")
    assert [(r.address, r.count) for r in dtsu.reads] == [(0x2012, 2), (0x401E, 2)]
    assert [(r.address, r.count) for r in dtsu.ratio_reads] == [(0x0006, 2)]  # CT and PT together
    assert [r.count for r in profile_plan("water_ultrasonic", max_registers=1).reads] == [1, 1, 1, 1]


# -- validity checks ----------------------------------------------------------------
def test_validity_flags():
    nan = np.nan
    value = np.array([10.0, 9.0, 100.0, -1.0, 5.0, 12.0, 20.0])
    power = np.array([50.0, 50.0, 50.0, 50.0, 50.0, 200.0, nan])
    prev = np.array([9.0, 10.0, 10.0, nan, 21474830.0, 11.0, nan])
    dt = np.array([900.0, 900.0, 900.0, nan, 900.0, 900.0, nan])
    rated = np.array([100.0, 100.0, 100.0, 100.0, 100.0, 100.0, nan])
    mult = np.ones(7)
    roll = np.array([nan, nan, nan, nan, 21474836.48, nan, nan])
    flags, wrap = validate.check(value, power, prev, dt, rated, mult, roll)
    assert flags.tolist() == [0, quality.DECREASE, quality.SPIKE, quality.NEGATIVE, 0, quality.OUT_OF_RANGE, 0]
    assert wrap.tolist() == [False, False, False, False, True, False, False]
    # 1.5 x rated x interval is the limit: 37.5 kWh in 15 min at 100 kW rated, scaled by the multiplier
    f2, _ = validate.check(np.array([47.4, 47.6]), np.full(2, nan), np.full(2, 10.0), np.full(2, 900.0),
                           np.full(2, 100.0), np.ones(2), np.full(2, nan))
    assert f2.tolist() == [0, quality.SPIKE]
    f3, _ = validate.check(np.array([10.5]), np.array([nan]), np.array([10.0]), np.array([900.0]),
                           np.array([100.0]), np.array([80.0]), np.array([nan]))
    assert f3.tolist() == [quality.SPIKE]  # 0.5 raw x CT 80 = 40 kWh > 37.5


# -- shards -------------------------------------------------------------------------
@settings(max_examples=50, deadline=None)
@given(ports=st.lists(st.integers(1, 65535), min_size=1, max_size=200, unique=True), n=st.integers(1, 9))
def test_shards_cover_every_gateway_once(ports, n):
    owners = [[i for i in range(1, n + 1) if gateway_shard("10.0.0.1", p, n) == i] for p in ports]
    assert all(len(o) == 1 for o in owners)


def test_shard_split_is_stable_and_balanced():
    ports = range(20000, 30000)
    counts = np.bincount([gateway_shard("10.0.0.7", p, 4) for p in ports], minlength=5)[1:]
    assert counts.min() > 2300  # 10,000 gateways over 4 shards: 2,500 each, give or take
    before = {p: gateway_shard("10.0.0.7", p, 4) for p in ports}
    assert before == {p: gateway_shard("10.0.0.7", p, 4) for p in ports}  # stable across calls
    assert parse_shard("2/4") == (2, 4)
    for bad in ("0/4", "5/4", "x", "1/0"):
        with pytest.raises(ValueError):
            parse_shard(bad)


def test_service_shards_partition_the_registry(tmp_path):
    registry, _, _ = write_registry(tmp_path, registry_doc(n_institutions=12))
    store = open_store(f"embedded:{tmp_path / 's'}")
    seen: list[str] = []
    for i in (1, 2, 3):
        svc = CollectorService(registry, store, tmp_path / f"q{i}", shard=(i, 3))
        seen.extend(svc.meter_ids)
        gateways = {(m.modbus.host, m.modbus.port) for m in registry.meters if m.id in set(svc.meter_ids)}
        assert gateways == set(svc.pollers)
    assert sorted(seen) == sorted(m.id for m in registry.meters)


# -- the disk queue -------------------------------------------------------------------
def test_disk_queue_keeps_order_and_survives_reopen(tmp_path):
    q = DiskQueue(tmp_path)
    for k in range(3):
        q.put(pd.DataFrame({"meter_id": ["a", "b"], "t": [k, k], "value": [k, 10 + k], "quality": [0, 0]}))
    q.close()
    q = DiskQueue(tmp_path)
    df, seq = q.peek_samples(4)
    assert df["t"].tolist() == [0, 0, 1, 1] and df["meter_id"].tolist() == ["a", "b", "a", "b"]
    q.ack_samples(seq)
    assert q.backlog() == 2
    assert q.peek_samples(10)[0]["value"].tolist() == [2.0, 12.0]


# -- end to end against device_sim ------------------------------------------------------
@pytest.fixture
def site(tmp_path):
    registry, meters, _ = write_registry(tmp_path, registry_doc(n_institutions=2))
    clock = Clock()
    sim = Simulator(meters, clock=clock).start()
    store = open_store(f"embedded:{tmp_path / 'store'}", tz=registry.timezone)
    store.set_meters(registry.meters_frame())
    yield registry, meters, clock, sim, store
    sim.stop()
    store.close()


def test_collectors_store_what_the_meters_hold(site, tmp_path):
    registry, meters, clock, sim, store = site
    svc = CollectorService(registry, store, tmp_path / "q")
    expected = {}
    slots = []
    for _ in range(3):
        slots.append(int(clock()))
        assert svc.poll_once(at=clock()) == {"polls": len(meters), "ok": len(meters), "failed": 0}
        expected.update({(m["id"], slots[-1]): sim_reading(sim, m, clock()) for m in meters})
        clock.advance(900)
    assert svc.stop(flush_timeout_s=10)
    got = store.read_samples()
    assert len(got) == 3 * len(meters)
    assert (got["quality"] == 0).all()
    for row in got.itertuples():
        assert row.value == pytest.approx(expected[(row.meter_id, int(row.time.timestamp()))], rel=1e-9)
    # CT x PT: the DTSU666 main meter stores the secondary index, the store multiplies by 80
    dtsu = next(m for m in meters if m["profile"] == "dtsu666")
    assert dtsu["multiplier"] == 80
    day = store.consumption("hour", pd.Timestamp(slots[0], unit="s", tz="UTC"),
                            pd.Timestamp(slots[-1] + 1, unit="s", tz="UTC"), [dtsu["id"]])
    primary = (expected[(dtsu["id"], slots[-1])] - expected[(dtsu["id"], slots[0])]) * 80
    assert day["quantity"].sum() == pytest.approx(primary, rel=1e-6)
    assert primary == pytest.approx(sim.power(dtsu["id"], slots[0]) * 0.25
                                    + sim.power(dtsu["id"], slots[1]) * 0.25, rel=0.02)


def test_mbpoll_agrees_with_what_the_collectors_stored(site, tmp_path):
    registry, meters, clock, _sim, store = site
    svc = CollectorService(registry, store, tmp_path / "q")
    svc.poll_once(at=clock())
    assert svc.stop(flush_timeout_s=10)
    stored = store.read_samples().set_index("meter_id")["value"]
    for m in meters[:7]:
        prof = load_profiles()[m["profile"]]
        spec = prof["registers"]["energy"]
        kind = {"float32": "float", "int32": "int", "uint32": "int"}[spec["type"]]
        cmd = ["/usr/bin/mbpoll", "-m", "tcp", "-a", str(m["unit"]), "-p", str(m["port"]),
               "-t", f"{4 if prof['function_code'] == 3 else 3}:{kind}", "-0", "-r", str(spec["address"]),
               "-c", "1", "-1"] + (["-B"] if spec.get("word_order", "big") == "big" else []) + ["127.0.0.1"]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=20, check=True).stdout
        value = float(next(x for x in out.splitlines() if x.startswith("[")).split(":", 1)[1]) * spec["scale"]
        assert value == pytest.approx(stored[m["id"]], rel=1e-6), m["id"]


def test_small_devices_and_pauses(tmp_path):
    """A gateway that rejects reads of more than one register and wants 50 ms between
    requests: the collector, told so, reads every value correctly and never gets busy."""
    registry, meters, _ = write_registry(tmp_path, registry_doc(n_institutions=1))
    port = meters[0]["port"]
    clock = Clock()
    sim = Simulator(meters, clock=clock, gateway_options={port: {"max_registers": 1, "min_pause_s": 0.05}}).start()
    store = open_store(f"embedded:{tmp_path / 'store'}")
    store.set_meters(registry.meters_frame())
    try:
        naive = CollectorService(registry, store, tmp_path / "q0", gateway_options={"*": {"retries": 0}})
        assert naive.poll_once(at=clock())["ok"] == 0  # 2-register reads are refused
        naive.stop(flush_timeout_s=1)
        svc = CollectorService(registry, store, tmp_path / "q1",
                               gateway_options={f"127.0.0.1:{port}": {"max_registers": 1, "pause_s": 0.05,
                                                                      "retries": 0}})
        assert svc.poll_once(at=clock()) == {"polls": len(meters), "ok": len(meters), "failed": 0}
        assert svc.stop(flush_timeout_s=10)
        got = store.read_samples().set_index("meter_id")["value"]
        for m in meters:
            assert got[m["id"]] == pytest.approx(sim_reading(sim, m, clock()), rel=1e-9)
        assert sim.datastores[port].requests > 4 * len(meters)  # one register per request
    finally:
        sim.stop()


# -- against pymodbus's own simulator -----------------------------------------------------
def _pymodbus_device(profile: str, unit: int, values: dict[str, float], ratios: tuple[int, int] | None = None
                     ) -> SimDevice:
    """A pymodbus SimDevice laid out by a profile, encoded by pymodbus itself."""
    prof = load_profiles()[profile]
    types = {"float32": DataType.FLOAT32, "int32": DataType.INT32, "uint32": DataType.UINT32,
             "int16": DataType.INT16, "uint16": DataType.UINT16}
    blocks = []
    for name, spec in prof["registers"].items():
        assert spec.get("word_order", "big") == "big"
        raw = values.get(name, 0.0) / spec.get("scale", 1.0)
        dtype = types[spec["type"]]
        blocks.append(SimData(spec["address"], values=float(raw) if spec["type"].startswith("float") else int(raw),
                              datatype=dtype))
    if ratios:
        blocks.append(SimData(prof["ct_register"]["address"], values=[ratios[0], ratios[1]], datatype=DataType.INT16))
    return SimDevice(id=unit, simdata=blocks)


def test_collectors_against_pymodbus_simulator(tmp_path):
    port = free_port()
    devices = [
        _pymodbus_device("sdm630", 1, {"energy": 12345.5, "power": 4200.0, "energy_total": 12345.5}),
        _pymodbus_device("dtsu666", 2, {"energy": 321.25, "power": 1000.0}, ratios=(40, 10)),
        _pymodbus_device("adl400", 3, {"energy": 98765.43, "power": 15000.0}),
    ]
    loop = asyncio.new_event_loop()
    started = threading.Event()
    holder = {}

    async def serve():
        server = ModbusTcpServer(devices, address=("127.0.0.1", port))
        holder["server"] = server
        await server.serve_forever(background=True)
        started.set()
        await server.serving

    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
    thread.start()
    assert started.wait(10)
    doc = {
        "regions": [{"id": "r", "name": "R"}],
        "institutions": [{"id": "I", "name": "I", "region": "r", "category": "school", "floor_area_m2": 1000,
                          "occupants": 10}],
        "meters": [
            {"id": "SDM", "institution": "I", "energy": "electricity", "rated": 10,
             "modbus": {"port": port, "unit": 1, "profile": "sdm630"}},
            {"id": "DTSU", "institution": "I", "energy": "electricity", "multiplier": 1, "rated": 100,
             "modbus": {"port": port, "unit": 2, "profile": "dtsu666"}},
            {"id": "ADL", "institution": "I", "energy": "electricity", "rated": 20,
             "modbus": {"port": port, "unit": 3, "profile": "adl400"}},
        ],
    }
    registry, _, _ = write_registry(tmp_path, doc)
    store = open_store(f"embedded:{tmp_path / 'store'}")
    store.set_meters(registry.meters_frame())
    try:
        svc = CollectorService(registry, store, tmp_path / "q")
        assert svc.poll_once(at=1767578400) == {"polls": 3, "ok": 3, "failed": 0}
        assert svc.stop(flush_timeout_s=10)
        got = store.read_samples().set_index("meter_id")
        assert got.loc["SDM", "value"] == pytest.approx(12345.5)
        # DTSU666 with CT 40 and PT 10/10 programmed, registry multiplier 1: primary = 321.25 x 40
        assert got.loc["DTSU", "value"] == pytest.approx(321.25 * 40)
        assert got.loc["ADL", "value"] == pytest.approx(98765.43)
        # power 4.2 kW < 1.5 x 10 kW; DTSU 1000 W x CT 40 = 40 kW < 150 kW; ADL 15 kW < 30 kW: plausible
        assert (got["quality"] == 0).all()
    finally:
        loop.call_soon_threadsafe(lambda: asyncio.ensure_future(holder["server"].shutdown()))
        thread.join(10)
        store.close()


def test_live_collection_continues_the_backfilled_history(tmp_path):
    """`civicwatt demo`'s sequence: history into the store, the simulator continuing it,
    the collectors picking up from the stored history."""
    from device_sim.history import end_values, generate_history

    registry, meters, _ = write_registry(tmp_path, registry_doc(n_institutions=1))
    clock = Clock()
    hist = generate_history(meters, pd.Timestamp(clock() - 2 * 86400, unit="s", tz="UTC"),
                            pd.Timestamp(clock() - 3600, unit="s", tz="UTC"), interval_s=3600)
    store = open_store(f"embedded:{tmp_path / 'store'}", tz=registry.timezone)
    store.set_meters(registry.meters_frame())
    store.write_samples(hist)
    sim = Simulator(meters, start_values=end_values(hist), clock=clock).start()
    try:
        svc = CollectorService(registry, store, tmp_path / "q")
        assert svc.poll_once(at=clock())["ok"] == len(meters)
        assert svc.stop(flush_timeout_s=10)
    finally:
        sim.stop()
    live = store.read_samples(pd.Timestamp(clock() - 3600 + 1, unit="s", tz="UTC"))
    # the three 15-min slots after the last hourly history sample are attributed, the poll closes the gap
    assert live.groupby("meter_id").size().eq(4).all()
    assert set(live["quality"]) == {quality.ESTIMATED}  # no DECREASE, no SPIKE: the indices are continuous
    now = live[live["time"] == pd.Timestamp(clock(), unit="s", tz="UTC")].set_index("meter_id")["value"]
    for m in meters:
        assert now[m["id"]] == pytest.approx(sim_reading(sim, m, clock()), rel=1e-9)
    last_hist = end_values(hist).set_index("meter_id")["value"]
    assert (now - last_hist[now.index] > 0).all()


def test_gateway_options_file_errors_name_file_line_and_field(tmp_path):
    from civicwatt.commands.collect import load_gateway_options
    from core.yamlfile import ConfigError

    good = tmp_path / "gw.yaml"
    good.write_text('"*": {timeout_s: 0.5}\n"10.0.0.1:502": {max_registers: 4, pause_s: 0.1}\n')
    assert load_gateway_options(good) == {"*": {"timeout_s": 0.5}, "10.0.0.1:502": {"max_registers": 4,
                                                                                     "pause_s": 0.1}}
    bad = tmp_path / "bad.yaml"
    bad.write_text('"*":\n  timeout_s: fast\n  colour: 3\nnot-a-gateway: {retries: 1}\n')
    with pytest.raises(ConfigError) as err:
        load_gateway_options(bad)
    assert [(p.file, p.line, p.field) for p in err.value.problems] == [
        (str(bad), 2, "*.timeout_s"), (str(bad), 3, "*.colour"), (str(bad), 4, "not-a-gateway")]


@settings(max_examples=200, deadline=None)
@given(t0=st.integers(0, 10**6), lag=st.integers(0, 5), missed=st.integers(0, 40),
       iv=st.sampled_from([60, 300, 900]), v0=st.floats(0, 1e6), rate=st.floats(0, 100))
def test_gap_attribution_is_linear_over_the_missed_slots(t0, lag, missed, iv, v0, rate):
    t0 = t0 * iv
    seen = t0 + lag * iv  # flagged answers after the last good one are not refilled
    t1 = seen + (missed + 1) * iv
    v1 = v0 + rate * (t1 - t0)
    rep, slot, value = validate.attribute_gaps(np.array([t0]), np.array([v0]), np.array([seen]), np.array([t1]),
                                               np.array([v1]), np.array([iv]), 10**6)
    assert slot.tolist() == list(range(seen + iv, t1, iv))
    assert (rep == 0).all()
    assert value == pytest.approx(v0 + rate * (slot - t0), rel=1e-9, abs=1e-6)
    capped = validate.attribute_gaps(np.array([t0]), np.array([v0]), np.array([seen]), np.array([t1]),
                                     np.array([v1]), np.array([iv]), 3)[1]
    assert len(capped) == min(3, missed)


@settings(max_examples=200, deadline=None)
@given(prev_frac=st.floats(0.9, 0.99999), inc=st.floats(0.01, 1000.0), rated=st.floats(10.0, 1e4))
def test_a_wrap_at_the_register_maximum_is_a_rollover_not_a_decrease(prev_frac, inc, rated):
    roll = 21474836.48
    prev = roll * prev_frac
    value = (prev + inc) % roll
    dt = 3600.0 * inc / rated  # exactly the energy the rated power gives: plausible
    flags, wrap = validate.check(np.array([value]), np.array([np.nan]), np.array([prev]), np.array([dt]),
                                 np.array([rated]), np.array([1.0]), np.array([roll]))
    assert flags.tolist() == [0]
    assert wrap.tolist() == [prev + inc >= roll]


def test_a_growing_queue_warns_but_keeps_everything(tmp_path, caplog):
    q = DiskQueue(tmp_path, warn_rows=10, min_free_bytes=2**62)  # more free space than any disk has
    rows = pd.DataFrame({"meter_id": ["m"] * 6, "t": range(6), "value": np.arange(6.0), "quality": [0] * 6})
    with caplog.at_level("WARNING", logger="civicwatt.collect"):
        for k in range(20):
            q.put(rows.assign(t=rows["t"] + 6 * k))
    messages = [r.getMessage() for r in caplog.records]
    assert sum("queue holds" in m for m in messages) == 2  # at 10 rows and at 100, not at every put
    assert sum("free on the disk" in m for m in messages) == 1
    assert q.backlog() == 120
    df, _ = q.peek_samples(1000)
    assert df["t"].tolist() == list(range(120))


def test_two_shards_fill_one_influxdb_without_gap_or_overlap(tmp_path, influx_store):
    registry, meters, _ = write_registry(tmp_path, registry_doc(n_institutions=6))
    clock = Clock()
    influx_store.set_meters(registry.meters_frame())
    with Simulator(meters, clock=clock) as sim:
        shards = [CollectorService(registry, influx_store, tmp_path / f"q{i}", shard=(i, 2)) for i in (1, 2)]
        assert sum(len(s.meter_ids) for s in shards) == len(meters)  # six gateways split over the two
        for svc in shards:
            assert svc.poll_once(at=clock())["failed"] == 0
            assert svc.stop(flush_timeout_s=20)
        got = influx_store.read_samples()
        assert sorted(got["meter_id"]) == sorted(m["id"] for m in meters)  # each meter exactly once
        for r in got.itertuples():
            m = next(x for x in meters if x["id"] == r.meter_id)
            assert r.value == pytest.approx(sim_reading(sim, m, clock()), rel=1e-9)


def test_collectors_against_the_pymodbus_simulator_command(tmp_path):
    """pymodbus's own simulator program (`pymodbus.simulator`), configured with the
    SDM630 register map; its energy register counts up by one on every read."""
    import json
    import os
    import shutil
    import socket
    import sys
    import time

    exe = shutil.which("pymodbus.simulator") or str(Path(sys.executable).with_name("pymodbus.simulator"))
    modbus_port, http_port = free_port(), free_port()
    while http_port == modbus_port:
        http_port = free_port()
    sdm = load_profiles()["sdm630"]["registers"]

    def f32(name, value, action=None):
        a = sdm[name]["address"]
        return {"addr": [a, a + 1], "value": value, "action": action}

    none = {k: None for k in ("bits", "uint16", "uint32", "float32", "float64", "string")}
    config = {
        "server_list": {"server": {"comm": "tcp", "host": "127.0.0.1", "port": modbus_port,
                                   "ignore_missing_devices": False, "framer": "socket"}},
        "device_list": {"device": {
            "setup": {"co size": 16, "di size": 16, "hr size": 400, "ir size": 400, "shared blocks": True,
                      "type exception": False,
                      "defaults": {"value": {"bits": 0, "uint16": 0, "uint32": 0, "float32": 0.0, "float64": 0.0,
                                             "string": " "}, "action": none}},
            "invalid": [], "write": [], "bits": [], "uint16": [], "uint32": [], "float64": [], "string": [],
            "repeat": [],
            "float32": [f32("energy", 12345.5, "increment"), f32("power", 4200.0), f32("energy_total", 12345.5)],
        }},
    }
    cfg = tmp_path / "pymodbus-sim.json"
    cfg.write_text(json.dumps(config))
    proc = subprocess.Popen([exe, "--json_file", str(cfg), "--modbus_server", "server", "--modbus_device", "device",
                             "--http_host", "127.0.0.1", "--http_port", str(http_port), "--log", "error"],
                            cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "PYTHONWARNINGS": "ignore"})
    try:
        deadline = time.monotonic() + 20
        while True:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", modbus_port)) == 0:
                    break
            assert time.monotonic() < deadline and proc.poll() is None, "pymodbus.simulator did not start"
            time.sleep(0.1)
        doc = {"regions": [{"id": "r", "name": "R"}],
               "institutions": [{"id": "I", "name": "I", "region": "r", "category": "venue", "floor_area_m2": 500,
                                 "occupants": 5}],
               "meters": [{"id": "SDM", "institution": "I", "energy": "electricity", "rated": 10,
                           "modbus": {"port": modbus_port, "unit": 1, "profile": "sdm630"}}]}
        registry, _, _ = write_registry(tmp_path, doc)
        store = open_store(f"embedded:{tmp_path / 'store'}")
        store.set_meters(registry.meters_frame())
        svc = CollectorService(registry, store, tmp_path / "q")
        for slot in (1767578400, 1767579300):
            assert svc.poll_once(at=slot) == {"polls": 1, "ok": 1, "failed": 0}
        assert svc.stop(flush_timeout_s=10)
        got = store.read_samples()
        assert got["value"].tolist() == [12346.5, 12347.5]  # one read of the index per poll
        assert (got["quality"] == 0).all()
        out = subprocess.run(["/usr/bin/mbpoll", "-m", "tcp", "-a", "1", "-p", str(modbus_port), "-t", "3:float",
                              "-B", "-0", "-r", str(sdm["energy"]["address"]), "-c", "1", "-1", "127.0.0.1"],
                             capture_output=True, text=True, timeout=20, check=True).stdout
        assert float(next(x for x in out.splitlines() if x.startswith("[")).split(":", 1)[1]) == 12348.5
        store.close()
    finally:
        proc.terminate()
        proc.wait(20)
