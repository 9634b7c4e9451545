"""`civicwatt demo` end to end: history, simulator, collectors, dashboard, Ctrl-C."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
import threading
import time

import httpx
import pandas as pd
import pytest

from core.registry import load_registry
from storage import open_store
from tests.servers import free_port
from tests.support_web import login

GATEWAYS = 30  # one Modbus port per sample institution


def free_port_range(n: int) -> int:
    """A base port with n free consecutive ports after it."""
    for _ in range(50):
        base = free_port()
        if base + n >= 65000:
            continue
        socks = []
        try:
            for p in range(base, base + n):
                s = socket.socket()
                s.bind(("127.0.0.1", p))
                socks.append(s)
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no free port range")


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_demo_runs_serves_and_stops_cleanly(tmp_path, stop):
    web = free_port()
    modbus = free_port_range(GATEWAYS)
    proc = subprocess.Popen(
        [sys.executable, "-m", "civicwatt.cli", "demo", "--dir", str(tmp_path / "demo"), "--days", "3",
         "--port", str(web), "--modbus-port", str(modbus)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not any("Ctrl-C stops everything" in x for x in lines):
            assert proc.poll() is None, "".join(lines)
            time.sleep(0.2)
        out = "".join(lines)
        assert "Ctrl-C stops everything" in out, out
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
        proc.send_signal(stop)
        code = proc.wait(timeout=60)
        reader.join(5)
    out = "".join(lines)
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
