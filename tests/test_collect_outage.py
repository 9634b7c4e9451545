"""No sample lost: a store outage during collection, and a collector killed with SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from collectors.queue import DiskQueue
from collectors.service import CollectorService
from device_sim.server import Simulator
from storage import open_store, quality
from tests.servers import Influxd
from tests.support_collect import Clock, registry_doc, sim_reading, write_registry

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def influxd():
    server = Influxd()
    server.start()
    yield server
    server.cleanup()


def test_influxd_stopped_during_collection_loses_nothing(tmp_path, influxd):
    registry, meters, _ = write_registry(tmp_path, registry_doc(n_institutions=2))
    clock = Clock()
    sim = Simulator(meters, clock=clock).start()
    store = open_store(influxd.url("outage"), tz=registry.timezone)
    store.set_meters(registry.meters_frame())
    svc = CollectorService(registry, store, tmp_path / "q")
    expected = {}
    try:
        for k in range(8):
            if k == 3:
                assert svc.flush(15)
                influxd.stop()  # the store goes away mid-collection
            if k == 6:
                assert svc.queue.backlog() == 3 * len(meters)  # polling went on; the queue holds it
                influxd.start()  # same data directory and port
            assert svc.poll_once(at=clock())["ok"] == len(meters)
            expected.update({(m["id"], int(clock())): sim_reading(sim, m, clock()) for m in meters})
            clock.advance(900)
        assert svc.flush(60)
    finally:
        svc.stop(flush_timeout_s=5)
        sim.stop()
    got = store.read_samples()
    keys = [(r.meter_id, int(r.time.timestamp())) for r in got.itertuples()]
    assert len(keys) == len(set(keys)) == len(expected)  # every expected sample, none twice
    assert set(keys) == set(expected)
    assert (got["quality"] == 0).all()
    for r in got.itertuples():
        assert r.value == pytest.approx(expected[(r.meter_id, int(r.time.timestamp()))], rel=1e-9)
    store.close()


def _collector(registry_path: Path, url: str, queue: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "civicwatt.cli", "collect", "--registry", str(registry_path), "--store", url,
           "--queue", str(queue), "--interval", "1"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _wait_for(predicate, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_collector_killed_with_sigkill_resumes_from_its_queue(tmp_path, influxd):
    registry, meters, path = write_registry(tmp_path, registry_doc(n_institutions=1))
    sim = Simulator(meters).start()  # real time: the collector runs in another process
    url = influxd.url("sigkill")
    store = open_store(url, tz=registry.timezone)
    queue = tmp_path / "queue"
    first = _collector(path, url, queue)
    try:
        _wait_for(lambda: len(store.read_samples()) >= 2 * len(meters), 30)
        influxd.stop()  # from now on samples can only wait in the queue
        time.sleep(2.5)
        first.kill()  # SIGKILL: no cleanup, no flush
        first.wait(10)
        waiting = DiskQueue(queue).backlog()
        assert waiting >= 2 * len(meters)
        time.sleep(1.5)  # the collector is down for a while: slots are missed
        influxd.start()
        second = _collector(path, url, queue)
        try:
            _wait_for(lambda: DiskQueue(queue).backlog() == 0 and len(store.read_samples()) > 0, 30)
            time.sleep(2.0)
        finally:
            second.send_signal(signal.SIGINT)  # Ctrl-C flushes
            out, _ = second.communicate(timeout=60)
        assert second.returncode == 0, out
        assert "queue empty" in out
    finally:
        if first.poll() is None:
            first.kill()
        sim.stop()
    got = store.read_samples()
    assert got["meter_id"].nunique() == len(meters)
    for mid, g in got.groupby("meter_id"):
        t = np.array([int(x.timestamp()) for x in g["time"]])
        assert (np.diff(t) == 1).all(), mid  # every 1-s slot from first to last, none twice
        assert len(t) >= 8
        q = g["quality"].to_numpy()
        # what the killed collector had queued arrived as measured; the slots it was down for are estimated
        assert (q == 0).sum() >= waiting // len(meters) + 2
        assert ((q & quality.ESTIMATED) != 0).sum() >= 1
        assert set(np.unique(q)) <= {0, quality.ESTIMATED}
        assert (np.diff(g["value"].to_numpy()) >= 0).all()
    store.close()
