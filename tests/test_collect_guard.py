"""Collector faults (issue 15 item 6): started while InfluxDB is down, a second collector on
one queue directory, a full disk under the queue."""

from __future__ import annotations

import errno
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from collectors.queue import LOCK_FILE, DiskQueue, QueueBusy
from collectors.service import CollectorService
from core.health import assess
from device_sim.server import Simulator
from storage import open_store
from tests.servers import Influxd
from tests.support_collect import Clock, registry_doc, write_registry

REPO = Path(__file__).resolve().parent.parent


def test_collector_started_while_influxd_is_down_creates_its_database(tmp_path):
    registry, meters, _ = write_registry(tmp_path, registry_doc(n_institutions=1))
    clock = Clock()
    sim = Simulator(meters, clock=clock).start()
    influxd = Influxd()  # not started: nothing listens on its port yet
    store = open_store(influxd.url("late"), tz=registry.timezone)  # opens without the server
    store.set_meters(registry.meters_frame())
    svc = CollectorService(registry, store, tmp_path / "q")
    try:
        for _ in range(3):
            assert svc.poll_once(at=clock())["ok"] == len(meters)
            clock.advance(900)
        assert svc.queue.backlog() == 3 * len(meters)
        influxd.start()  # a fresh server: no database yet
        assert svc.flush(60)  # the same collector, not restarted
        assert len(store.read_samples()) == 3 * len(meters)
        # the database dropped under a running collector (an influxd restarted empty): created again
        list(store.query('DROP DATABASE "late"'))
        assert svc.poll_once(at=clock())["ok"] == len(meters)
        assert svc.flush(60)
        assert len(store.read_samples()) == len(meters)
    finally:
        svc.stop(flush_timeout_s=5)
        svc.close()
        sim.stop()
        store.close()
        influxd.cleanup()


def test_one_collector_per_queue_directory(tmp_path):
    q = tmp_path / "q"
    first = DiskQueue(q, exclusive=True)
    with pytest.raises(QueueBusy, match=f"pid {os.getpid()}"):
        DiskQueue(q, exclusive=True)
    assert DiskQueue(q).backlog() == 0  # a reader needs no lock
    first.close()
    DiskQueue(q, exclusive=True).close()  # released on close


def test_a_second_collector_process_exits_naming_the_holder(tmp_path, capsys):
    from civicwatt.cli import main

    _, _, path = write_registry(tmp_path, registry_doc(n_institutions=1))
    queue, store = tmp_path / "queue", f"embedded:{tmp_path / 'data'}"
    argv = ["collect", "--registry", str(path), "--store", store, "--queue", str(queue), "--no-alerts"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    first = subprocess.Popen([sys.executable, "-m", "civicwatt.cli", *argv], cwd=tmp_path, env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not ((queue / LOCK_FILE).exists() and (queue / LOCK_FILE).read_text().strip() == str(first.pid)):
            assert first.poll() is None and time.monotonic() < deadline, "the first collector did not start"
            time.sleep(0.1)
        assert main(argv) == 1
        err = capsys.readouterr().err
        assert f"in use by another collector (pid {first.pid})" in err and "--queue" in err
    finally:
        first.kill()
        first.wait(10)


def test_a_full_disk_under_the_queue_is_held_bounded_and_counted(tmp_path, caplog):
    registry, meters, _ = write_registry(tmp_path, registry_doc(n_institutions=1))
    n = len(meters)
    clock = Clock()
    sim = Simulator(meters, clock=clock).start()
    store = open_store(f"embedded:{tmp_path / 'data'}", tz=registry.timezone)
    store.set_meters(registry.meters_frame())
    svc = CollectorService(registry, store, tmp_path / "q")
    svc._ingester.max_held = 2 * n  # memory holds two polls of every meter
    put = svc.queue.put

    def disk_full(*args, **kw):
        raise OSError(errno.ENOSPC, "No space left on device")

    try:
        assert svc.poll_once(at=clock())["ok"] == n  # a first sample of every meter
        clock.advance(900)
        svc.queue.put = disk_full
        with caplog.at_level(logging.WARNING, logger="civicwatt.collect"):
            for _ in range(4):
                assert svc.poll_once(at=clock())["polls"] == 0  # nothing committed: counts unchanged
                clock.advance(900)
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        errors = [r for r in caplog.records if r.levelno == logging.ERROR]
        assert len(warnings) == 1 and "held in memory" in warnings[0].getMessage()
        assert f"{n} samples wait in the queue" in warnings[0].getMessage()
        assert not any(r.exc_info for r in caplog.records)  # no traceback
        assert len(errors) == 2 and all("dropped" in r.getMessage() for r in errors)  # polls 3 and 4: one each
        health = svc.health()
        assert (health["held_in_memory"], health["dropped"]) == (2 * n, 2 * n)
        verdict = assess({"state": "running", "updated_at": "2099-01-01T00:00:00Z", "collect": health},
                         now=time.time())
        assert not verdict["ok"] and any("dropped" in p for p in verdict["problems"])
        svc.queue.put = put  # space again: what memory held is committed with the next poll
        assert svc.poll_once(at=clock())["ok"] == 3 * n
        assert svc.health()["held_in_memory"] == 0
        assert svc.flush(30)
        got = store.read_samples()
        assert len(got) == 6 * n  # the first poll, the 2 dropped slots (estimated), the 2 held polls and this one
        # per meter: the 2 dropped slots filled, and the first sample after them closing the gap, flagged estimated
        assert int(got["quality"].ne(0).sum()) == 3 * n
    finally:
        svc.stop(flush_timeout_s=5)
        svc.close()
        sim.stop()
        store.close()
