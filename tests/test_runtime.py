"""The real `civicwatt collect` process as a production runtime: a quota already breached
reaches a webhook within two check intervals, without `quotas check`; two shards send it
once; `--no-alerts` sends nothing; SIGTERM stops cleanly with the queue flushed; the
heartbeat says what the process did; `--log-format json` writes one JSON object a line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
import yaml

from alerts.outbox import Outbox
from alerts.record import Alert
from core.health import read_heartbeats
from device_sim.history import generate_history
from device_sim.server import Simulator
from storage import open_store
from tests.support_alerts_servers import WebhookServer
from tests.support_collect import registry_doc, write_registry
from tests.support_process import CivicwattProcess

REPO = Path(__file__).resolve().parent.parent
CHECK_S = 3.0  # --check-interval of these tests
BREACH = "dual_control_exceeded"

pytestmark = pytest.mark.slow


def zone_past_new_year(now_utc: pd.Timestamp, preferred: str) -> str:
    """`preferred`, unless it is 1 January there at `now_utc`: the year to date then has
    no complete day to breach a quota with (the `collect` process runs on the real
    clock), so a zone where it is still 31 December (UTC-12) or already 2 January
    (UTC+14); one of the two always is."""
    return next(tz for tz in (preferred, "Etc/GMT+12", "Pacific/Kiritimati")
                if (now_utc.tz_convert(tz).month, now_utc.tz_convert(tz).day) != (1, 1))


def test_some_zone_is_past_new_year_at_every_hour_around_it():
    for at in pd.date_range("2026-12-30 00:00", "2027-01-03 00:00", freq="17min", tz="UTC"):
        tz = zone_past_new_year(at, "Asia/Shanghai")
        local = at.tz_convert(tz)
        assert (local.month, local.day) != (1, 1), at
        assert tz == "Asia/Shanghai" or at.tz_convert("Asia/Shanghai").strftime("%m-%d") == "01-01", at


class Site:
    """A registry of two institutions, three days of history in an embedded store, the
    simulator continuing it (real time), a quota the history already breaches and a
    webhook channel on a loopback receiver."""

    def __init__(self, base: Path):
        self.base = base
        doc = registry_doc(n_institutions=2)
        doc["timezone"] = zone_past_new_year(pd.Timestamp.now(tz="UTC"), doc["timezone"])
        self.registry, meters, self.registry_path = write_registry(base, doc)
        tz = self.registry.timezone
        self.today = pd.Timestamp.now(tz=tz).date()
        self.url = f"embedded:{base / 'data'}"
        store = open_store(self.url, tz=tz)
        store.set_meters(self.registry.meters_frame())
        now = pd.Timestamp.now(tz="UTC").floor("s")
        store.write_samples(generate_history(meters, now - pd.Timedelta(days=3), now, interval_s=900))
        last = store.last_samples_before(now + pd.Timedelta(seconds=1))[["meter_id", "time", "value"]]
        store.close()
        self.sim = Simulator(meters, start_values=last).start()
        inst = self.registry.institutions[0].id
        self.quotas = base / "quotas.yaml"
        self.quotas.write_text(yaml.safe_dump({"basis": "equivalent", "targets": [
            {"id": "tiny", "year": self.today.year, "institution": inst, "energy_tce": 0.001}]}), encoding="utf-8")
        self.hook = WebhookServer().start()
        self.channels = base / "channels.yaml"
        self.channels.write_text(yaml.safe_dump({"retry": {"base_s": 0.5, "max_s": 1}, "channels": [
            {"name": "ops", "type": "webhook", "format": "json", "url": self.hook.url, "timeout_s": 2}]}),
            encoding="utf-8")

    def collect(self, *extra: str, queue: str = "queue") -> CivicwattProcess:
        """A `civicwatt collect` process; ready when its banner says the runtime started."""
        return CivicwattProcess(["collect", "--registry", str(self.registry_path), "--store", self.url,
                                 "--quotas", str(self.quotas), "--channels", str(self.channels),
                                 "--queue", str(self.base / queue), "--interval", "1",
                                 "--check-interval", str(CHECK_S), *extra], "Ctrl-C stops", cwd=self.base,
                                env={**os.environ, "PYTHONPATH": str(REPO)}, stop_signal=signal.SIGTERM)

    def breaches(self) -> list[dict]:
        return [b for b in self.hook.bodies if b["rule"] == BREACH]

    def health(self) -> dict[str, dict]:
        return {h["name"]: h for h in read_heartbeats(self.base / "data" / "health")}

    def close(self) -> None:
        self.hook.stop()
        self.sim.stop()


def wait_for(predicate, timeout_s: float, what: str) -> float:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
    return time.time()


@pytest.fixture
def site(tmp_path):
    s = Site(tmp_path)
    yield s
    s.close()


def test_a_breach_present_at_start_up_reaches_the_webhook_within_two_check_intervals(site):
    proc = site.collect("--log-format", "json")
    try:
        proc.wait_ready(60)
        ready = time.time()  # the runtime has started: its first check is due at once
        got = wait_for(lambda: site.breaches(), 4 * CHECK_S + 30, "the breach alert")
        # from the start of the runtime (its first check runs at once), not from the interpreter's start-up
        assert got - ready <= 2 * CHECK_S, f"{got - ready:.1f} s"
        time.sleep(2 * CHECK_S + 1)  # two more checks: the alert stays open, nothing is sent again
        body = site.breaches()
        assert len(body) == 1
        assert body[0]["notification"] == "open" and body[0]["institution_id"] == site.registry.institutions[0].id
        assert body[0]["limit"] == pytest.approx(0.001) and body[0]["actual"] > 0.001
        health = site.health()["collect"]
        assert health["ok"] and not health["stalled"] and health["state"] == "running"
        assert health["alerts"]["enabled"] and health["alerts"]["last_run_ok"] is True
        assert health["alerts"]["runs"] >= 3 and health["alerts"]["sent"] >= 0
        assert health["collect"]["meters"] == len(site.registry.meters) and health["collect"]["ok"] > 0
        assert health["pid"] == proc.proc.pid
    finally:
        code = proc.stop(signal.SIGTERM)
    assert code == 0, proc.output
    records = [json.loads(line) for line in proc.output.splitlines() if line.strip()]  # every line is JSON
    assert {"time", "level", "logger", "message"} <= set(records[0])
    assert all(r["logger"].startswith("civicwatt.") for r in records if r["level"] == "INFO")
    assert any(r["logger"] == "civicwatt.alerts" and r.get("opened") == 1 for r in records)
    assert any("queue empty" in r["message"] for r in records)


def test_two_shards_send_the_breach_once(site):
    one = site.collect("--shard", "1/2", queue="q1")
    two = site.collect("--shard", "2/2", queue="q2")
    try:
        one.wait_ready(60)
        two.wait_ready(60)
        wait_for(lambda: site.breaches(), 4 * CHECK_S + 30, "the breach alert")
        time.sleep(3 * CHECK_S)
        assert len(site.breaches()) == 1
        health = site.health()
        assert set(health) == {"collect-1of2", "collect-2of2"}
        assert health["collect-1of2"]["alerts"]["enabled"] is True
        assert health["collect-2of2"]["alerts"] == {"enabled": False, "reason": "run by shard 1/2"}
        meters = health["collect-1of2"]["collect"]["meters"] + health["collect-2of2"]["collect"]["meters"]
        assert meters == len(site.registry.meters)  # every gateway polled by one of them
    finally:
        codes = [one.stop(), two.stop()]
    assert codes == [0, 0], one.output + two.output


def test_no_alerts_sends_nothing_and_sigterm_flushes_the_queue(site):
    proc = site.collect("--no-alerts")
    try:
        proc.wait_ready(60)
        time.sleep(2 * CHECK_S + 1)
        assert site.hook.bodies == []
        assert not (site.base / "data" / "outbox.sqlite3").exists()
        health = site.health()["collect"]
        assert health["alerts"] == {"enabled": False, "reason": "turned off (--no-alerts)"}
        polled = health["collect"]["ok"]
        assert polled > 0
    finally:
        code = proc.stop(signal.SIGTERM)
    assert code == 0, proc.output
    assert "queue empty" in proc.output
    from collectors.queue import DiskQueue

    assert DiskQueue(site.base / "queue").backlog() == 0
    store = open_store(site.url, tz=site.registry.timezone)
    live = store.read_samples(start=pd.Timestamp(proc.started, unit="s", tz="UTC"))
    store.close()
    assert len(live) >= polled  # everything polled is in the store
    stopped = site.health()["collect"]
    assert stopped["state"] == "stopped" and stopped["ok"] and stopped["collect"]["queue_backlog"] == 0


def test_a_killed_collector_is_reported_stale_and_then_stalled(site):
    proc = site.collect("--no-alerts")
    try:
        proc.wait_ready(60)
        wait_for(lambda: (site.health().get("collect", {}).get("collect") or {}).get("ok"), 30, "a first poll")
    finally:
        proc.stop(signal.SIGKILL)  # no clean stop: the file still says running
    health = site.health()["collect"]
    assert health["state"] == "running" and health["stale"] and not health["ok"]
    assert any("not running" in p for p in health["problems"])
    later = read_heartbeats(site.base / "data" / "health", now=time.time() + 10)[0]
    assert later["stalled"]  # no successful poll for more than 3 intervals of 1 s
    assert any("polling stalled" in p for p in later["problems"])


def test_two_processes_submitting_the_same_alert_at_once_queue_it_once(tmp_path):
    """The outbox by itself never sends N copies, whatever the shards are told."""
    hook = WebhookServer().start()
    channels = tmp_path / "channels.yaml"
    channels.write_text(yaml.safe_dump({"channels": [{"name": "ops", "type": "webhook", "url": hook.url}]}),
                        encoding="utf-8")
    Outbox(tmp_path / "box", channels)  # the schema, before the race
    alert = Alert.new(BREACH, "critical", "institution:HB-0001", "energy_tce", str(datetime.now(UTC).year),
                      institution_id="HB-0001", actual=2.0, limit=1.0, projected=2.5, unit="tce",
                      message_zh="超限", message_en="over", first_seen="")
    script = ("import sys, pickle; from alerts.outbox import Outbox; a = pickle.loads(bytes.fromhex(sys.argv[1]));"
              f"box = Outbox({str(tmp_path / 'box')!r}, {str(channels)!r}); sys.stdin.readline();"
              "r = box.submit([a]); d = box.deliver_pending(); print(len(r.opened), d.sent)")
    import pickle

    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [subprocess.Popen([sys.executable, "-c", script, pickle.dumps(alert).hex()], env=env, text=True,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(4)]
    try:
        time.sleep(2.0)  # all four imported and waiting
        for p in procs:
            p.stdin.write("go\n")
            p.stdin.flush()
        results = [p.communicate(timeout=60) for p in procs]
    finally:
        hook.stop()
    assert all(p.returncode == 0 for p in procs), results
    opened, sent = zip(*(tuple(map(int, out.split())) for out, _ in results), strict=True)
    assert sum(opened) == 1 and sum(sent) == 1
    assert [b["rule"] for b in hook.bodies] == [BREACH]
