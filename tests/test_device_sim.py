"""device_sim: register encoding, the load model, history, and the Modbus TCP server."""

from __future__ import annotations

import asyncio
import math
import struct
import subprocess
import time

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pymodbus.client import AsyncModbusTcpClient

from collectors.decode import decode
from core.profiles import load_profiles
from device_sim import codec
from device_sim.history import end_values, generate_history
from device_sim.load import STEP_S, MeterModel
from device_sim.server import Simulator
from tests.support_collect import T0, Clock, registry_doc, sim_reading, write_registry

ORDERS = [("big", "big"), ("little", "big"), ("big", "little"), ("little", "little")]


# -- encoding -------------------------------------------------------------------
@pytest.mark.parametrize(("word", "byte", "regs"), [
    ("big", "big", [0x3F80, 0x0000]),  # ABCD
    ("little", "big", [0x0000, 0x3F80]),  # CDAB
    ("big", "little", [0x803F, 0x0000]),  # BADC
    ("little", "little", [0x0000, 0x803F]),  # DCBA
])
def test_float32_word_and_byte_orders(word, byte, regs):
    spec = {"type": "float32", "word_order": word, "byte_order": byte}
    assert codec.encode(1.0, spec) == regs
    assert decode(regs, spec) == 1.0


@settings(max_examples=300, deadline=None)
@given(dtype=st.sampled_from(["int16", "uint16", "int32", "uint32", "float32", "float64"]),
       order=st.sampled_from(ORDERS), scale=st.sampled_from([1.0, 0.1, 0.01, 1000.0]),
       x=st.floats(min_value=0, max_value=30000, allow_nan=False))
def test_encode_decode_round_trip(dtype, order, scale, x):
    spec = {"type": dtype, "word_order": order[0], "byte_order": order[1], "scale": scale}
    lo, hi = {"int16": (-32768, 32767), "uint16": (0, 65535), "int32": (-2**31, 2**31 - 1),
              "uint32": (0, 2**32 - 1)}.get(dtype, (-math.inf, math.inf))
    if not lo <= x / scale <= hi:
        return
    regs = codec.encode(x, spec)
    assert len(regs) == codec.words_of(dtype)
    assert all(0 <= r <= 0xFFFF for r in regs)
    got = decode(regs, spec)
    assert got == pytest.approx(codec.served_value(x, spec), rel=1e-12, abs=1e-12)
    # independent check of the integer/float packing against struct
    if dtype == "uint32" and order == ("big", "big"):
        assert (regs[0] << 16 | regs[1]) == int(x / scale)
    if dtype == "float64" and order == ("big", "big"):
        assert struct.unpack(">d", b"".join(r.to_bytes(2, "big") for r in regs))[0] == x / scale


def test_integer_registers_wrap_like_meters():
    spec = {"type": "int32", "scale": 0.01}
    assert decode(codec.encode(21474836.47, spec), spec) == pytest.approx(21474836.47)
    assert decode(codec.encode(21474836.48, spec), spec) == pytest.approx(-21474836.48)


# -- load model and history ---------------------------------------------------------
@pytest.fixture(scope="module")
def portfolio(tmp_path_factory):
    return write_registry(tmp_path_factory.mktemp("reg"), registry_doc(n_institutions=8))


def _power_at(meters, ids, when):
    model = MeterModel(meters)
    t = pd.Timestamp(when, tz="Asia/Shanghai").timestamp()
    p = model.power(np.array([int(t // STEP_S)]))[:, 0]
    return dict(zip([m["id"] for m in meters], p, strict=True))


def test_load_shapes_follow_calendar_and_weather(portfolio):
    _, meters, _ = portfolio
    gov = "HB-0001-E0"  # sample: institution 1 is a government office
    assert next(m for m in meters if m["id"] == gov)["category"] == "government"
    workday = _power_at(meters, [gov], "2025-09-30 10:00")[gov]
    night = _power_at(meters, [gov], "2025-09-30 03:00")[gov]
    holiday = _power_at(meters, [gov], "2025-10-02 10:00")[gov]  # National Day holiday
    makeup = _power_at(meters, [gov], "2025-09-28 10:00")[gov]  # Sunday, a make-up working day
    sunday = _power_at(meters, [gov], "2025-09-21 10:00")[gov]
    assert workday > 2.5 * night
    assert workday > 2.5 * holiday
    assert makeup > 2.5 * sunday
    gas = [m["id"] for m in meters if m["energy"] == "natural_gas" and m["heating"]]
    winter = _power_at(meters, gas, "2026-01-12 10:00")
    summer = _power_at(meters, gas, "2025-07-14 10:00")
    assert all(winter[g] > 4 * summer[g] for g in gas)


def test_sub_meters_add_up_to_their_parent(portfolio):
    _, meters, _ = portfolio
    model = MeterModel(meters)
    steps = np.arange(int(T0 // STEP_S), int(T0 // STEP_S) + 96 * 7)
    p = model.power(steps)
    ids = [m["id"] for m in meters]
    for m in meters:
        if m["energy"] == "electricity" and m["subitem"] == "total":
            kids = [ids.index(c["id"]) for c in meters if c.get("parent") == m["id"]]
            assert kids
            ratio = p[ids.index(m["id"])] / p[kids].sum(axis=0)
            np.testing.assert_allclose(ratio, 1.06, rtol=1e-9)


def test_history_is_cumulative_and_consistent_with_power(portfolio):
    _, meters, _ = portfolio
    hist = generate_history(meters, "2025-12-01", "2026-01-31", interval_s=3600, seed=3)
    assert set(hist["meter_id"]) == {m["id"] for m in meters}
    assert (hist["quality"] == 64).all()
    wide = hist.pivot(index="time", columns="meter_id", values="value")
    assert (wide.diff().iloc[1:] >= -1e-9).all().all()  # no rollover in two months
    assert len(wide) == 61 * 24 + 1
    # the index increase equals the integral of the modelled power
    model = MeterModel(meters, seed=3)
    t_a = pd.Timestamp("2026-01-10 00:00", tz="Asia/Shanghai").timestamp()
    t_b = pd.Timestamp("2026-01-11 07:00", tz="Asia/Shanghai").timestamp()
    inc = model.integrate(np.full(len(meters), t_a), t_b)
    got = (wide.loc[pd.Timestamp(t_b, unit="s", tz="UTC")] - wide.loc[pd.Timestamp(t_a, unit="s", tz="UTC")])
    np.testing.assert_allclose(got[[m["id"] for m in meters]].to_numpy(), inc, rtol=2e-6, atol=0.02)


def test_history_of_the_sample_portfolio_is_fast(tmp_path):
    _, meters, _ = write_registry(tmp_path, registry_doc(n_institutions=30))
    started = time.perf_counter()
    hist = generate_history(meters, "2025-10-01", "2026-11-05", interval_s=3600)
    elapsed = time.perf_counter() - started
    assert hist["meter_id"].nunique() == len(meters) > 150
    assert len(hist) == len(meters) * (400 * 24 + 1)  # 400 days, both ends included
    assert elapsed < 20, f"400 days took {elapsed:.1f}s"


def test_simulator_continues_where_history_ends(portfolio):
    _, meters, _ = portfolio
    end = pd.Timestamp("2026-01-05 09:00", tz="Asia/Shanghai")
    hist = generate_history(meters, "2025-12-20", end, interval_s=900, seed=5)
    longer = generate_history(meters, "2025-12-20", end + pd.Timedelta(hours=5), interval_s=900, seed=5)
    at = (end + pd.Timedelta(hours=5)).timestamp()
    sim = Simulator(meters, seed=5, start_values=end_values(hist), clock=lambda: at)
    expected = longer[longer["time"] == pd.Timestamp(at, unit="s", tz="UTC")].set_index("meter_id")["value"]
    for m in meters:
        assert sim.index(m["id"]) == pytest.approx(expected[m["id"]], rel=1e-6, abs=0.02), m["id"]


# -- serving over TCP ---------------------------------------------------------------
@pytest.fixture
def served(tmp_path):
    doc = registry_doc(n_institutions=2)
    _, meters, _ = write_registry(tmp_path, doc)
    clock = Clock()
    sim = Simulator(meters, clock=clock).start()
    yield sim, meters, clock
    sim.stop()


def _mbpoll(meter, register: str = "energy") -> float:
    prof = load_profiles()[meter["profile"]]
    spec = prof["registers"][register]
    table = "4" if int(prof["function_code"]) == 3 else "3"
    kind = {"float32": "float", "int32": "int", "uint32": "int"}[spec["type"]]
    cmd = ["/usr/bin/mbpoll", "-m", "tcp", "-a", str(meter["unit"]), "-p", str(meter["port"]), "-t",
           f"{table}:{kind}", "-0", "-r", str(spec["address"]), "-c", "1", "-1"]
    if spec.get("word_order", "big") == "big":
        cmd.append("-B")
    cmd.append("127.0.0.1")
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=20, check=True).stdout
    line = next(x for x in out.splitlines() if x.startswith("["))
    return float(line.split(":", 1)[1]) * float(spec.get("scale", 1.0))


def test_mbpoll_reads_what_the_simulator_holds(served):
    sim, meters, clock = served
    seen = set()
    for m in meters:
        if m["profile"] in seen:
            continue
        seen.add(m["profile"])
        value = _mbpoll(m)
        expected = sim_reading(sim, m, clock())
        assert value == pytest.approx(expected, rel=1e-6), m["id"]
        assert value > 0
    assert seen == {"dtsu666", "ddsu666", "sdm630", "water_ultrasonic", "gas_gateway"}
    dtsu = next(m for m in meters if m["profile"] == "dtsu666")
    assert _mbpoll(dtsu, "power") == pytest.approx(sim.power(dtsu["id"]) * 1000 / dtsu["multiplier"], rel=1e-5)


async def _read(port, unit, address, count, fc=3, timeout=1.0):
    client = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=timeout, retries=0, reconnect_delay=0)
    await client.connect()
    try:
        fn = client.read_holding_registers if fc == 3 else client.read_input_registers
        return await fn(address, count=count, device_id=unit)
    finally:
        client.close()


def test_faults_injected_at_run_time(served):
    sim, meters, clock = served
    water = next(m for m in meters if m["profile"] == "water_ultrasonic")
    spec = load_profiles()["water_ultrasonic"]["registers"]["energy"]
    port, unit = water["port"], water["unit"]
    rr = asyncio.run(_read(port, unit, 2, 2))
    before = decode(rr.registers, spec)
    assert before > 0

    fault = sim.inject(water["id"], "exception", code=4)
    rr = asyncio.run(_read(port, unit, 2, 2))
    assert rr.isError() and rr.exception_code == 4
    sim.clear(water["id"])
    assert fault.kind == "exception"

    sim.inject(water["id"], "offline", duration_s=60)
    with pytest.raises(Exception):  # noqa: B017 - pymodbus raises its IO exception on timeout
        asyncio.run(_read(port, unit, 2, 2, timeout=0.3))
    clock.advance(61)  # the fault ends
    assert not asyncio.run(_read(port, unit, 2, 2)).isError()

    sim.inject(water["id"], "spike", duration_s=30, amount=5000.0)
    spiked = decode(asyncio.run(_read(port, unit, 2, 2)).registers, spec)
    assert spiked == pytest.approx(sim_reading(sim, water, clock()), rel=1e-6)
    assert spiked > before + 4999
    clock.advance(31)
    sim.inject(water["id"], "reset")
    clock.advance(900)
    after_reset = decode(asyncio.run(_read(port, unit, 2, 2)).registers, spec)
    assert 0 <= after_reset < before / 10
    assert after_reset == pytest.approx(sim.power(water["id"]) * 900 / 3600, rel=1e-3)

    sim.inject(water["id"], "slow", delay_s=0.3)
    started = time.perf_counter()
    assert not asyncio.run(_read(port, unit, 2, 2)).isError()
    assert time.perf_counter() - started >= 0.3


def test_gateway_limits_like_small_devices(tmp_path):
    _, meters, _ = write_registry(tmp_path, registry_doc(n_institutions=1))
    water = next(m for m in meters if m["profile"] == "water_ultrasonic")
    sim = Simulator(meters, clock=Clock(), gateway_options={water["port"]: {"max_registers": 2, "min_pause_s": 0.2}})
    with sim:
        assert asyncio.run(_read(water["port"], water["unit"], 0, 4)).exception_code == 3  # too long a read

        async def two_quick_reads():
            client = AsyncModbusTcpClient("127.0.0.1", port=water["port"], timeout=1, retries=0, reconnect_delay=0)
            await client.connect()
            first = await client.read_holding_registers(2, count=2, device_id=water["unit"])
            second = await client.read_holding_registers(2, count=2, device_id=water["unit"])
            await asyncio.sleep(0.25)
            third = await client.read_holding_registers(2, count=2, device_id=water["unit"])
            client.close()
            return first, second, third

        first, second, third = asyncio.run(two_quick_reads())
        assert not first.isError() and second.exception_code == 6 and not third.isError()
        with pytest.raises(Exception):  # noqa: B017 - no meter at unit 99: no answer, like an RTU bus
            asyncio.run(_read(water["port"], 99, 2, 2, timeout=0.3))


def test_simulate_command_with_a_fault_script(tmp_path):
    import os
    import sys
    from pathlib import Path

    from civicwatt.commands.simulate import load_fault_script
    from core.yamlfile import ConfigError

    _, meters, path = write_registry(tmp_path, registry_doc(n_institutions=1))
    bad = tmp_path / "bad.yaml"
    bad.write_text("- {meter: HB-0001-E0, kind: offline}\n- meter: NOPE\n  kind: offline\n"
                   "- {meter: HB-0001-E1, kind: melt}\n- {meter: HB-0001-E1, kind: slow, delay_s: -1}\n")
    with pytest.raises(ConfigError) as err:
        load_fault_script(bad, {m["id"] for m in meters})
    assert [(p.line, p.field) for p in err.value.problems] == [(2, "[1].meter"), (4, "[2].kind"),
                                                               (5, "[3].delay_s")]
    faults = tmp_path / "faults.yaml"
    faults.write_text("- {meter: HB-0001-E2, kind: exception, code: 6}\n")
    repo = Path(__file__).resolve().parent.parent
    proc = subprocess.Popen([sys.executable, "-m", "civicwatt.cli", "simulate", "--registry", str(path),
                             "--faults", str(faults)], cwd=repo, env={**os.environ, "PYTHONPATH": str(repo)},
                            stdout=subprocess.PIPE, text=True)
    try:
        assert "7 meters behind 1 gateways" in proc.stdout.readline()
        assert _mbpoll(meters[0]) > 0
        failing = next(m for m in meters if m["id"] == "HB-0001-E2")
        with pytest.raises(subprocess.CalledProcessError):
            _mbpoll(failing)
    finally:
        proc.terminate()
        assert proc.wait(20) == 0


def test_simulator_index_is_the_same_looking_back(portfolio):
    _, meters, _ = portfolio
    clock = Clock()
    sim = Simulator(meters, clock=clock)
    earlier = {m["id"]: sim.index(m["id"]) for m in meters}
    t_then = clock()
    clock.advance(3 * 3600 + 123)
    later = {m["id"]: sim.index(m["id"]) for m in meters}  # the simulator moves on
    for m in meters:
        assert sim.index(m["id"], t_then) == pytest.approx(earlier[m["id"]], rel=1e-9)
        assert later[m["id"]] > earlier[m["id"]]


def test_heating_gas_follows_the_regions_heating_season():
    base = {"energy": "natural_gas", "heating": True, "category": "government", "rated": 100.0}
    meters = [{**base, "id": "north"}, {**base, "id": "late", "heating_season": {"start": "12-01", "end": "02-28"}}]
    model = MeterModel(meters)
    t = pd.Timestamp("2025-11-25 10:00", tz="Asia/Shanghai").timestamp()  # in Hebei's season, not in the late one
    p = model.power(np.array([int(t // STEP_S)]))[:, 0]
    assert p[0] > 5 * p[1]
    t = pd.Timestamp("2026-01-20 10:00", tz="Asia/Shanghai").timestamp()  # both heat in January
    p = model.power(np.array([int(t // STEP_S)]))[:, 0]
    assert p[0] == pytest.approx(p[1], rel=0.35)
