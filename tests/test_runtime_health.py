"""Heartbeats (core.health): atomic files, the stalled and stale rules at read time, the
sections the collector service and the alert service put in them."""

from __future__ import annotations

import json
import os
import threading
import time

import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from alerts.channels import ChannelsConfig
from alerts.outbox import Outbox
from alerts.service import QUOTA_EVERY_S, AlertService
from collectors.service import CollectorService
from core.health import STALL_INTERVALS, Heartbeat, assess, healthy, iso, read_heartbeats, write_heartbeat
from device_sim.server import Simulator
from quotas.config import QuotaConfig, Target
from tests.support_collect import registry_doc, write_registry
from tests.support_ledger_world import open_world

T = 1_800_000_000.0


def doc(**kw) -> dict:
    base = {"format": 1, "name": "collect", "role": "collect", "pid": 0, "host": "elsewhere",
            "started_at": iso(T), "updated_at": iso(T), "state": "running", "heartbeat_s": 30,
            "collect": {"meters": 10, "poll_interval_s": 900, "last_poll_ok_at": iso(T)}}
    base.update(kw)
    return base


@given(since=st.floats(0, 10_000), interval=st.sampled_from([60, 300, 900]))
def test_polling_is_stalled_after_more_than_three_intervals_without_a_successful_poll(since, interval):
    d = doc(updated_at=iso(T + since), collect={"meters": 5, "poll_interval_s": interval, "last_poll_ok_at": iso(T)})
    got = assess(d, now=T + since)
    assert got["stalled"] == (since > STALL_INTERVALS * interval)
    assert got["ok"] == (not got["stalled"])  # the file itself is fresh


def test_the_rules_that_make_a_heartbeat_not_ok():
    assert assess(doc(), now=T + 60)["ok"]
    # never a successful poll: counted from the start
    never = assess(doc(collect={"meters": 3, "poll_interval_s": 60, "last_poll_ok_at": None},
                       updated_at=iso(T + 200)), now=T + 200)
    assert never["stalled"] and "no successful poll yet" in never["problems"][0]
    # a process that stopped writing (hung or killed on another host): stale after 3 intervals
    stale = assess(doc(collect={"meters": 3, "poll_interval_s": 60, "last_poll_ok_at": iso(T)}), now=T + 181)
    assert stale["stale"] and not stale["ok"] and stale["age_s"] == 181
    # a clean stop is never a problem, however old
    assert assess(doc(state="stopped"), now=T + 10**6)["ok"]
    # no meters (a shard without gateways, a server): nothing to stall; a server is stale after 3 heartbeats
    server = doc(role="serve", collect=None, heartbeat_s=10)
    assert assess(server, now=T + 29)["ok"] and not assess(server, now=T + 31)["ok"]
    # a failed alert run is reported but is not a stall
    failed = assess(doc(alerts={"enabled": True, "last_run_ok": False, "error": "boom"}), now=T + 1)
    assert failed["ok"] and failed["problems"] == ["last alert run failed: boom"]


def test_a_dead_pid_on_this_host_is_stale_at_once(tmp_path):
    import socket
    import subprocess
    import sys

    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    got = assess(doc(pid=p.pid, host=socket.gethostname(), updated_at=iso(time.time())))
    assert got["stale"] and f"process {p.pid} is not running" in got["problems"][0]
    alive = assess(doc(pid=os.getpid(), host=socket.gethostname(), updated_at=iso(time.time()),
                       collect={"meters": 1, "poll_interval_s": 900, "last_poll_ok_at": iso(time.time())}))
    assert alive["ok"]


def test_writes_are_atomic_under_a_concurrent_reader(tmp_path):
    """A reader never sees half a document, however often the writer replaces it."""
    big = {"collect": {"pad": "x" * 200_000}}
    stop = threading.Event()

    def writer() -> None:
        n = 0
        while not stop.is_set():
            write_heartbeat(tmp_path, "w", {**doc(updated_at=iso(time.time())), **big, "n": n})
            n += 1

    t = threading.Thread(target=writer)
    t.start()
    try:
        seen = set()
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            for h in read_heartbeats(tmp_path):
                assert "unreadable" not in " ".join(h["problems"]), h["problems"]
                seen.add(h["n"])
    finally:
        stop.set()
        t.join()
    assert len(seen) > 5
    assert [p.name for p in tmp_path.iterdir()] == ["w.json"]  # no temporary file left behind


def test_an_unreadable_file_is_reported_not_raised(tmp_path):
    (tmp_path / "broken.json").write_text('{"name": "bro', encoding="utf-8")
    write_heartbeat(tmp_path, "good", doc(updated_at=iso(time.time()), collect=None))
    got = {h["name"]: h for h in read_heartbeats(tmp_path)}
    assert got["good"]["ok"] and not got["broken"]["ok"]
    assert not healthy(got.values()) and healthy([got["good"]])
    assert read_heartbeats(tmp_path / "none") == []


@settings(max_examples=25, deadline=None)
@given(sections=st.dictionaries(st.sampled_from(["collect", "alerts", "jobs"]),
                                st.dictionaries(st.text(min_size=1, max_size=5), st.integers()), max_size=3))
def test_a_heartbeat_round_trips_its_sections(tmp_path_factory, sections):
    d = tmp_path_factory.mktemp("hb")
    hb = Heartbeat(d, "x", "collect")
    for k, v in sections.items():
        hb.set(k, v)
    hb.beat()
    back = json.loads((d / "x.json").read_text(encoding="utf-8"))
    assert {k: back[k] for k in sections} == sections
    assert back["pid"] == os.getpid() and back["state"] == "running"


def test_the_collector_service_fills_its_section(tmp_path):
    registry, meters, _ = write_registry(tmp_path, registry_doc(n_institutions=1, interval_s=60))
    sim = Simulator(meters).start()
    from storage import open_store

    store = open_store(f"embedded:{tmp_path / 'data'}", tz=registry.timezone)
    store.set_meters(registry.meters_frame())
    hb = Heartbeat(tmp_path / "health", "collect", "collect")
    svc = CollectorService(registry, store, tmp_path / "q", heartbeat=hb)
    try:
        hb.beat()
        before = json.loads(hb.path.read_text(encoding="utf-8"))["collect"]
        assert before["last_poll_ok_at"] is None and before["meters"] == len(meters)
        assert before["poll_interval_s"] == 60
        counts = svc.poll_once()
        hb.beat()
        after = read_heartbeats(tmp_path / "health")[0]["collect"]
        assert after["ok"] == counts["ok"] == len(meters) and after["polls"] == len(meters)
        assert after["last_poll_ok_at"] is not None and after["queue_backlog"] + after["sent"] == len(meters)
    finally:
        svc.stop(flush_timeout_s=5)
        sim.stop()
        store.close()


def test_scheduled_checks_run_quota_rules_at_start_on_a_new_day_and_hourly(tmp_path):
    registry, store, _, _ = open_world(tmp_path)
    cfg = QuotaConfig(targets=(Target(id="g1", year=2024, institution="G1", limits={"energy_tce": 100}),))
    clock = [T]
    hb = Heartbeat(tmp_path / "health", "collect", "collect")
    upkeep = []
    svc = AlertService(store, registry, cfg, Outbox(tmp_path / "box", ChannelsConfig()), heartbeat=hb,
                       before_check=lambda: upkeep.append(1), clock=lambda: clock[0])

    def run() -> str:
        svc.scheduled_check()
        return json.loads(hb.path.read_text(encoding="utf-8"))["alerts"]["rules"]

    try:
        assert run() == "all"  # at start-up
        clock[0] += 900
        assert run() == "meter"
        clock[0] += QUOTA_EVERY_S
        assert run() == "all"  # an hour on
        clock[0] += 60
        assert run() == "meter"
        local = pd.Timestamp(clock[0], unit="s", tz="UTC").tz_convert(registry.timezone)
        clock[0] = (local.normalize() + pd.Timedelta(days=1, seconds=1)).timestamp()
        assert run() == "all"  # a new local day
        assert len(upkeep) == 5
        h = json.loads(hb.path.read_text(encoding="utf-8"))["alerts"]
        assert h["runs"] == 5 and h["last_run_ok"] is True and h["failed_runs"] == 0
        store.close()  # the store goes away: the run fails, is recorded, and the job carries on
        svc.store = None
        svc.scheduled_check()
        h = json.loads(hb.path.read_text(encoding="utf-8"))["alerts"]
        assert h["last_run_ok"] is False and h["failed_runs"] == 1 and h["error"]
    finally:
        store.close()
