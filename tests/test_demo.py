"""`civicwatt demo` end to end: history, simulator, collectors, dashboard, Ctrl-C."""

from __future__ import annotations

import re
import signal

import httpx
import pandas as pd
import pytest

from core.registry import load_registry
from storage import open_store
from tests.support_demo import GATEWAYS, DemoProcess
from tests.support_web import login


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_demo_runs_serves_and_stops_cleanly(tmp_path, stop):
    demo = DemoProcess("--dir", str(tmp_path / "demo"), "--days", "3")
    web, modbus = demo.web, demo.modbus
    try:
        out = demo.wait_ready()
        assert f"ports {modbus}-{modbus + GATEWAYS - 1}" in out
        password = re.search(r"user admin, password (\S+)", out).group(1)

        with httpx.Client(base_url=f"http://127.0.0.1:{web}", follow_redirects=False, timeout=30) as client:
            assert client.get("/").status_code in (302, 401)  # nothing without logging in
            assert login(client, "admin", "wrong").status_code == 401
            ok = login(client, "admin", password)
            assert ok.status_code == 302
            page = client.get("/")
            assert page.status_code == 200 and "CivicWatt" in page.text
            ledger = client.get("/download/ledger", params={"year": pd.Timestamp.now().year, "format": "csv"})
            assert ledger.status_code == 200
            header = ledger.text.lstrip("\ufeff").splitlines()[0]  # BOM: Excel reads it as UTF-8
            assert header.startswith("institution_id,name,region,category,year,energy,quantity,unit,kgce,scope")
            assert "HB-0001" in ledger.text
    finally:
        code = demo.stop(stop)
    out = demo.output
    assert code == 0, out
    assert "stopped; everything collected is in the store." in out

    registry = load_registry(tmp_path / "demo" / "civicwatt.yaml")
    store = open_store(f"embedded:{tmp_path / 'demo' / 'data'}", tz=registry.timezone)
    store.set_meters(registry.meters_frame())
    samples = store.read_samples()
    assert set(samples["meter_id"]) == {m.id for m in registry.meters}
    per_meter = samples.groupby("meter_id").size()
    assert per_meter.min() >= 3 * 24 * 4 - 1  # three days at the 15-minute poll interval
    day = pd.Timestamp.now(tz=registry.timezone).normalize() - pd.Timedelta(days=1)
    daily = store.consumption("day", day, day + pd.Timedelta(days=1))
    main = daily[daily["meter_id"] == "HB-0001-E0"]["quantity"].iloc[0]
    assert 100 < main < 100_000  # kWh per day of an office building, CT multiplier applied
